//! `--proxy-protocol` read by a real PROXY-aware server: Debian's HAProxy, taking only PROXY
//! connections (`accept-proxy`) in front of a service, logs for each connection the client and
//! frontend addresses the header gave it. The client's `-e` end connects to our `-d` end, which
//! connects to HAProxy: HAProxy must log the `-e` end's outgoing address (the `-d` end's peer, as the
//! `-d` log shows it) and the `-d` end's own, while the bytes go through unchanged. Without the flag
//! HAProxy refuses the connection, so the header is what makes it work.

mod support;

use std::io::{ErrorKind, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::TryRecvError;
use std::time::Duration;

use support::*;

/// Where Debian's haproxy package installs it; scripts/test-all installs the package when missing.
const HAPROXY: &str = "/usr/sbin/haproxy";

/// How long HAProxy may take to listen, and a log line to appear.
const WITHIN: Duration = Duration::from_secs(20);

/// Bytes sent through each connection that should pass: large enough for many records and reads.
const PAYLOAD_LEN: usize = 1 << 20;

/// The start of each connection's log line, with the addresses as HAProxy took them from the header.
const PROXIED: &str = "proxied client=";

/// Debian's HAProxy on a loopback port, in TCP mode, taking only connections that start with a PROXY
/// header and passing them to a service; its log goes to a file. Killed when dropped.
struct Haproxy {
    /// The process, started in the foreground (`-db`).
    child: Child,
    /// The port it listens on, on 127.0.0.1.
    port: u16,
    /// Its standard output (the connection log) and error.
    log: PathBuf,
}

impl Haproxy {
    /// Starts HAProxy in front of the service on 127.0.0.1:`service` and waits until it listens.
    fn start(dir: &Path, service: u16) -> Haproxy {
        let port = free_port();
        let config = dir.join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "global
    nbthread 1
    log stdout format raw local0 info
defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend proxied
    bind 127.0.0.1:{port} accept-proxy
    log-format \"{PROXIED}%ci port=%cp frontend=%fi port=%fp\"
    default_backend service
backend service
    server service 127.0.0.1:{service}
"
            ),
        )
        .unwrap();
        let log = dir.join("haproxy.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(HAPROXY)
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {HAPROXY} ({e}): scripts/test-all installs haproxy"));
        let mut haproxy = Haproxy { child, port, log };
        eventually("HAProxy listens", WITHIN, || {
            if let Some(status) = haproxy.child.try_wait().unwrap() {
                panic!("HAProxy exited with {status}:\n{}", haproxy.log_text());
            }
            if listening_on_ipv4_loopback(port) { Ok(()) } else { Err(haproxy.log_text()) }
        });
        haproxy
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the log line of the one connection HAProxy passed on, and returns the client and
    /// frontend addresses it names.
    fn proxied(&self) -> (SocketAddr, SocketAddr) {
        let line = eventually("HAProxy logs the connection", WITHIN, || {
            let log = self.log_text();
            let lines: Vec<&str> = log.lines().filter(|l| l.starts_with(PROXIED)).collect();
            match lines[..] {
                [line] => Ok(line.to_string()),
                _ => Err(format!("its log so far:\n{log}")),
            }
        });
        // `proxied client=IP port=P frontend=IP port=P`: the values are the words after each `=`.
        let values: Vec<&str> =
            line.split_whitespace().filter_map(|w| w.split_once('=')).map(|(_, v)| v).collect();
        let [client, client_port, frontend, frontend_port] = values[..] else { panic!("{line}") };
        let address = |ip: &str, port: &str| SocketAddr::new(ip.parse().unwrap(), port.parse().unwrap());
        (address(client, client_port), address(frontend, frontend_port))
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a socket listens on 127.0.0.1:`port`, from the kernel's table: probing with a connection
/// would itself be logged, and binding the port could take it from HAProxy.
fn listening_on_ipv4_loopback(port: u16) -> bool {
    const LISTEN: &str = "0A";
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    // The kernel writes the address as a number in host byte order, then the port.
    let local = format!("{:08X}:{port:04X}", u32::from_ne_bytes([127, 0, 0, 1]));
    table.lines().skip(1).any(|row| {
        let fields: Vec<&str> = row.split_whitespace().collect();
        fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&LISTEN)
    })
}

/// The peer the `-d` end logged for the connection it served.
fn d_peer(d: &Spiped) -> SocketAddr {
    wait_for_log(d, "connection closed");
    let log = d.log_text();
    let line = log.lines().find(|l| l.contains("connection closed")).expect("waited for it");
    let peer =
        line.split_whitespace().find_map(|w| w.strip_prefix("peer=")).unwrap_or_else(|| panic!("{line}"));
    peer.parse().unwrap_or_else(|e| panic!("{peer}: {e}"))
}

/// A service, HAProxy in front of it, and an `-e`/`-d` pair in front of HAProxy.
struct Rig {
    /// Reads each connection to its end and answers with what it read.
    service: CollectServer,
    /// Takes only PROXY connections, and logs the addresses each header gave it.
    haproxy: Haproxy,
    /// The client's `-e` end and our `-d` end, which connects to HAProxy.
    pipe: Pipe,
}

impl Rig {
    /// Starts the rig in a fresh directory: the `-d` end on the source `d_source` makes (given the
    /// directory) with `d_extra`, the `-e` end on a loopback port with `e_extra`.
    fn start(name: &str, d_source: impl FnOnce(&Path) -> String, d_extra: &[&str], e_extra: &[&str]) -> Rig {
        let dir = scratch(name);
        let key = key_file(&dir, "k");
        let service = CollectServer::start();
        let haproxy = Haproxy::start(&dir, service.port);
        let target = format!("[127.0.0.1]:{}", haproxy.port);
        let e_source = format!("[127.0.0.1]:{}", free_port());
        let pipe = Pipe::start_at(&dir, &key, &target, &d_source(&dir), &e_source, d_extra, e_extra);
        Rig { service, haproxy, pipe }
    }

    /// Sends a megabyte through the pipe to the service, which answers with what it read once the
    /// client half-closes; checks that the answer and what the service read are the bytes sent.
    fn megabyte_through(&self) {
        let data = pattern(15, PAYLOAD_LEN);
        let back = echo_through(TcpStream::connect(self.pipe.e_addr()).unwrap(), &data);
        assert_eq!(digest(&back), digest(&data), "{} bytes back of {}", back.len(), data.len());
        let read = self.service.outcomes.recv_timeout(WITHIN).expect("the service saw the connection end");
        assert_eq!(digest(&read.expect("the service read to a clean end")), digest(&data));
    }

    /// Sends a megabyte through a `-d` end with --proxy-protocol on a TCP source, then checks what
    /// HAProxy logged: as the client, the `-d` end's peer as its log shows it, which must be the `-e`
    /// end's outgoing address (on `e_ip`); as the frontend, the `-d` end's own address.
    fn haproxy_names_the_e_end(&self, e_ip: &str) {
        self.megabyte_through();
        let peer = d_peer(&self.pipe.d);
        assert_eq!(peer.ip(), e_ip.parse::<IpAddr>().unwrap(), "{}", self.pipe.d.log_text());
        let d_addr: SocketAddr = self.pipe.d_addr().parse().unwrap();
        let (client, frontend) = self.haproxy.proxied();
        assert_eq!((client, frontend), (peer, d_addr), "{}", self.haproxy.log_text());
    }
}

/// An IPv4 client, its `-e` end bound to 127.0.0.2 and the `-d` end on 127.0.0.3: HAProxy's own
/// connection comes from 127.0.0.1, so the addresses it logs can only have come from the header.
#[test]
fn haproxy_logs_the_e_ends_address_as_the_client_over_ipv4() {
    let d_source = |_: &Path| format!("[127.0.0.3]:{}", free_port());
    let rig = Rig::start("proxy-v4", d_source, &["--proxy-protocol"], &["-b", "[127.0.0.2]:0"]);
    rig.haproxy_names_the_e_end("127.0.0.2");
}

/// The `-d` end on [::1]: the header is TCP over IPv6, though HAProxy itself listens on IPv4.
#[test]
fn haproxy_logs_the_e_ends_address_as_the_client_over_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine has no ::1");
        return;
    }
    let rig = Rig::start("proxy-v6", |_| format!("[::1]:{}", free_port()), &["--proxy-protocol"], &[]);
    rig.haproxy_names_the_e_end("::1");
}

