//! Micro-benchmarks of classic spiped's protocol core, `spiped::proto::classic`, in memory on one
//! thread.
//!
//! Run with `cargo bench --bench classic`; `cargo test --benches` runs each once as a smoke test. The
//! backends follow the cargo features, so each backend is measured by its own build:
//! `cargo bench --bench classic` (default: OpenSSL's exponentiation, aws-lc's AES-CTR),
//! `... --no-default-features --features aws-lc` (crypto-bigint's exponentiation, aws-lc's AES-CTR)
//! and `... --no-default-features` (pure Rust throughout). HMAC-SHA256 is the pure-Rust crate's in all.
//!
//! What is measured:
//!
//! - `handshake/initiator`, `handshake/responder`: one side's whole share of a handshake, with
//!   forward secrecy (two exponentiations each): `start`, `read_nonce` and `read_y`, against the
//!   peer's messages made beforehand. A responder's y and MAC depend only on the nonces, its key and
//!   K, not on the initiator's y, and the other way round, so fixed nonces and a fixed peer make
//!   valid messages for every fresh private value the timed side draws.
//! - `handshake/initiator-f`, `handshake/responder-f`: the same with `-f` on both ends (no
//!   exponentiation: PBKDF2 and HMAC only).
//! - `keys/refuse/<n>`: a responder holding `n` keys reads an initiator's y made under none of them:
//!   `start`, `read_nonce` (a PBKDF2 per key) and `read_y` (an HMAC per key), refused before any
//!   exponentiation: the per-key cost alone.
//! - `exponentiation`: `Initiator::read_nonce` with forward secrecy: one exponentiation of the
//!   generator, and two HMAC-SHA256 computations (about 2 µs) besides.
//! - `seal/<size>`: `Seal::seal_frame` of a `<size>`-byte body in place in one reused 1060-byte frame.
//! - `open/<size>`: `Open::open` of packets sealed beforehand (untimed), in order from the front of a
//!   buffer, as the daemon does; the opened data is checked after each chunk, untimed.
//!
//! Throughput is in data bytes (a packet always takes 1060 bytes on the wire).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use spiped::proto::Psk;
use spiped::proto::classic::{
    DhPrivate, ForwardSecrecy, HandshakeError, Initiator, MAX_DATA, NONCE_LEN, Opener, PACKET_LEN, Responder,
    Sealer, Transport, Y_AND_MAC_LEN,
};
use spiped::proto::framing::{Open, Seal};

/// Data sizes for `seal/<size>` and `open/<size>`: one byte, and a full packet.
const SIZES: [usize; 2] = [64, MAX_DATA];

/// The fixed nonces every benchmark handshake uses.
const NONCE_C: [u8; NONCE_LEN] = [0xc0; NONCE_LEN];
const NONCE_S: [u8; NONCE_LEN] = [0x5e; NONCE_LEN];

/// Packets `open/<size>` seals before timing their opening.
const OPEN_CHUNK: usize = 1024;

fn psk() -> Psk {
    Psk::from_key_file(b"benchmark key file: any bytes will do")
}

fn fresh() -> DhPrivate {
    DhPrivate::generate(&mut rand::rng())
}

/// The initiator's y and MAC, and the responder's, for the fixed nonces.
fn messages(fs: ForwardSecrecy) -> ([u8; Y_AND_MAC_LEN], [u8; Y_AND_MAC_LEN]) {
    let (_, y_c) = Initiator::start(&psk(), fs, NONCE_C).0.read_nonce(&NONCE_S, fresh());
    let responder = Responder::start(&[psk()], fs, NONCE_S).0.read_nonce(&NONCE_C);
    let (_, y_s, _) = responder.read_y(&y_c, fresh()).expect("the same key");
    (y_c, y_s)
}

