//! A classic stream that ends inside a packet is passed on as a reset, never as a clean end (spiped
//! 1.6 drops the partial packet and sends a FIN, so a cut upload looks complete to its service).
//! The classic peer here is the test itself, speaking `spiped::proto::classic` over std sockets, so
//! it can stop exactly where it likes: as the initiator in front of our `-d` (default: both
//! protocols), and as the responder behind our `-e --protocol classic`. Each cut has a control that
//! stops at a packet boundary instead and must end cleanly, and each scenario also runs with spiped
//! 1.6 in our end's place as its baseline: there the cut is passed off as a clean end, which proves
//! that the reset seen through ours comes from ours and not from the harness.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use spiped::proto::Psk;
use spiped::proto::classic::{
    DhPrivate, ForwardSecrecy, Initiator, NONCE_LEN, PACKET_LEN, Responder, Sealer, Y_AND_MAC_LEN,
};

use crate::ends::{CLASSIC, End, EndSpec};
use crate::support::{free_port, key_file, plain_addr, scratch};

/// How long a test waits for a stream to end before it fails (a guard, not a timing assertion).
const ENDED_WITHIN: Duration = Duration::from_secs(30);

/// What one side of a connection received, and how its stream ended.
#[derive(Debug)]
struct Outcome {
    /// Every byte read before the end.
    data: Vec<u8>,
    /// `Ok` for a clean end (a FIN), else how the read failed (a reset is `ConnectionReset`).
    end: Result<(), ErrorKind>,
}

/// Reads `stream` to its end, keeping what arrived before an error.
fn record(mut stream: TcpStream) -> Outcome {
    stream.set_read_timeout(Some(ENDED_WITHIN)).unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Outcome { data, end: Ok(()) },
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Outcome { data, end: Err(e.kind()) },
        }
    }
}

/// A service that records its one connection: what arrived and how the stream ended.
struct Recorder {
    /// The loopback port it listens on.
    port: u16,
    /// The outcome, once the stream has ended.
    outcome: Receiver<Outcome>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, outcome) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok((conn, _)) = listener.accept() {
                let _ = tx.send(record(conn));
            }
        });
        Recorder { port, outcome }
    }

    fn outcome(&self, logs: &End) -> Outcome {
        self.outcome
            .recv_timeout(ENDED_WITHIN * 2)
            .unwrap_or_else(|e| panic!("the service saw no connection end ({e}):\n{}", logs.log_text()))
    }
}

/// What the test's classic end sends after the handshake: packets, whole or cut.
fn packets(tx: &mut Sealer, whole: &[&[u8]], then_half_of: Option<&[u8]>) -> Vec<u8> {
    let mut wire = Vec::new();
    for data in whole {
        tx.seal_data(data, &mut wire).unwrap();
    }
    if let Some(data) = then_half_of {
        let mut next = Vec::new();
        tx.seal_data(data, &mut next).unwrap();
        assert_eq!(next.len(), PACKET_LEN);
        wire.extend_from_slice(&next[..PACKET_LEN / 2]);
    }
    wire
}

fn read_array<const N: usize>(conn: &mut TcpStream) -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    conn.read_exact(&mut bytes).map(|()| bytes)
}

/// The test as a classic initiator on `conn`: the handshake, then its sending direction.
fn initiate(conn: &mut TcpStream, psk: &Psk) -> Sealer {
    let mut rng = rand::rng();
    let (initiator, nonce_c) = Initiator::start(psk, ForwardSecrecy::Offer, rand::random());
    conn.write_all(&nonce_c).unwrap();
    let nonce_s = read_array::<NONCE_LEN>(conn).unwrap();
    let (initiator, y_c) = initiator.read_nonce(&nonce_s, DhPrivate::generate(&mut rng));
    conn.write_all(&y_c).unwrap();
    let y_s = read_array::<Y_AND_MAC_LEN>(conn).unwrap();
    initiator.read_y(&y_s).expect("our -d end's y verifies").split().0
}

/// The test as a classic responder on `conn`: the handshake, then its sending direction.
fn respond(conn: &mut TcpStream, psk: &Psk) -> Sealer {
    let mut rng = rand::rng();
    let (responder, nonce_s) =
        Responder::start(std::slice::from_ref(psk), ForwardSecrecy::Offer, rand::random());
    conn.write_all(&nonce_s).unwrap();
    let responder = responder.read_nonce(&read_array::<NONCE_LEN>(conn).unwrap());
    let y_c = read_array::<Y_AND_MAC_LEN>(conn).unwrap();
    let (transport, y_s, _) =
        responder.read_y(&y_c, DhPrivate::generate(&mut rng)).expect("our -e end's y verifies");
    conn.write_all(&y_s).unwrap();
    transport.split().0
}

/// `d` (our `-d` end on its default, or spiped 1.6's) in front of a recording service; the test
/// connects as a classic initiator, sends `whole` packets and then, if given, half of one more, and
/// shuts down its sending side. Returns what the service received.
fn initiator_cut(d: EndSpec, whole: &[&[u8]], then_half_of: Option<&[u8]>) -> (Outcome, End) {
    let dir = scratch("classic-truncation-d");
    let key = key_file(&dir, "k");
    let service = Recorder::start();
    let source = format!("[127.0.0.1]:{}", free_port());
    let d = d.start(&dir, "d", "-d", &source, &format!("[127.0.0.1]:{}", service.port), &key);

    let psk = Psk::from_key_file(&std::fs::read(&key).unwrap());
    let mut conn = TcpStream::connect(plain_addr(&source)).unwrap();
    let mut tx = initiate(&mut conn, &psk);
    conn.write_all(&packets(&mut tx, whole, then_half_of)).unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let outcome = service.outcome(&d);
    drop(conn);
    (outcome, d)
}

