//! spipe's command line: spiped 1.6 spipe's options, one for one, plus `--protocol`, parsed without
//! any I/O.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

use crate::cli::{ProtocolArg, timeout_seconds};

/// spipe's usage text, as spiped 1.6 prints it, with the option it adds.
pub const USAGE: &str = "spipe -t <target socket> -k <key file> [-b <bind address>] [-f | -g]
    [-j] [-o <connection timeout>] [--protocol {native | classic}]
       spipe -v";

/// Parsed command-line arguments.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(
    name = "spipe",
    version,
    about = "Secure pipe client: connects to a spiped -d end and carries standard input to it and its \
             answers to standard output, encrypted and authenticated with a shared key.",
    override_usage = USAGE,
    disable_version_flag = true,
)]
pub struct Args {
    /// The -d end to connect to: `/absolute/unix/path`, `[1.2.3.4]:port`, `[v6::addr]:port` or
    /// `host.name:port`.
    #[arg(
        short = 't',
        value_name = "target socket",
        help = "The -d end to connect to: /absolute/unix/path, [1.2.3.4]:port, [v6::addr]:port or host.name:port"
    )]
    pub target: String,

    /// Shared key file, the same as the -d end's (32 random bytes). Not `-`: standard input carries the
    /// data.
    #[arg(short = 'k', value_name = "key file")]
    pub key_file: PathBuf,

    /// Local address to bind the connection to.
    #[arg(short = 'b', value_name = "bind address")]
    pub bind: Option<String>,

    /// Classic protocol: skip the Diffie-Hellman exchange (send y = 1), as spiped 1.6's -f: faster, but
    /// no forward secrecy. The native protocol always has forward secrecy; -f changes nothing there.
    #[arg(short = 'f', conflicts_with = "require_pfs")]
    pub fast: bool,

    /// Classic protocol: refuse a -d end that skips the Diffie-Hellman exchange (one using -f). The
    /// native protocol always has forward secrecy, so it always satisfies -g.
    #[arg(short = 'g')]
    pub require_pfs: bool,

    /// Disable TCP keepalives (on by default).
    #[arg(short = 'j')]
    pub no_keepalive: bool,

    /// Seconds allowed for connecting and for the handshake (at least 0.01).
    #[arg(short = 'o', value_name = "connection timeout", default_value = "5", value_parser = timeout_seconds)]
    pub timeout: Duration,

    /// Wire protocol: native (spiped-rs's, the default) or classic (for a -d end still on spiped 1.x).
    #[arg(long = "protocol", value_name = "protocol", value_enum, default_value = "native")]
    pub protocol: ProtocolArg,

    /// Print the version and exit.
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    pub version: (),
}

impl Args {
    /// Parses `argv` (program name first).
    ///
    /// # Errors
    /// clap's error, which knows how to print itself (help and version are "errors" too).
    pub fn try_parse_from_args<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::try_parse_from(argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from_args(["spipe"].iter().chain(extra))
    }

    fn ok(extra: &[&str]) -> Args {
        let base = ["-t", "[127.0.0.1]:8022", "-k", "key"];
        parse(&[&base[..], extra].concat()).expect("parses")
    }

    #[test]
    fn target_and_key_are_required() {
        assert!(parse(&["-k", "key"]).is_err());
        assert!(parse(&["-t", "[127.0.0.1]:8022"]).is_err());
        let a = ok(&[]);
        assert_eq!((a.target.as_str(), a.key_file.as_os_str()), ("[127.0.0.1]:8022", "key".as_ref()));
    }

    #[test]
    fn defaults_are_spipe_16s_and_native() {
        let a = ok(&[]);
        assert_eq!(a.timeout, Duration::from_secs(5));
        assert_eq!(a.protocol, ProtocolArg::Native);
        assert!(!a.fast && !a.require_pfs && !a.no_keepalive && a.bind.is_none());
    }

    #[test]
    fn bind_keepalive_timeout_and_protocol() {
        let a = ok(&["-b", "[127.0.0.2]:0", "-j", "-o", "0.5", "--protocol", "classic"]);
        assert_eq!(a.bind.as_deref(), Some("[127.0.0.2]:0"));
        assert!(a.no_keepalive);
        assert_eq!(a.timeout, Duration::from_millis(500));
        assert_eq!(a.protocol, ProtocolArg::Classic);
        assert!(parse(&["-t", "x:1", "-k", "k", "--protocol", "tls"]).is_err());
    }

    #[test]
    fn f_and_g_are_accepted_but_not_together() {
        assert!(ok(&["-f"]).fast);
        assert!(ok(&["-g"]).require_pfs);
        assert!(parse(&["-t", "x:1", "-k", "k", "-f", "-g"]).is_err());
    }

    #[test]
    fn a_timeout_under_the_minimum_or_not_a_number_is_refused() {
        for bad in ["0", "0.001", "-1", "nan", "soon"] {
            assert!(parse(&["-t", "x:1", "-k", "k", "-o", bad]).is_err(), "-o {bad}");
        }
    }

    #[test]
    fn daemon_options_are_not_spipes() {
        for flag in [&["-e"][..], &["-d"], &["-s", "[127.0.0.1]:1"], &["-F"], &["-n", "3"], &["-p", "x"]] {
            assert!(parse(&[&["-t", "x:1", "-k", "k"][..], flag].concat()).is_err(), "{flag:?}");
        }
    }

    #[test]
    fn version_flag_is_lower_case_v() {
        let e = parse(&["-v"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion);
    }
}
