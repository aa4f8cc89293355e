//! Loopback ports for daemons a test is about to start.
//!
//! Binding port 0 and dropping the socket races with every other thread of the test process and
//! with the daemons' own outgoing connections, which take their ports from the same ephemeral range.
//! Instead each process walks its own sequence through the ports below the ephemeral range, starting
//! at a point derived from its pid (so concurrent test processes start apart), hands each port out
//! once, and skips the ones something listens on right now.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out: above the ports well-known services tend to use.
const LOWEST: u16 = 10_000;

/// Where the kernel's ephemeral range starts when it cannot be read (Linux's default).
const EPHEMERAL_START_DEFAULT: u16 = 32_768;

/// The kernel's ephemeral range, `low high`, which outgoing connections take their ports from.
const EPHEMERAL_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// The ports this process hands out: `[low, low + span)`, walked from `start`.
struct Ports {
    /// First port of the range.
    low: u16,
    /// How many ports the range has.
    span: u32,
    /// Offset of this process's first port in the range, from its pid.
    start: u32,
}

/// A loopback port nobody listens on right now and no earlier call in this process returned.
///
/// # Panics
/// When every port below the ephemeral range is taken.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ports = ports();
    for _ in 0..ports.span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = ports.low + ((ports.start + n) % ports.span) as u16;
        if bindable(port) {
            return port;
        }
    }
    panic!("no free loopback port below the ephemeral range")
}

fn ports() -> &'static Ports {
    static PORTS: OnceLock<Ports> = OnceLock::new();
    PORTS.get_or_init(|| {
        let ephemeral = std::fs::read_to_string(EPHEMERAL_RANGE)
            .ok()
            .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
            .unwrap_or(EPHEMERAL_START_DEFAULT);
        let low = if ephemeral > LOWEST + 1_000 { LOWEST } else { 1_024 };
        let span = u32::from(ephemeral.saturating_sub(low)).max(1);
        // Spread the starting points of concurrent processes (Knuth's multiplicative hash of the pid).
        let start = (std::process::id().wrapping_mul(2_654_435_761)) % span;
        Ports { low, span, start }
    })
}

/// Whether a TCP listener could take `port` on 127.0.0.1 and, where IPv6 exists, on ::1.
fn bindable(port: u16) -> bool {
    if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
        return false;
    }
    match TcpListener::bind((Ipv6Addr::LOCALHOST, port)) {
        Err(e) if e.kind() == ErrorKind::AddrInUse => false,
        // Taken on ::1 only if it is in use there; a host without IPv6 refuses it for another reason.
        _ => true,
    }
}
