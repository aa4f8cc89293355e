//! Byte-exact transport through the built `spiped` pair: a large transfer each way, many connections
//! at once, half-close in both directions, and truncation turned into a reset.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use spiped::proto::Psk;
use spiped::proto::native::{EphemeralKey, Initiator, MSG2_LEN};
use support::*;

#[test]
fn one_gibibyte_each_way_in_one_connection() {
    let dir = scratch("gib");
    let key = key_file(&dir, "k");
    let pipe = Pipe::start(&dir, &key, &format!("[127.0.0.1]:{}", echo_server()), &[], &[]);
    let data = pattern(1, 1 << 30);
    let back = echo_through(TcpStream::connect(pipe.e_addr()).unwrap(), &data);
    assert_eq!(back.len(), data.len());
    assert_eq!(digest(&back), digest(&data));
}

#[test]
fn two_hundred_concurrent_connections_each_intact() {
    let dir = scratch("concurrent");
    let key = key_file(&dir, "k");
    let pipe = Pipe::start(&dir, &key, &format!("[127.0.0.1]:{}", echo_server()), &["-n", "0"], &["-n", "0"]);
    let workers: Vec<_> = (0..200u64)
        .map(|i| {
            let addr = pipe.e_addr();
            std::thread::spawn(move || {
                let data = pattern(i + 10, 64 * 1024 + i as usize * 97);
                let back = echo_through(TcpStream::connect(addr).unwrap(), &data);
                assert_eq!(digest(&back), digest(&data), "connection {i}");
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn half_close_crosses_the_tunnel_both_ways() {
    let dir = scratch("half-close");
    let key = key_file(&dir, "k");
    let server = CollectServer::start();
    let pipe = Pipe::start(&dir, &key, &format!("[127.0.0.1]:{}", server.port), &[], &[]);

    let mut client = TcpStream::connect(pipe.e_addr()).unwrap();
    let request = pattern(7, 300_000);
    client.write_all(&request).unwrap();
    // The server only answers once it has seen our end of stream: the FIN must cross the tunnel.
    client.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    assert_eq!(digest(&reply), digest(&request), "the whole reply arrives after our half-close");
    let seen = server.outcomes.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(seen.unwrap().len(), request.len(), "the server read a clean end of stream");
}

/// A service that speaks first (SMTP, SSH, a Redis replica's master...) must hear the client
/// connect and have its greeting delivered while the client has sent nothing: the `-e` end may not
/// hold its key confirmation back waiting for client data to send it with.
#[test]
fn a_service_that_speaks_first_is_heard_before_the_client_sends() {
    let dir = scratch("speaks-first");
    let key = key_file(&dir, "k");
    let port = echo_server_saying(b"220 ready\r\n");
    let pipe = Pipe::start(&dir, &key, &format!("[127.0.0.1]:{port}"), &[], &[]);

    let mut client = TcpStream::connect(pipe.e_addr()).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut greeting = [0u8; 11];
    client.read_exact(&mut greeting).expect("the greeting arrives before the client writes anything");
    assert_eq!(&greeting, b"220 ready\r\n");
    client.write_all(b"HELO\r\n").unwrap();
    let mut echo = [0u8; 6];
    client.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"HELO\r\n");
}

/// A client that connects and closes without a byte: the key confirmation and the end of stream
/// leave together, and the target sees a connection that ends cleanly, empty.
#[test]
fn a_client_that_sends_nothing_ends_cleanly_at_the_target() {
    let dir = scratch("empty-client");
    let key = key_file(&dir, "k");
    let server = CollectServer::start();
    let pipe = Pipe::start(&dir, &key, &format!("[127.0.0.1]:{}", server.port), &[], &[]);

    let mut client = TcpStream::connect(pipe.e_addr()).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let seen = server.outcomes.recv_timeout(Duration::from_secs(10)).expect("the target saw a connection");
    assert_eq!(seen.expect("a clean end of stream, not a reset"), b"");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("the client's connection ends cleanly too");
    assert!(rest.is_empty());
}

/// Speaks the protocol with the library, sends one record, then closes without the end-of-stream
/// record: the target must see a reset, never a clean end.
#[test]
fn a_stream_cut_without_end_of_stream_resets_the_target() {
    let dir = scratch("truncation");
    let key = key_file(&dir, "k");
    let server = CollectServer::start();
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let target = format!("[127.0.0.1]:{}", server.port);
    let _d = Spiped::start(
        &dir,
        "d",
        &["-d", "-s", &d_source, "-t", &target, "-k", key.to_str().unwrap()],
        &d_source,
    );

    let psk = Psk::from_key_file(&std::fs::read(&key).unwrap());
    let mut conn = TcpStream::connect(plain_addr(&d_source)).unwrap();
    let (initiator, hello) = Initiator::start(&psk, EphemeralKey::generate(&mut rand::rng()));
    conn.write_all(&hello).unwrap();
    let mut msg2 = [0u8; MSG2_LEN];
    conn.read_exact(&mut msg2).unwrap();
    let mut wire = Vec::new();
    let (mut tx, _) = initiator.read_response(&msg2, &mut wire).unwrap().split();
    tx.seal_data(b"partial request", &mut wire).unwrap();
    conn.write_all(&wire).unwrap();
    conn.shutdown(Shutdown::Write).unwrap(); // a FIN, but no authenticated end of stream

    let seen = server.outcomes.recv_timeout(Duration::from_secs(10)).unwrap();
    let err = seen.expect_err("the target must not see a clean end of stream");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    drop(conn);
}
