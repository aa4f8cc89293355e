//! An in-memory demonstration of the protocol core: a throwaway key, a full handshake between an
//! initiator and a responder, then data through the record layer in both directions with half-close,
//! and a short report of what crossed and how fast. No sockets: this shows the protocol, not the daemon.
//!
//! `cargo run --release --example demo [MiB]` (default 256 MiB each way).

use std::time::Instant;

use spiped::proto::{
    Confirm, EphemeralKey, HELLO_LEN, Initiator, MAX_RECORD_DATA, MSG2_LEN, Opener, Psk, RECORD_OVERHEAD,
    Record, Responder, Sealer,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(256);
    let mut rng = rand::rng();
    let key_file: [u8; 32] = rand::random();
    let psk = Psk::from_key_file(&key_file);

    let started = Instant::now();
    let (initiator, hello) = Initiator::start(&psk, EphemeralKey::generate(&mut rng));
    let (unconfirmed, msg2) = Responder::accept(&psk, &hello, EphemeralKey::generate(&mut rng))?;
    let mut first = Vec::new();
    let (mut client_tx, mut client_rx) = initiator.read_response(&msg2, &mut first)?.split();
    let Confirm::Confirmed { transport, .. } = unconfirmed.confirm(&mut first)? else {
        return Err("the confirmation record was incomplete".into());
    };
    let (mut server_tx, mut server_rx) = transport.split();
    let handshake = started.elapsed();
    println!(
        "handshake: hello {HELLO_LEN} B ->, reply {MSG2_LEN} B <-, confirmation {RECORD_OVERHEAD} B ->; {handshake:.1?}"
    );

    let block: Vec<u8> = (0..MAX_RECORD_DATA).map(|i| (i % 251) as u8).collect();
    for (name, tx, rx) in [
        ("initiator -> responder", &mut client_tx, &mut server_rx),
        ("responder -> initiator", &mut server_tx, &mut client_rx),
    ] {
        let (bytes, wire, elapsed) = pump(tx, rx, &block, mib)?;
        let gbit = bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9;
        println!(
            "{name}: {} MiB checked, {} B of framing ({:.3}%), authenticated end; {elapsed:.2?}, {gbit:.2} Gbit/s sealed and opened on one core",
            bytes >> 20,
            wire - bytes,
            (wire - bytes) as f64 * 100.0 / bytes as f64
        );
    }
    Ok(())
}

/// Seals `mib` MiB of `block` and the end of stream, opens it all on the other side and checks it.
fn pump(
    tx: &mut Sealer,
    rx: &mut Opener,
    block: &[u8],
    mib: usize,
) -> Result<(usize, usize, std::time::Duration), Box<dyn std::error::Error>> {
    let rounds = (mib << 20) / block.len();
    let (mut bytes, mut wire_bytes) = (0, 0);
    let mut wire = Vec::with_capacity(block.len() + RECORD_OVERHEAD);
    let started = Instant::now();
    for round in 0..=rounds {
        wire.clear();
        if round == rounds {
            tx.seal_end(&mut wire)?;
        } else {
            tx.seal_data(block, &mut wire)?;
        }
        wire_bytes += wire.len();
        let opened = rx.open(&mut wire)?.ok_or("a whole record did not open")?;
        let consumed = opened.consumed;
        match opened.record {
            Record::Data(data) if data == block => bytes += data.len(),
            Record::End if round == rounds => {}
            _ => return Err("the record opened to something else".into()),
        }
        if round == rounds {
            rx.finish(&wire[consumed..])?;
        }
    }
    Ok((bytes, wire_bytes, started.elapsed()))
}
