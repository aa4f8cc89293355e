//! Parked connections at a `-d` end (docs/PROTOCOL.md, 4.6), with the library as the `-e` end that
//! parks them: the target is contacted only once a connection is put to use; parked connections
//! have a limit of their own, a time limit, and are retired when the end drains.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use spiped::proto::native::{Accepted, EphemeralKey, Initiator, MSG2_LEN, Opener, Ready, Sealer, Waiting};
use spiped::proto::{Open, Psk, Record, Seal};
use support::*;

/// A connection this test parked at a `-d` end: the socket, and the protocol state.
struct Spare {
    conn: TcpStream,
    ready: Ready,
}

/// What a park request came to.
enum Parking {
    Parked(Spare),
    Refused,
}

/// Connects to `addr`, runs the handshake under `key` and asks to park the connection.
fn park(addr: &str, key: &Path) -> Parking {
    let psk = Psk::from_key_file(&std::fs::read(key).unwrap());
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (initiator, hello) = Initiator::start(&psk, EphemeralKey::generate(&mut rand::rng()));
    conn.write_all(&hello).unwrap();
    let mut msg2 = [0u8; MSG2_LEN];
    conn.read_exact(&mut msg2).unwrap();
    let mut confirmation = Vec::new();
    let mut spare = initiator.read_response_parked(&msg2, &mut confirmation).unwrap();
    conn.write_all(&confirmation).unwrap();
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 256];
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "the -d end closed a park request without a word");
        buf.extend_from_slice(&chunk[..n]);
        match spare.accepted(&mut buf).unwrap() {
            Accepted::NeedMore(s) => spare = s,
            Accepted::Ready { ready, consumed } => {
                assert_eq!(consumed, buf.len(), "nothing follows the park record");
                return Parking::Parked(Spare { conn, ready });
            }
            Accepted::Refused => return Parking::Refused,
        }
    }
}

fn parked(addr: &str, key: &Path) -> Spare {
    match park(addr, key) {
        Parking::Parked(spare) => spare,
        Parking::Refused => panic!("the -d end refused to park"),
    }
}

impl Spare {
    /// Puts the connection to use, sending `data` after the record that says so.
    fn take(self, data: &[u8]) -> (TcpStream, Sealer, Opener) {
        let mut wire = Vec::new();
        let (mut tx, rx) = self.ready.take(&mut wire).unwrap().split();
        if !data.is_empty() {
            tx.seal_data(data, &mut wire).unwrap();
        }
        let mut conn = self.conn;
        conn.write_all(&wire).unwrap();
        (conn, tx, rx)
    }

    /// Waits for the `-d` end to retire the connection, and answers with this end's end of stream.
    fn wait_retired(mut self) {
        let mut buf = Vec::new();
        let mut ready = self.ready;
        loop {
            let mut chunk = [0u8; 256];
            let n = self.conn.read(&mut chunk).unwrap();
            assert!(n > 0, "closed without the -d end's end of stream");
            buf.extend_from_slice(&chunk[..n]);
            match ready.waiting(&mut buf).unwrap() {
                Waiting::NeedMore(r) => ready = r,
                Waiting::Retired => break,
            }
        }
        // A FIN for an answer (an `-e` end sends its own end of stream first); the -d end then closes.
        let _ = self.conn.shutdown(std::net::Shutdown::Write);
        assert_eq!(read_until_closed(&mut self.conn).unwrap_or_default(), b"", "nothing after the end");
    }
}

/// Opens every record in `buf` with `rx`: the data, and whether the end of stream came.
fn open_all(rx: &mut Opener, buf: &mut Vec<u8>) -> (Vec<u8>, bool) {
    let (mut data, mut ended, mut at) = (Vec::new(), false, 0);
    while let Some(opened) = rx.open(&mut buf[at..]).unwrap() {
        match opened.record {
            Record::Data(d) => data.extend_from_slice(d),
            Record::End => ended = true,
        }
        at += opened.consumed;
    }
    buf.drain(..at);
    (data, ended)
}

/// Reads from `conn` until `want` bytes of data have been opened.
fn read_data(conn: &mut TcpStream, rx: &mut Opener, want: usize) -> Vec<u8> {
    let (mut got, mut buf) = (Vec::new(), Vec::new());
    while got.len() < want {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {} of {want} bytes", got.len());
        buf.extend_from_slice(&chunk[..n]);
        got.extend(open_all(rx, &mut buf).0);
    }
    got
}

fn d_end(dir: &Path, key: &Path, target: &str, extra: &[&str]) -> (Spiped, String) {
    let source = format!("[127.0.0.1]:{}", free_port());
    let args = [&["-d", "-s", &source, "-t", target, "-k", key.to_str().unwrap()][..], extra].concat();
    (SpipedCmd::new(dir, "d").args(args).start(), plain_addr(&source))
}