fn whole_packets_then_a_fin_reach_the_service_with_a_clean_end(d: EndSpec) {
    let (outcome, d) = initiator_cut(d, &[b"the first packet, ", b"and the second"], None);
    assert_eq!(outcome.data, b"the first packet, and the second", "{}", d.log_text());
    assert_eq!(outcome.end, Ok(()), "a FIN at a packet boundary is a clean end:\n{}", d.log_text());
}

/// The service's view of a FIN inside the second packet: the first packet's data, then the end.
fn a_fin_inside_a_packet(d: EndSpec) -> (Outcome, End) {
    let (outcome, d) = initiator_cut(d, &[b"the first packet"], Some(b"the packet cut in half"));
    assert_eq!(outcome.data, b"the first packet", "{}", d.log_text());
    (outcome, d)
}

#[test]
fn ours_d_passes_whole_packets_and_a_clean_end() {
    whole_packets_then_a_fin_reach_the_service_with_a_clean_end(EndSpec::ours(&[]));
}

#[test]
fn ours_d_passes_a_fin_inside_a_packet_as_a_reset() {
    let (outcome, d) = a_fin_inside_a_packet(EndSpec::ours(&[]));
    assert_eq!(
        outcome.end,
        Err(ErrorKind::ConnectionReset),
        "a FIN inside a packet must reach the service as a reset, never a clean end:\n{}",
        d.log_text()
    );
}

#[test]
fn debian_d_baseline_passes_whole_packets_and_a_clean_end() {
    whole_packets_then_a_fin_reach_the_service_with_a_clean_end(EndSpec::debian(&[]));
}

#[test]
fn debian_d_baseline_passes_a_fin_inside_a_packet_off_as_a_clean_end() {
    let (outcome, d) = a_fin_inside_a_packet(EndSpec::debian(&[]));
    assert_eq!(outcome.end, Ok(()), "spiped 1.6 drops the partial packet and sends a FIN:\n{}", d.log_text());
}

/// `e` (our `-e --protocol classic` end, or spiped 1.6's `-e`) in front of the test as a classic
/// responder; a client connects to the `-e` end and sends nothing; the responder sends `whole`
/// packets, then, if given, half of one more, and shuts down its sending side. Returns what the
/// client received.
fn responder_cut(e: EndSpec, whole: &[&[u8]], then_half_of: Option<&[u8]>) -> (Outcome, End) {
    let dir = scratch("classic-truncation-e");
    let key = key_file(&dir, "k");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let source = format!("[127.0.0.1]:{}", free_port());
    let target = format!("[127.0.0.1]:{}", listener.local_addr().unwrap().port());
    let e = e.start(&dir, "e", "-e", &source, &target, &key);

    let psk = Psk::from_key_file(&std::fs::read(&key).unwrap());
    let client = TcpStream::connect(plain_addr(&source)).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    let mut tx = respond(&mut conn, &psk);
    conn.write_all(&packets(&mut tx, whole, then_half_of)).unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let outcome = record(client);
    drop(conn);
    (outcome, e)
}

fn whole_packets_then_a_fin_from_the_responder_reach_the_client_with_a_clean_end(e: EndSpec) {
    let (outcome, e) = responder_cut(e, &[b"a reply in ", b"two packets"], None);
    assert_eq!(outcome.data, b"a reply in two packets", "{}", e.log_text());
    assert_eq!(outcome.end, Ok(()), "a FIN at a packet boundary is a clean end:\n{}", e.log_text());
}

/// The client's view of the responder's FIN inside its second packet.
fn a_fin_inside_a_packet_from_the_responder(e: EndSpec) -> (Outcome, End) {
    let (outcome, e) = responder_cut(e, &[b"a whole reply packet"], Some(b"and one cut in half"));
    assert_eq!(outcome.data, b"a whole reply packet", "{}", e.log_text());
    (outcome, e)
}

#[test]
fn ours_e_passes_the_responders_whole_packets_and_a_clean_end() {
    whole_packets_then_a_fin_from_the_responder_reach_the_client_with_a_clean_end(EndSpec::ours(&CLASSIC));
}

#[test]
fn ours_e_passes_the_responders_fin_inside_a_packet_as_a_reset() {
    let (outcome, e) = a_fin_inside_a_packet_from_the_responder(EndSpec::ours(&CLASSIC));
    assert_eq!(
        outcome.end,
        Err(ErrorKind::ConnectionReset),
        "a responder's FIN inside a packet must reach the client as a reset:\n{}",
        e.log_text()
    );
}

#[test]
fn debian_e_baseline_passes_the_responders_whole_packets_and_a_clean_end() {
    whole_packets_then_a_fin_from_the_responder_reach_the_client_with_a_clean_end(EndSpec::debian(&[]));
}

#[test]
fn debian_e_baseline_passes_the_responders_fin_inside_a_packet_off_as_a_clean_end() {
    let (outcome, e) = a_fin_inside_a_packet_from_the_responder(EndSpec::debian(&[]));
    assert_eq!(outcome.end, Ok(()), "spiped 1.6 drops the partial packet and sends a FIN:\n{}", e.log_text());
}
