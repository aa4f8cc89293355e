//! The ways to reach a target that the benchmark compares, and how each is started: the native
//! paths (direct, spiped-rs, spiped 1.6, stunnel, a relay) and the classic-wire paths (issue 12),
//! where spiped-rs speaks classic spiped 1.x to itself or to Debian's spiped 1.6.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::delay::DelayLink;
use crate::procs::{Daemon, free_ports, run};

/// One way from a client to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Straight to the target: the baseline.
    Direct,
    /// An `-e` end and a `-d` end of this project's `spiped`.
    Ours,
    /// The same with Debian's classic spiped 1.6.
    Spiped16,
    /// A stunnel client and server, TLS 1.3 with a verified P-256 certificate.
    Stunnel,
    /// Two HAProxy processes relaying TCP with no encryption at all: the floor, what two extra
    /// processes on the path cost this machine before any cryptography.
    Relay,
    /// This project's `-e --protocol classic` to its own `-d` (which accepts both protocols): the
    /// classic wire with our code at both ends.
    OursClassic,
    /// This project's `-e --protocol classic` to spiped 1.6's `-d`: a `-e` host upgraded first.
    MixedE,
    /// spiped 1.6's `-e` to this project's `-d`: a `-d` host upgraded first, as docs/migrating.md
    /// advises.
    MixedD,
    /// [`Kind::Ours`] with `--metrics` on both ends and a scraper reading both endpoints every second:
    /// what metrics cost the data path.
    OursMetrics,
    /// [`Kind::Ours`] with `--pool` on the `-e` end (issue 16): spares parked at the `-d` end, so a new
    /// client's first bytes leave at once. Run by the wan measure only.
    OursPool,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Direct,
        Kind::Ours,
        Kind::Spiped16,
        Kind::Stunnel,
        Kind::Relay,
        Kind::OursClassic,
        Kind::MixedE,
        Kind::MixedD,
        Kind::OursMetrics,
        Kind::OursPool,
    ];

    /// The column heading and JSON key.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Ours => "spiped-rs",
            Kind::Spiped16 => "spiped-1.6",
            Kind::Stunnel => "stunnel",
            Kind::Relay => "relay",
            Kind::OursClassic => "spiped-rs-classic",
            Kind::MixedE => "mixed-e",
            Kind::MixedD => "mixed-d",
            Kind::OursMetrics => "spiped-rs-metrics",
            Kind::OursPool => "spiped-rs-pool",
        }
    }

    /// Whether the path carries the classic spiped 1.x protocol: the paths issue 12's targets and
    /// the classic table compare with spiped 1.6 at both ends.
    pub fn classic_wire(self) -> bool {
        matches!(self, Kind::Spiped16 | Kind::OursClassic | Kind::MixedE | Kind::MixedD)
    }

    /// Whether both ends are this project's: a failure there is ours, even in a smoke run.
    pub fn all_ours(self) -> bool {
        matches!(self, Kind::Ours | Kind::OursClassic | Kind::OursMetrics | Kind::OursPool)
    }

    /// Whether the flood measure runs the path. The attacker is silent, so it meets the `-d` end
    /// the same whatever the protocol; what differs is the `-d` end and the legitimate client's
    /// protocol. mixed-e is left out: its `-d` end is spiped 1.6's, as on the spiped-1.6 path.
    pub fn floods(self) -> bool {
        matches!(self, Kind::Ours | Kind::Spiped16 | Kind::OursClassic | Kind::MixedD)
    }

    /// Whether the idle-memory measure runs the path. The mixed paths are left out: their figure
    /// would be one end of spiped-rs-classic's plus one of spiped-1.6's, and opening 9,700
    /// connections through a spiped 1.6 end takes about 15 minutes.
    pub fn idles(self) -> bool {
        !matches!(self, Kind::Direct | Kind::MixedE | Kind::MixedD)
    }

    /// Whether the wan measure (issue 16) runs the path: the native ones a deployment chooses between
    /// (the relay, the classic wire and metrics add nothing a round trip would show).
    pub fn crosses_wan(self) -> bool {
        matches!(self, Kind::Direct | Kind::Ours | Kind::Spiped16 | Kind::Stunnel | Kind::OursPool)
    }

    /// Whether the path's `-e` end keeps a pool of ready connections (issue 16's `--pool`): the path
    /// the wan targets bind.
    pub fn pooled(self) -> bool {
        self == Kind::OursPool
    }
}

/// Spares the pooled path's `-e` end keeps.
pub const POOL: usize = 160;

/// The programs and files every pair is started with.
pub struct Env {
    pub dir: PathBuf,
    ours: PathBuf,
    classic: Option<PathBuf>,
    stunnel: Option<PathBuf>,
    /// HAProxy, for the relay path, when installed.
    haproxy: Option<PathBuf>,
    key: PathBuf,
    /// Connections each relay process may hold: half its open-file limit, two descriptors each.
    relay_connections: u64,
}