fn initiator(psk: &Psk, fs: ForwardSecrecy, y_s: &[u8; Y_AND_MAC_LEN]) -> Transport {
    let (initiator, _) = Initiator::start(psk, fs, NONCE_C);
    let (initiator, _) = initiator.read_nonce(&NONCE_S, fresh());
    initiator.read_y(y_s).expect("the responder's message verifies")
}

fn responder(psk: &Psk, fs: ForwardSecrecy, y_c: &[u8; Y_AND_MAC_LEN]) -> Transport {
    let (responder, _) = Responder::start(std::slice::from_ref(psk), fs, NONCE_S);
    let responder = responder.read_nonce(&NONCE_C);
    responder.read_y(y_c, fresh()).expect("the initiator's message verifies").0
}

fn handshake(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    let psk = psk();
    for (fs, suffix) in [(ForwardSecrecy::Offer, ""), (ForwardSecrecy::Skip, "-f")] {
        let (y_c, y_s) = messages(fs);
        group.bench_function(format!("initiator{suffix}"), |b| b.iter(|| initiator(&psk, fs, &y_s)));
        group.bench_function(format!("responder{suffix}"), |b| b.iter(|| responder(&psk, fs, &y_c)));
    }
    group.finish();
    c.bench_function("exponentiation", |b| {
        b.iter_batched(
            || (Initiator::start(&psk, ForwardSecrecy::Offer, NONCE_C).0, fresh()),
            |(initiator, private)| initiator.read_nonce(&NONCE_S, private),
            BatchSize::SmallInput,
        )
    });
}

/// A connected pair's initiator-to-responder direction.
fn direction() -> (Sealer, Opener) {
    let (y_c, y_s) = messages(ForwardSecrecy::Skip);
    let (tx, _) = initiator(&psk(), ForwardSecrecy::Skip, &y_s).split();
    let (_, rx) = responder(&psk(), ForwardSecrecy::Skip, &y_c).split();
    (tx, rx)
}

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let (mut tx, _) = direction();
        let mut frame = vec![0x42u8; PACKET_LEN];
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter(|| tx.seal_frame(black_box(&mut frame), size).expect("far from the counter's limit"))
        });
    }
    group.finish();
}

fn open(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let (mut tx, mut rx) = direction();
        let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let count = left.min(OPEN_CHUNK);
                    let mut wire = Vec::with_capacity(count * PACKET_LEN);
                    for _ in 0..count {
                        tx.seal_data(&data, &mut wire).expect("far from the counter's limit");
                    }
                    let start = Instant::now();
                    let mut at = 0;
                    for _ in 0..count {
                        let opened = rx.open(&mut wire[at..]).expect("in order").expect("whole");
                        at += black_box(opened).consumed;
                    }
                    timed += start.elapsed();
                    for packet in wire.chunks(PACKET_LEN) {
                        assert_eq!(&packet[..size], &data[..], "each packet opened in place to the data");
                    }
                    left -= count;
                }
                timed
            })
        });
    }
    group.finish();
}

/// How many keys `keys/refuse/<n>` gives the responder.
const KEY_COUNTS: [usize; 2] = [1, 16];

fn keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("keys");
    let stranger = Psk::from_key_file(b"a key file the responder does not hold");
    let (_, y_c) = Initiator::start(&stranger, ForwardSecrecy::Skip, NONCE_C).0.read_nonce(&NONCE_S, fresh());
    for n in KEY_COUNTS {
        let keys: Vec<Psk> =
            (0..n).map(|i| Psk::from_key_file(format!("benchmark key {i}").as_bytes())).collect();
        group.bench_with_input(BenchmarkId::new("refuse", n), &n, |b, _| {
            b.iter(|| {
                let responder =
                    Responder::start(&keys, ForwardSecrecy::Offer, NONCE_S).0.read_nonce(&NONCE_C);
                let refused = responder.read_y(black_box(&y_c), fresh()).map(|(_, _, key)| key);
                assert_eq!(refused, Err(HandshakeError::BadMac));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, handshake, keys, seal, open);
criterion_main!(benches);
