//! Proves `spiped::proto::classic` against a real classic spiped 1.x, both ways, over blocking
//! sockets on loopback: our initiator through `spiped -d` to an echo server, and `spiped -e` into our
//! responder, which echoes; each with and without `-f` on either end, and both `-g` refusals.
//!
//! ```text
//! cargo run --example classic_probe -- /usr/bin/spiped
//! ```
//!
//! It prints one line per case and exits non-zero if any case fails. A throwaway for development:
//! the daemon's own interop tests run the built binary.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use rand::RngExt;
use spiped::proto::Psk;
use spiped::proto::classic::{
    DhPrivate, ForwardSecrecy, HandshakeError, Initiator, NONCE_LEN, Opener, Responder, Transport,
    Y_AND_MAC_LEN,
};
use spiped::proto::framing::{Open, Record};

/// What each case sends: a few packets' worth, with a short tail.
const PAYLOAD_LEN: usize = 200_000 + 17;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let spiped = env::args().nth(1).unwrap_or_else(|| "/usr/bin/spiped".into());
    let dir = env::temp_dir().join(format!("classic-probe-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let key = dir.join("key");
    fs::write(&key, b"a key file shared by the probe and spiped 1.6\n")?;
    let psk = Psk::from_key_file(&fs::read(&key)?);
    let mut failed = 0;
    use ForwardSecrecy::{Offer, Require, Skip};
    let matrix =
        [(Offer, ""), (Skip, ""), (Offer, "-f"), (Skip, "-f"), (Offer, "-g"), (Require, ""), (Require, "-g")];
    for (ours, theirs) in matrix {
        let r = initiator_to_spiped_d(&spiped, &key, &psk, ours, theirs, true);
        failed += report(&format!("ours -e {ours:?} -> spiped -d {theirs}"), r);
        let r = spiped_e_to_responder(&spiped, &key, &psk, ours, theirs, Expect::Works);
        failed += report(&format!("spiped -e {theirs} -> ours -d {ours:?}"), r);
    }
    let r = initiator_to_spiped_d(&spiped, &key, &psk, Skip, "-g", false);
    failed += report("ours -e Skip -> spiped -d -g: refused", r);
    let r = initiator_to_spiped_d(&spiped, &key, &psk, Require, "-f", false);
    failed += report("ours -e Require -> spiped -d -f: refused", r);
    let r = initiator_to_spiped_d(&spiped, &key, &Psk::from_key_file(b"another key"), Offer, "", false);
    failed += report("ours -e -> spiped -d under another key: refused", r);
    let r = spiped_e_to_responder(&spiped, &key, &psk, Skip, "-g", Expect::TheyRefuse);
    failed += report("spiped -e -g -> ours -d Skip: refused by spiped", r);
    let r = spiped_e_to_responder(
        &spiped,
        &key,
        &psk,
        Require,
        "-f",
        Expect::WeRefuse(HandshakeError::NoForwardSecrecy),
    );
    failed += report("spiped -e -f -> ours -d Require: refused", r);
    let wrong = Psk::from_key_file(b"another key");
    let r = spiped_e_to_responder(&spiped, &key, &wrong, Offer, "", Expect::WeRefuse(HandshakeError::BadMac));
    failed += report("spiped -e -> ours -d under another key: refused", r);
    fs::remove_dir_all(&dir)?;
    if failed > 0 {
        return Err(format!("{failed} case(s) failed").into());
    }
    Ok(())
}

fn report(case: &str, result: Result<String>) -> usize {
    match result {
        Ok(detail) => {
            println!("ok    {case}: {detail}");
            0
        }
        Err(e) => {
            println!("FAIL  {case}: {e}");
            1
        }
    }
}

/// A spiped child, killed when dropped.
struct Spiped(Child);

impl Spiped {
    fn start(
        spiped: &str,
        mode: &str,
        source: u16,
        target: u16,
        key: &std::path::Path,
        flag: &str,
    ) -> Result<Self> {
        let mut cmd = Command::new(spiped);
        cmd.args([
            mode,
            "-F",
            "-s",
            &format!("[127.0.0.1]:{source}"),
            "-t",
            &format!("[127.0.0.1]:{target}"),
        ]);
        cmd.arg("-k").arg(key);
        if !flag.is_empty() {
            cmd.arg(flag);
        }
        let child = Spiped(cmd.spawn()?);
        let deadline = Instant::now() + Duration::from_secs(5);
        // Not by connecting: spiped -e would connect to its target for that connection.
        while !listening(source)? {
            if Instant::now() > deadline {
                return Err("spiped did not listen".into());
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(child)
    }
}

impl Drop for Spiped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a socket listens on 127.0.0.1:`port`, from the kernel's table.
fn listening(port: u16) -> Result<bool> {
    let wanted = format!("0100007F:{port:04X}");
    let table = fs::read_to_string("/proc/net/tcp")?;
    Ok(table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&wanted.as_str()) && fields.get(3) == Some(&"0A")
    }))
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn payload() -> Vec<u8> {
    let mut data = vec![0u8; PAYLOAD_LEN];
    rand::rng().fill(&mut data[..]);
    data
}

/// Our initiator through `spiped -d` to a thread that echoes; the echo must come back whole, and the
/// close must arrive at a packet boundary. With `expect_ok` false, spiped must hang up instead.
fn initiator_to_spiped_d(
    spiped: &str,
    key: &std::path::Path,
    psk: &Psk,
    fs: ForwardSecrecy,
    flag: &str,
    expect_ok: bool,
) -> Result<String> {
    let echo = TcpListener::bind("127.0.0.1:0")?;
    let echo_port = echo.local_addr()?.port();
    thread::spawn(move || {
        for conn in echo.incoming().flatten() {
            thread::spawn(move || {
                let mut conn = conn;
                let mut reader = conn.try_clone().expect("clone");
                let _ = io::copy(&mut reader, &mut conn);
                let _ = conn.shutdown(Shutdown::Write);
            });
        }
    });
    let port = free_port()?;
    let _d = Spiped::start(spiped, "-d", port, echo_port, key, flag)?;
    let mut sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;

    let (initiator, nonce) = Initiator::start(psk, fs, rand::rng().random());
    sock.write_all(&nonce)?;
    let mut peer_nonce = [0; NONCE_LEN];
    sock.read_exact(&mut peer_nonce)?;
    let (initiator, y) = initiator.read_nonce(&peer_nonce, DhPrivate::generate(&mut rand::rng()));
    sock.write_all(&y)?;
    let mut peer_y = [0; Y_AND_MAC_LEN];
    if let Err(e) = sock.read_exact(&mut peer_y) {
        return if expect_ok { Err(e.into()) } else { Ok(format!("spiped hung up before its y ({e})")) };
    }
    let transport = match initiator.read_y(&peer_y) {
        Ok(transport) if expect_ok => transport,
        Ok(_) => return Err("the handshake completed".into()),
        Err(e) if !expect_ok => return Ok(format!("we refused spiped's y: {e}")),
        Err(e) => return Err(e.into()),
    };
    exchange(sock, transport, true)
}

/// `spiped -e` in front of our responder, which echoes what it opens; a client thread sends through
/// spiped and must get everything back. With `expect` an error, our responder must refuse.
fn spiped_e_to_responder(
    spiped: &str,
    key: &std::path::Path,
    psk: &Psk,
    fs: ForwardSecrecy,
    flag: &str,
    expect: Expect,
) -> Result<String> {
    let ours = TcpListener::bind("127.0.0.1:0")?;
    let our_port = ours.local_addr()?.port();
    let port = free_port()?;
    let _e = Spiped::start(spiped, "-e", port, our_port, key, flag)?;
    let data = payload();
    let sent = data.clone();
    let client = thread::spawn(move || -> io::Result<Vec<u8>> {
        let mut sock = TcpStream::connect(("127.0.0.1", port))?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut writer = sock.try_clone()?;
        let writing = thread::spawn(move || {
            writer.write_all(&sent)?;
            writer.shutdown(Shutdown::Write)
        });
        let mut back = Vec::new();
        sock.read_to_end(&mut back)?;
        writing.join().expect("writer")?;
        Ok(back)
    });
    // spiped -e connects to its target only when a client connects to it.
    let (mut sock, _) = ours.accept()?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (responder, nonce) = Responder::start(std::slice::from_ref(psk), fs, rand::rng().random());
    sock.write_all(&nonce)?;
    let mut peer_nonce = [0; NONCE_LEN];
    sock.read_exact(&mut peer_nonce)?;
    let responder = responder.read_nonce(&peer_nonce);
    let mut peer_y = [0; Y_AND_MAC_LEN];
    sock.read_exact(&mut peer_y)?;
    let (transport, y) = match (responder.read_y(&peer_y, DhPrivate::generate(&mut rand::rng())), expect) {
        (Ok((transport, y, _)), Expect::Works | Expect::TheyRefuse) => (transport, y),
        (Err(e), Expect::WeRefuse(expected)) if e == expected => {
            drop(sock);
            let _ = client.join();
            return Ok(format!("we refused: {e}"));
        }
        (Ok(_), Expect::WeRefuse(expected)) => return Err(format!("accepted, expected {expected}").into()),
        (Err(e), _) => return Err(e.into()),
    };
    sock.write_all(&y)?;
    let detail = exchange(sock, transport, false)?;
    let back = client.join().expect("client");
    if expect == Expect::TheyRefuse {
        return match back {
            Ok(back) if !back.is_empty() => Err(format!("{} bytes came back", back.len()).into()),
            _ => Ok(format!("spiped hung up: {detail}")),
        };
    }
    let back = back?;
    if back != data {
        return Err(format!("the client got {} bytes back, not its {}", back.len(), data.len()).into());
    }
    Ok(detail)
}

/// How a case through `spiped -e` should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Data flows both ways.
    Works,
    /// Our responder refuses spiped's y.
    WeRefuse(HandshakeError),
    /// spiped refuses our y and hangs up.
    TheyRefuse,
}