impl Env {
    /// Writes a fresh key and, when stunnel is there, a certificate into `dir`. `files` is the
    /// open-file limit the ends inherit.
    pub fn new(dir: &Path, ours: PathBuf, files: u64) -> Result<Self> {
        let key = dir.join("key");
        fs::write(&key, rand::random::<[u8; 32]>())?;
        let found = |p: &str| Path::new(p).exists().then(|| PathBuf::from(p));
        let stunnel = found("/usr/bin/stunnel4").or_else(|| found("/usr/bin/stunnel"));
        if stunnel.is_some() {
            let mut openssl = Command::new("openssl");
            openssl.current_dir(dir).args(["req", "-x509", "-newkey", "ec", "-pkeyopt"]).args([
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "tls.key",
                "-out",
                "tls.crt",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ]);
            run(&mut openssl, std::time::Duration::from_secs(30)).context("making stunnel's certificate")?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            ours,
            classic: found("/usr/bin/spiped"),
            stunnel,
            haproxy: found("/usr/sbin/haproxy"),
            key,
            relay_connections: files.saturating_sub(100) / 2,
        })
    }

    /// Whether the programs for `kind` are installed, and if not, what to install.
    pub fn missing(&self, kind: Kind) -> Option<&'static str> {
        match kind {
            Kind::Spiped16 | Kind::MixedE | Kind::MixedD if self.classic.is_none() => {
                Some("spiped (Debian's classic spiped 1.6)")
            }
            Kind::Stunnel if self.stunnel.is_none() => Some("stunnel4"),
            Kind::Relay if self.haproxy.is_none() => Some("haproxy"),
            _ => None,
        }
    }
}

/// What a spiped `-d` end may hold. The `-e` end always runs with `-n 0`: only the benchmark's own
/// clients reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    /// `-n 0`, no connection limit: the load generators measure the path, not the limit.
    Unlimited,
    /// The daemon's own `-n` and `-o` (100 connections, 5 s in both spipeds): what an attacker without
    /// the key meets in a default deployment. Only the spiped paths have it; the others ignore it.
    Defaults,
}

/// A path to one target: the port a client connects to, and the tunnel's processes.
pub struct Pair {
    pub port: u16,
    /// The server end's source (a spiped `-d` end's), where a peer without the key arrives; the
    /// target's own port on the direct path.
    pub server_port: u16,
    pub ends: Vec<Daemon>,
    /// The metrics scraper of [`Kind::OursMetrics`], held only to be stopped when the pair is dropped.
    #[allow(dead_code, reason = "held for its Drop")]
    pub scraper: Option<Scraper>,
    /// The delay link where the network is (between the client side and the server side), on a path
    /// started across a WAN: held to be stopped with the pair, and read for what it measured.
    pub link: Option<DelayLink>,
}

impl Pair {
    /// The tunnel's processes' ids (none for a direct path).
    pub fn pids(&self) -> Vec<u32> {
        self.ends.iter().map(Daemon::pid).collect()
    }

    /// Starts a `kind` path in front of the loopback `target` port and waits until it listens.
    pub fn start(kind: Kind, env: &Env, target: u16, limits: Limits) -> Result<Self> {
        Self::start_across(kind, env, target, limits, None)
    }

    /// [`Pair::start`], with a delay link of round-trip time `rtt` (when given) where the network
    /// is: between the client-side end and the server-side end, or between the client and the target
    /// on the direct path.
    pub fn start_across(
        kind: Kind,
        env: &Env,
        target: u16,
        limits: Limits,
        rtt: Option<Duration>,
    ) -> Result<Self> {
        let [front, middle, metrics @ ..] = &free_ports(4)?[..] else { unreachable!() };
        let (front, middle) = (*front, *middle);
        let far = if kind == Kind::Direct { target } else { middle };
        let link = rtt.map(|rtt| DelayLink::start(far, rtt)).transpose()?;
        // Where the client side connects to reach the server side.
        let hop = link.as_ref().map_or(far, |link| link.port);
        let (d, e) = match kind {
            Kind::Direct => {
                return Ok(Self { port: hop, server_port: target, ends: Vec::new(), scraper: None, link });
            }
            Kind::Ours
            | Kind::Spiped16
            | Kind::OursClassic
            | Kind::MixedE
            | Kind::MixedD
            | Kind::OursMetrics
            | Kind::OursPool => {
                let classic = || env.classic.as_deref().context("no spiped 1.6");
                let (d, e) = match kind {
                    Kind::Ours | Kind::OursClassic | Kind::OursMetrics | Kind::OursPool => {
                        (env.ours.as_path(), env.ours.as_path())
                    }
                    Kind::MixedE => (classic()?, env.ours.as_path()),
                    Kind::MixedD => (env.ours.as_path(), classic()?),
                    _ => (classic()?, classic()?),
                };
                let mut e = spiped(env, e, "-e", Limits::Unlimited, front, hop);
                if matches!(kind, Kind::OursClassic | Kind::MixedE) {
                    e.args(["--protocol", "classic"]);
                }
                if kind == Kind::OursPool {
                    // Enough spares for redis-benchmark's 50 clients, each back for a new connection
                    // every round trip, while spares take about three round trips to make.
                    e.args(["--pool", &POOL.to_string()]);
                }
                let mut d = spiped(env, d, "-d", limits, middle, target);
                if kind == Kind::OursMetrics {
                    let [d_metrics, e_metrics] = metrics[..] else { unreachable!() };
                    d.args(["--metrics", &format!("[127.0.0.1]:{d_metrics}")]);
                    e.args(["--metrics", &format!("[127.0.0.1]:{e_metrics}")]);
                }
                (d, e)
            }
            Kind::Stunnel => (stunnel(env, false, middle, target)?, stunnel(env, true, front, hop)?),
            Kind::Relay => (haproxy(env, middle, target)?, haproxy(env, front, hop)?),
        };
        let name = |end: &str| format!("{}-{end}-{front}", kind.name());
        let mut d = Daemon::spawn(&name("server"), &mut { d }, &env.dir)?;
        d.wait_listening(middle)?;
        let mut e = Daemon::spawn(&name("client"), &mut { e }, &env.dir)?;
        e.wait_listening(front)?;
        let scraper = (kind == Kind::OursMetrics).then(|| Scraper::start(metrics.to_vec()));
        Ok(Self { port: front, server_port: middle, ends: vec![e, d], scraper, link })
    }

