//! Micro-benchmarks of the I/O-free protocol core, `spiped::proto`.
//!
//! Run with `cargo bench --bench proto`; `cargo test --benches` runs each benchmark once as a smoke
//! test. Everything happens in memory on one thread: no sockets, no syscalls apart from the clock.
//!
//! What is measured:
//!
//! - `handshake/full`: one complete handshake, both ends, from two fresh ephemeral keys
//!   (`EphemeralKey::generate(&mut rand::rng())`) through `Initiator::start`, `Responder::accept`,
//!   `Initiator::read_response` and `Unconfirmed::confirm`.
//! - `handshake/initiator`: the initiator's share only: key generation, `Initiator::start` and
//!   `Initiator::read_response` (which also seals the key-confirmation record).
//! - `handshake/responder`: the responder's share only: key generation, `Responder::accept` and
//!   `Unconfirmed::confirm` (which opens the key-confirmation record).
//!
//!   Message 2 depends on the initiator's ephemeral key and the confirmation record on both, so the
//!   per-side benchmarks replay a real handshake: the untimed setup runs a whole handshake in which the
//!   measured side's key comes from a `StdRng` with a fresh random seed, and the timed routine gets a
//!   second `StdRng` with the same seed, so it generates the same key and the peer's precomputed
//!   message verifies. Every routine unwraps its results, so a replay that went wrong would panic
//!   rather than time a failure path.
//! - `keys/refuse/<n>`, `keys/accept-last/<n>`: a responder holding `n` keys. `refuse`: a hello made
//!   under none of them, so `Responder::accept` checks message 1's tag under each and fails before any
//!   Diffie-Hellman: the per-key cost alone. `accept-last`: a hello under the last of them: `n` tag
//!   checks, then the one X25519 exchange and message 2. The responder's ephemeral key is made in the
//!   untimed setup.
//! - `seal/<size>`: `Seal::seal_frame`, the zero-copy path, sealing a `<size>`-byte body in place
//!   in one reused frame (no allocation, no copy of the data in).
//! - `open/<size>`: `Opener::open` of records sealed beforehand, opened in order from the front of a
//!   buffer exactly as the daemon does. Sealing happens outside the timed region, a chunk of about
//!   1 MiB at a time (see [`open`]); after each chunk the decrypted bodies are compared with the data
//!   that was sealed, also untimed.
//!
//! Sizes are record data lengths: 64 B, 1 KiB, 16 KiB and 65518 B (`RECORD_MAX_BODY`, the largest the
//! wire allows, which is also `MAX_RECORD_DATA`, what the daemon puts in one full record). Throughput is reported
//! in data bytes, not counting the 19 bytes of `RECORD_OVERHEAD`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use spiped::proto::native::{
    Confirm, EphemeralKey, Initiator, Opener, RECORD_MAX_BODY, RECORD_OVERHEAD, Responder, Sealer, TAG_LEN,
};
use spiped::proto::{Open, Psk, Record, Seal};

/// Record data sizes for `seal/<size>` and `open/<size>`.
const SIZES: [usize; 4] = [64, 1024, 16 * 1024, RECORD_MAX_BODY];

/// Where a frame's body starts, as the record format defines it.
const BODY_OFFSET: usize = <Sealer as Seal>::BODY_OFFSET;

/// Roughly how many bytes of records `open/<size>` seals before timing their opening.
const OPEN_CHUNK_BYTES: usize = 1 << 20;

fn psk() -> Psk {
    Psk::from_key_file(b"benchmark key file: any bytes will do, 32 or more")
}

/// A fresh seed for a `StdRng` whose key the timed routine regenerates.
fn fresh_seed() -> [u8; 32] {
    rand::rng().random()
}

