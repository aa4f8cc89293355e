//! An `-e`/`-d` pair of the built `spiped` on loopback, in front of a target.

use std::path::Path;

use super::{Spiped, free_port};

/// An `-e`/`-d` pair on loopback in front of `target`: clients connect to `e_source`.
pub struct Pipe {
    /// The decrypting end, in front of the target.
    pub d: Spiped,
    /// The encrypting end, which clients connect to.
    pub e: Spiped,
    /// The -e end's plaintext source, as spiped writes it.
    pub e_source: String,
    /// The -d end's encrypted source.
    pub d_source: String,
}

impl Pipe {
    /// Starts both ends with TCP sources on free loopback ports.
    pub fn start(dir: &Path, key: &Path, target: &str, d_extra: &[&str], e_extra: &[&str]) -> Pipe {
        let d_source = format!("[127.0.0.1]:{}", free_port());
        let e_source = format!("[127.0.0.1]:{}", free_port());
        Self::start_at(dir, key, target, &d_source, &e_source, d_extra, e_extra)
    }

    /// Starts both ends on the given sources.
    pub fn start_at(
        dir: &Path,
        key: &Path,
        target: &str,
        d_source: &str,
        e_source: &str,
        d_extra: &[&str],
        e_extra: &[&str],
    ) -> Pipe {
        let key = key.to_str().unwrap();
        let d_args = [&["-d", "-s", d_source, "-t", target, "-k", key][..], d_extra].concat();
        let d = Spiped::start(dir, "d", &d_args, d_source);
        let e_args = [&["-e", "-s", e_source, "-t", d_source, "-k", key][..], e_extra].concat();
        let e = Spiped::start(dir, "e", &e_args, e_source);
        Pipe { d, e, e_source: e_source.into(), d_source: d_source.into() }
    }

    /// The -e end's source as `host:port` for std's connect.
    pub fn e_addr(&self) -> String {
        plain_addr(&self.e_source)
    }

    /// The -d end's source as `host:port` for std's connect.
    pub fn d_addr(&self) -> String {
        plain_addr(&self.d_source)
    }
}

/// `[127.0.0.1]:80` -> `127.0.0.1:80`; `[::1]:80` stays as it is.
pub fn plain_addr(spiped_addr: &str) -> String {
    match spiped_addr.strip_prefix('[').and_then(|r| r.split_once("]:")) {
        Some((ip, port)) if !ip.contains(':') => format!("{ip}:{port}"),
        _ => spiped_addr.to_string(),
    }
}