    /// Fails, quoting its log, if one of the tunnel's processes has exited.
    pub fn check_running(&mut self) -> Result<()> {
        self.ends.iter_mut().try_for_each(Daemon::check_running)
    }
}

/// A spiped end (ours or classic: the command lines are the same). Our `-d` end is left at its
/// default, accepting both protocols, as a site migrating from spiped 1.6 runs it.
fn spiped(env: &Env, binary: &Path, mode: &str, limits: Limits, source: u16, target: u16) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args(["-F", mode]);
    if limits == Limits::Unlimited {
        cmd.args(["-n", "0"]);
    }
    cmd.arg("-k").arg(&env.key);
    cmd.args(["-s", &format!("[127.0.0.1]:{source}"), "-t", &format!("[127.0.0.1]:{target}")]);
    cmd
}

/// A stunnel process with one service: the TLS client (`client`) or the server.
fn stunnel(env: &Env, client: bool, accept: u16, connect: u16) -> Result<Command> {
    let Some(binary) = &env.stunnel else { bail!("no stunnel") };
    let role = if client {
        "client = yes\nverifyPeer = yes\nCAfile = tls.crt\ncheckIP = 127.0.0.1\n"
    } else {
        "cert = tls.crt\nkey = tls.key\n"
    };
    let config = format!(
        "foreground = yes\npid =\nsyslog = no\ndebug = 3\n[bench]\n{role}sslVersion = TLSv1.3\n\
         accept = 127.0.0.1:{accept}\nconnect = 127.0.0.1:{connect}\n"
    );
    let file = env.dir.join(format!("stunnel-{accept}.conf"));
    fs::write(&file, config)?;
    let mut cmd = Command::new(binary);
    cmd.current_dir(&env.dir).arg(file);
    Ok(cmd)
}

/// An HAProxy process relaying `accept` to `connect` in TCP mode, with its defaults otherwise (its
/// threads on every core, no splicing).
fn haproxy(env: &Env, accept: u16, connect: u16) -> Result<Command> {
    let Some(binary) = &env.haproxy else { bail!("no haproxy") };
    let config = format!(
        "global\n    maxconn {}\ndefaults\n    mode tcp\n    timeout connect 10s\n    timeout client 1h\n\
         \x20   timeout server 1h\nlisten relay\n    bind 127.0.0.1:{accept}\n    server target 127.0.0.1:{connect}\n",
        env.relay_connections
    );
    let file = env.dir.join(format!("haproxy-{accept}.cfg"));
    fs::write(&file, config)?;
    let mut cmd = Command::new(binary);
    cmd.arg("-db").arg("-f").arg(file);
    Ok(cmd)
}

/// Reads `/metrics` from each port once a second, as a Prometheus server would, until dropped.
#[derive(Debug)]
pub struct Scraper {
    /// Set to stop the thread.
    stop: Arc<AtomicBool>,
    /// The thread, joined on drop.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scraper {
    fn start(ports: Vec<u16>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                for port in &ports {
                    let mut page = Vec::new();
                    let scraped = TcpStream::connect(("127.0.0.1", *port)).and_then(|mut s| {
                        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
                        s.read_to_end(&mut page)
                    });
                    if let Err(e) = scraped {
                        eprintln!("scraper: port {port}: {e}");
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Scraper { stop, thread: Some(thread) }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