/// A unix-socket source has no address to give: the header is LOCAL, which HAProxy accepts, using
/// the connection's own endpoints (the `-d` end's connection to it).
#[test]
fn a_unix_source_sends_local_and_haproxy_uses_the_real_endpoints() {
    let d_source = |dir: &Path| dir.join("d.sock").to_str().unwrap().to_string();
    let rig = Rig::start("proxy-unix", d_source, &["--proxy-protocol"], &[]);
    rig.megabyte_through();
    let (client, frontend) = rig.haproxy.proxied();
    assert_eq!(client.ip(), "127.0.0.1".parse::<IpAddr>().unwrap(), "{}", rig.haproxy.log_text());
    assert_eq!(frontend, SocketAddr::from(([127, 0, 0, 1], rig.haproxy.port)), "{}", rig.haproxy.log_text());
}

/// The same pipe without the flag: HAProxy refuses the connection for want of a header (it resets
/// it), the service never sees it, and the client's connection is reset with nothing back.
#[test]
fn without_the_flag_haproxy_refuses_the_connection() {
    let rig = Rig::start("proxy-none", |_| format!("[127.0.0.1]:{}", free_port()), &[], &[]);
    let mut client = TcpStream::connect(rig.pipe.e_addr()).unwrap();
    // Nothing can reset the connection before these bytes are sent: HAProxy waits for them. No
    // half-close after them: the reset may already be back by then.
    client.write_all(&pattern(15, 4096)).unwrap();
    let answer = read_until_closed(&mut client);
    assert_eq!(
        answer.as_ref().map_err(std::io::Error::kind).err(),
        Some(ErrorKind::ConnectionReset),
        "{answer:?}"
    );
    eventually("HAProxy logs the refusal", WITHIN, || {
        let log = rig.haproxy.log_text();
        if log.contains("Received something which does not look like a PROXY protocol header") {
            Ok(())
        } else {
            Err(log)
        }
    });
    wait_for_log(&rig.pipe.d, "connection aborted");
    assert!(!rig.haproxy.log_text().contains(PROXIED), "{}", rig.haproxy.log_text());
    assert_eq!(
        rig.service.outcomes.try_recv().err(),
        Some(TryRecvError::Empty),
        "the service saw a connection"
    );
}

/// The flag means nothing on an `-e` end, whose target is a `-d` end: it is refused with the usage.
#[test]
fn an_e_end_refuses_the_flag() {
    let dir = scratch("proxy-e");
    let key = key_file(&dir, "k");
    let args = ["-F", "-e", "-s", "[127.0.0.1]:1", "-t", "[127.0.0.1]:2", "-k", key.to_str().unwrap()];
    let out = run_spiped(&[&args[..], &["--proxy-protocol"]].concat(), None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let mut lines = err.lines();
    assert_eq!(
        lines.next(),
        Some(
            "spiped: --proxy-protocol is for a -d end, whose target is the service; an -e end's target is a -d end"
        )
    );
    assert!(lines.next().is_some_and(|l| l.starts_with("usage: spiped {-e | -d}")), "{err}");
}