/// Runs a whole handshake and returns the initiator's sending half and the responder's receiving
/// half, both past the key-confirmation record.
fn connected_pair(psk: &Psk) -> (Sealer, Opener) {
    let mut rng = rand::rng();
    let (initiator, hello) = Initiator::start(psk, EphemeralKey::generate(&mut rng));
    let (unconfirmed, response, _) =
        Responder::accept(std::slice::from_ref(psk), &hello, EphemeralKey::generate(&mut rng))
            .expect("honest hello");
    let mut first = Vec::new();
    let client = initiator.read_response(&response, &mut first).expect("honest response");
    let Confirm::Confirmed { transport, .. } = unconfirmed.confirm(&mut first).expect("honest record") else {
        panic!("the whole confirmation record is in the buffer");
    };
    let (sealer, _) = client.split();
    let (_, opener) = transport.split();
    (sealer, opener)
}

/// Data to seal: a recognisable pattern, so a wrong decryption cannot pass for the right one.
fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 131 + 7) as u8).collect()
}

fn handshake(c: &mut Criterion) {
    let psk = psk();
    let mut group = c.benchmark_group("handshake");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));

    group.bench_function("full", |b| {
        let mut rng = rand::rng();
        let mut wire = Vec::with_capacity(RECORD_OVERHEAD);
        b.iter(|| {
            let (initiator, hello) = Initiator::start(&psk, EphemeralKey::generate(&mut rng));
            let (unconfirmed, response, _) = Responder::accept(
                std::slice::from_ref(&psk),
                black_box(&hello),
                EphemeralKey::generate(&mut rng),
            )
            .expect("honest hello");
            wire.clear();
            let client = initiator.read_response(black_box(&response), &mut wire).expect("honest response");
            let sent = wire.len();
            let Confirm::Confirmed { transport, consumed, .. } =
                unconfirmed.confirm(black_box(&mut wire)).expect("honest record")
            else {
                panic!("the whole confirmation record is in the buffer");
            };
            assert_eq!(consumed, sent);
            (client, transport)
        });
    });

    group.bench_function("initiator", |b| {
        b.iter_batched(
            || {
                let seed = fresh_seed();
                let (_, hello) = Initiator::start(&psk, EphemeralKey::generate(&mut StdRng::from_seed(seed)));
                let (_, response, _) = Responder::accept(
                    std::slice::from_ref(&psk),
                    &hello,
                    EphemeralKey::generate(&mut rand::rng()),
                )
                .expect("honest hello");
                (StdRng::from_seed(seed), response, Vec::with_capacity(RECORD_OVERHEAD))
            },
            |(mut rng, response, mut out)| {
                let (initiator, hello) = Initiator::start(&psk, EphemeralKey::generate(&mut rng));
                black_box(&hello);
                let transport = initiator
                    .read_response(&response, &mut out)
                    .expect("the replayed key makes the same hello, so the response verifies");
                (transport, out)
            },
            BatchSize::SmallInput,
        );
    });

    group.bench_function("responder", |b| {
        b.iter_batched(
            || {
                let seed = fresh_seed();
                let (initiator, hello) = Initiator::start(&psk, EphemeralKey::generate(&mut rand::rng()));
                let (_, response, _) = Responder::accept(
                    std::slice::from_ref(&psk),
                    &hello,
                    EphemeralKey::generate(&mut StdRng::from_seed(seed)),
                )
                .expect("honest hello");
                let mut first = Vec::new();
                initiator.read_response(&response, &mut first).expect("honest response");
                (StdRng::from_seed(seed), hello, first)
            },
            |(mut rng, hello, mut first)| {
                let (unconfirmed, response, _) =
                    Responder::accept(std::slice::from_ref(&psk), &hello, EphemeralKey::generate(&mut rng))
                        .expect("honest hello");
                black_box(&response);
                let sent = first.len();
                let Confirm::Confirmed { transport, consumed, .. } = unconfirmed
                    .confirm(&mut first)
                    .expect("the replayed key makes the same keys, so the first record opens")
                else {
                    panic!("the whole confirmation record is in the buffer");
                };
                assert_eq!(consumed, sent);
                (transport, first)
            },
            BatchSize::SmallInput,
        );
    });

    group.finish();
}

