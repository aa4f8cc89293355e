//! Half-close: the client shuts its sending side, and the reply, which the service only sends once it
//! has read that end of stream (as spiped's own test 08 does with a slow echo), still arrives. The
//! classic protocol carries a direction's end as a plain TCP FIN.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use crate::ends::{Matrix, Pair};
use crate::support::{CollectServer, digest, pattern, scratch};

fn the_reply_arrives_after_the_client_half_closes(row: Matrix) {
    let dir = scratch("classic-half-close");
    let server = CollectServer::start();
    let pair = Pair::start(&dir, row.ends(&[], &[]), &format!("[127.0.0.1]:{}", server.port));

    let mut client = TcpStream::connect(&pair.e_addr).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // Not a multiple of a classic packet's 1024 data bytes: the last packet is a partial one.
    let request = pattern(8, 300_001);
    let mut reply = Vec::new();
    client
        .write_all(&request)
        .and_then(|()| client.shutdown(Shutdown::Write))
        .and_then(|()| client.read_to_end(&mut reply))
        .unwrap_or_else(|e| panic!("{e}\n{}", pair.logs()));
    assert_eq!(digest(&reply), digest(&request), "the whole reply arrives after our half-close");
    let seen = server.outcomes.recv_timeout(Duration::from_secs(20)).expect("the service saw the connection");
    assert_eq!(seen.expect("the service read a clean end of stream").len(), request.len());
}

#[test]
fn debian_pair_baseline() {
    the_reply_arrives_after_the_client_half_closes(Matrix::DebianPair);
}

#[test]
fn ours_classic_e_to_debian_d() {
    the_reply_arrives_after_the_client_half_closes(Matrix::OursToDebian);
}

#[test]
fn debian_e_to_ours_d() {
    the_reply_arrives_after_the_client_half_closes(Matrix::DebianToOurs);
}