/// After the handshake: the initiator sends a payload and compares the echo; the responder echoes
/// every packet's data back. Both see the peer's FIN at a packet boundary.
fn exchange(sock: TcpStream, transport: Transport, initiator: bool) -> Result<String> {
    let (mut tx, mut rx) = transport.split();
    let mut writer = sock.try_clone()?;
    if initiator {
        let data = payload();
        let mut wire = Vec::new();
        tx.seal_data(&data, &mut wire)?;
        let packets = wire.len() / 1060;
        let writing = thread::spawn(move || -> io::Result<()> {
            writer.write_all(&wire)?;
            writer.shutdown(Shutdown::Write)
        });
        let back = read_all(sock, &mut rx, |_| Ok(()))?;
        writing.join().expect("writer")?;
        if back != data {
            return Err(format!("echo of {} bytes came back as {}", data.len(), back.len()).into());
        }
        Ok(format!("{} bytes in {packets} packets echoed, clean close", data.len()))
    } else {
        let back = read_all(sock, &mut rx, |data| {
            let mut wire = Vec::new();
            tx.seal_data(data, &mut wire)?;
            writer.write_all(&wire)?;
            Ok(())
        })?;
        writer.shutdown(Shutdown::Write)?;
        Ok(format!("{} bytes echoed back through spiped -e, clean close", back.len()))
    }
}

/// Opens packets until the peer's FIN, calling `each` with every packet's data; the FIN must fall
/// between packets.
fn read_all(
    mut sock: TcpStream,
    rx: &mut Opener,
    mut each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut got = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = sock.read(&mut chunk)?;
        if n == 0 {
            rx.finish(&buf)?;
            return Ok(got);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        while let Some(opened) = rx.open(&mut buf[at..])? {
            let Record::Data(data) = opened.record else { return Err("classic has no end record".into()) };
            got.extend_from_slice(data);
            each(data)?;
            at += opened.consumed;
        }
        buf.drain(..at);
    }
}