#[test]
fn a_parked_connection_reaches_the_target_only_once_put_to_use() {
    let dir = scratch("park-use");
    let key = key_file(&dir, "k");
    let redis = Redis::start(&dir, false);
    let (_d, addr) = d_end(&dir, &key, &format!("[127.0.0.1]:{}", redis.port), &[]);
    let before = redis.connections_received();
    let spares: Vec<Spare> = (0..3).map(|_| parked(&addr, &key)).collect();
    // The -d end answered each park request, and so had decided: no connection to Redis.
    assert_eq!(redis.connections_received(), before + 1, "only our own INFO reached Redis");
    for spare in spares {
        let (mut conn, _tx, mut rx) = spare.take(b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(read_data(&mut conn, &mut rx, 7), b"+PONG\r\n");
    }
    assert_eq!(redis.connections_received(), before + 2 + 3, "one connection each, once put to use");
}

#[test]
fn a_service_that_speaks_first_is_heard_as_soon_as_a_silent_client_takes_the_connection() {
    let dir = scratch("park-speaks");
    let key = key_file(&dir, "k");
    let (_d, addr) = d_end(&dir, &key, &format!("[127.0.0.1]:{}", echo_server_saying(b"hello\n")), &[]);
    let spare = parked(&addr, &key);
    let (mut conn, _tx, mut rx) = spare.take(b"");
    assert_eq!(read_data(&mut conn, &mut rx, 6), b"hello\n");
}

#[test]
fn a_spare_retired_by_the_initiator_never_reaches_the_target() {
    let dir = scratch("park-retire");
    let key = key_file(&dir, "k");
    let redis = Redis::start(&dir, false);
    let metrics = format!("127.0.0.1:{}", free_port());
    let (_d, addr) = d_end(&dir, &key, &format!("[127.0.0.1]:{}", redis.port), &["--metrics", &metrics]);
    let before = redis.connections_received();
    let Spare { mut conn, ready } = parked(&addr, &key);
    let mut wire = Vec::new();
    ready.retire(&mut wire).unwrap();
    conn.write_all(&wire).unwrap();
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    // The -d end answers with its end of stream and closes.
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    assert!(!rest.is_empty(), "the -d end's end of stream");
    eventually("the unused connection counted", Duration::from_secs(20), || {
        let page = support::http::get(&metrics, "/metrics").map_err(|e| e.to_string())?.body;
        if page.contains("spiped_connections_completed_total{outcome=\"unused\"} 1") {
            Ok(())
        } else {
            Err(page)
        }
    });
    assert_eq!(redis.connections_received(), before + 1, "only our own INFO reached Redis");
}

#[test]
fn parked_connections_have_a_limit_of_their_own() {
    let dir = scratch("park-limit");
    let key = key_file(&dir, "k");
    let target = format!("[127.0.0.1]:{}", echo_server());
    let (_d, addr) = d_end(&dir, &key, &target, &["--max-parked", "2", "-n", "1"]);
    let first = parked(&addr, &key);
    let second = parked(&addr, &key);
    assert!(matches!(park(&addr, &key), Parking::Refused), "a third is refused: the room is for two");
    // Parked connections do not count against -n: a connection put to use does.
    let (mut conn, mut tx, mut rx) = first.take(b"one");
    assert_eq!(read_data(&mut conn, &mut rx, 3), b"one");
    // Its place is free again once it is put to use.
    let third = parked(&addr, &key);
    let mut end = Vec::new();
    tx.seal_end(&mut end).unwrap();
    conn.write_all(&end).unwrap();
    drop((second, third));
}

#[test]
fn a_parked_connection_is_retired_after_the_park_timeout() {
    let dir = scratch("park-timeout");
    let key = key_file(&dir, "k");
    let (_d, addr) = d_end(&dir, &key, &format!("[127.0.0.1]:{}", echo_server()), &["--park-timeout", "0.5"]);
    parked(&addr, &key).wait_retired();
}

#[test]
fn a_draining_end_retires_its_parked_connections_at_once_and_exits() {
    let dir = scratch("park-drain");
    let key = key_file(&dir, "k");
    let (mut d, addr) = d_end(&dir, &key, &format!("[127.0.0.1]:{}", echo_server()), &[]);
    let spares: Vec<Spare> = (0..3).map(|_| parked(&addr, &key)).collect();
    d.signal(Signal::SIGTERM);
    for spare in spares {
        spare.wait_retired();
    }
    assert!(d.wait_exit(Duration::from_secs(20)).success(), "{}", d.log_text());
}

#[test]
fn a_parked_connection_whose_key_a_reload_removed_serves_no_one() {
    let dir = scratch("park-revoked");
    let keys = dir.join("keys");
    std::fs::create_dir(&keys).unwrap();
    let (old, new) = (key_file(&keys, "a-old"), key_file(&keys, "b-new"));
    let redis = Redis::start(&dir, false);
    let (d, addr) = d_end(&dir, &keys, &format!("[127.0.0.1]:{}", redis.port), &[]);
    let before = redis.connections_received();
    let revoked = parked(&addr, &old);
    let kept = parked(&addr, &new);
    std::fs::remove_file(&old).unwrap();
    d.signal(Signal::SIGHUP);
    wait_for_log(&d, "reloaded: new connections use these keys");
    // The one parked under the removed key is reset when put to use, and never reaches Redis.
    let (mut conn, _tx, _rx) = revoked.take(b"*1\r\n$4\r\nPING\r\n");
    assert!(read_until_closed(&mut conn).map_or(true, |got| got.is_empty()), "nothing comes back");
    assert_eq!(redis.connections_received(), before + 1, "only our own INFO reached Redis");
    // The one under the key that stays is served.
    let (mut conn, _tx, mut rx) = kept.take(b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(read_data(&mut conn, &mut rx, 7), b"+PONG\r\n");
}