fn seal(c: &mut Criterion) {
    let psk = psk();
    let mut group = c.benchmark_group("seal");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            let (mut sealer, mut opener) = connected_pair(&psk);
            let data = pattern(size);
            let mut frame = vec![0; Sealer::frame_len(size)];

            // Once, untimed: this sealer's frames open to the data that went in.
            frame[BODY_OFFSET..BODY_OFFSET + size].copy_from_slice(&data);
            sealer.seal_frame(&mut frame, size).expect("sealing succeeds");
            let opened = opener.open(&mut frame).expect("the record opens").expect("a whole record");
            assert_eq!(opened.consumed, RECORD_OVERHEAD + size);
            assert_eq!(opened.record, Record::Data(&data));

            // The frame's body is re-encrypted in place each time; ChaCha20-Poly1305 takes the same
            // time whatever the bytes are.
            b.iter(|| sealer.seal_frame(black_box(&mut frame), size).expect("sealing succeeds"));
        });
    }

    group.finish();
}

/// Each record opens once, with the next counter, so `iter_custom` supplies exactly as many freshly
/// sealed records as criterion asks for, sealing them a chunk at a time outside the timed region.
fn open(c: &mut Criterion) {
    let psk = psk();
    let mut group = c.benchmark_group("open");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            let (mut sealer, mut opener) = connected_pair(&psk);
            let data = pattern(size);
            let frame_len = Sealer::frame_len(size);
            let per_chunk = (OPEN_CHUNK_BYTES / frame_len).max(1);
            let mut wire = Vec::with_capacity(per_chunk * frame_len);

            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = usize::try_from(left).map_or(per_chunk, |left| left.min(per_chunk));

                    wire.clear();
                    wire.resize(n * frame_len, 0);
                    for frame in wire.chunks_exact_mut(frame_len) {
                        frame[BODY_OFFSET..BODY_OFFSET + size].copy_from_slice(&data);
                        sealer.seal_frame(frame, size).expect("sealing succeeds");
                    }

                    let start = Instant::now();
                    let mut at = 0;
                    for _ in 0..n {
                        let opened =
                            opener.open(&mut wire[at..]).expect("the record opens").expect("a whole record");
                        let Record::Data(body) = opened.record else {
                            panic!("only data records were sealed");
                        };
                        black_box(body);
                        at += opened.consumed;
                    }
                    timed += start.elapsed();

                    assert_eq!(at, wire.len(), "every record was opened");
                    for frame in wire.chunks_exact(frame_len) {
                        assert!(
                            frame[BODY_OFFSET..frame_len - TAG_LEN] == data[..],
                            "opened to the sealed data"
                        );
                    }
                    left -= n as u64;
                }
                timed
            });
        });
    }

    group.finish();
}

/// How many keys `keys/...` gives the responder.
const KEY_COUNTS: [usize; 2] = [1, 16];

fn keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("keys");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let stranger = Psk::from_key_file(b"a key file the responder does not hold");
    for n in KEY_COUNTS {
        let keys: Vec<Psk> =
            (0..n).map(|i| Psk::from_key_file(format!("benchmark key {i}").as_bytes())).collect();
        let (_, refused) = Initiator::start(&stranger, EphemeralKey::generate(&mut rand::rng()));
        let (_, accepted) = Initiator::start(&keys[n - 1], EphemeralKey::generate(&mut rand::rng()));
        for (name, hello, works) in [("refuse", refused, false), ("accept-last", accepted, true)] {
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter_batched(
                    || EphemeralKey::generate(&mut rand::rng()),
                    |e| {
                        let result = Responder::accept(&keys, black_box(&hello), e);
                        assert_eq!(result.as_ref().map(|(_, _, key)| *key).ok(), works.then_some(n - 1));
                        result
                    },
                    BatchSize::SmallInput,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(benches, handshake, keys, seal, open);
criterion_main!(benches);
