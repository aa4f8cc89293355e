//! A man in the middle of the encrypted side of a pipe: a real TCP relay that forwards the `-e` end's
//! connection to the `-d` end as a faithful proxy would (a FIN is passed on as a FIN, a reset as a
//! reset), except for exactly one fault, at one byte offset of one direction.
//!
//! The relay also finds the `-d` end's socket for the connection (its inode, from `/proc/net/tcp`), so
//! that the test can wait until the `-d` end has let go of it: only then does it know whether the `-d`
//! end will ever connect to its target for this connection.

use std::io;
use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Which way the faulted bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    /// From the `-e` end to the `-d` end: the hello, the key confirmation, then the client's data.
    ToD,
    /// From the `-d` end to the `-e` end: message 2, then the server's data.
    ToE,
}

/// What the relay does to the stream at the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// One bit of the byte at the offset is inverted (bit `offset % 8`, so every bit position is hit).
    Flip,
    /// The `n` bytes from the offset on are not forwarded.
    Drop(usize),
    /// The `n` bytes from the offset on are forwarded twice, the copy right after them.
    Duplicate(usize),
    /// The `n` bytes at the offset change places with the `n` after them; the first chunk is held
    /// until the second has arrived.
    Swap(usize),
    /// The direction ends at the offset with a FIN to its receiver; the other direction carries on.
    Fin,
    /// Both connections end at the offset with a FIN towards each side; nothing more is forwarded.
    FinBoth,
    /// Both connections are reset at the offset: an RST towards each side.
    Rst,
}

impl Fault {
    /// Whether the fault ends the stream rather than changing its bytes.
    fn cuts(self) -> bool {
        matches!(self, Fault::Fin | Fault::FinBoth | Fault::Rst)
    }
}

/// The fault and where it strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Strike {
    /// The direction whose bytes are faulted.
    pub dir: Dir,
    /// The fault.
    pub fault: Fault,
    /// Offset in that direction's byte stream, counted from its first byte.
    pub at: usize,
}

/// What the relay saw of one connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    /// The first offset at which the faulted direction's receiver saw something other than what its
    /// sender sent (another byte, or the end of the stream): `None` when the fault changed nothing,
    /// as when a swap exchanges two equal chunks. A duplicate departs from the original where its
    /// copy begins, which may be well after the fault's offset.
    pub diverges_at: Option<usize>,
    /// The inode of the `-d` end's socket for this connection, looked up when its first bytes came:
    /// `None` when the `-d` end never sent anything (so it cannot have authenticated the `-e` end
    /// and will never contact its target) or had already closed the socket.
    pub d_socket: Option<u64>,
}

/// Whether the stream goes on or is cut after the bytes just forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep forwarding.
    Go,
    /// The truncation offset is reached: forward what was produced, then cut.
    Cut,
}

/// One direction's bytes on their way through, with the fault applied when its offset comes.
#[derive(Debug)]
pub struct Mangler {
    /// The fault and its offset, for the faulted direction only.
    fault: Option<(Fault, usize)>,
    /// Every byte the sender sent, to compare with what was forwarded.
    original: Vec<u8>,
    /// Every byte forwarded to the receiver.
    forwarded: Vec<u8>,
    /// Bytes inside the fault's window kept for later: a duplicate's copy, a swap's chunks.
    held: Vec<u8>,
    /// Where the stream was cut; from then on, what the sender sends is read and thrown away.
    cut_at: Option<usize>,
}

impl Mangler {
    /// A mangler for one direction; `fault` is `None` for the direction left alone.
    pub fn new(fault: Option<(Fault, usize)>) -> Self {
        Mangler { fault, original: Vec::new(), forwarded: Vec::new(), held: Vec::new(), cut_at: None }
    }

    /// Whether a truncation at offset 0 cuts before the first byte.
    pub fn cuts_at_start(&mut self) -> bool {
        let cut = matches!(self.fault, Some((f, 0)) if f.cuts());
        if cut {
            self.cut_at = Some(0);
        }
        cut
    }

    /// Takes bytes read from the sender and appends to `out` what is to be forwarded now.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Step {
        let start = out.len();
        let step = self.mangle(input, out);
        self.forwarded.extend_from_slice(&out[start..]);
        step
    }

    fn mangle(&mut self, input: &[u8], out: &mut Vec<u8>) -> Step {
        let mut step = Step::Go;
        for &byte in input {
            let offset = self.original.len();
            self.original.push(byte);
            let Some((fault, at)) = self.fault.filter(|_| self.cut_at.is_none()) else {
                if self.cut_at.is_none() {
                    out.push(byte);
                }
                continue;
            };
            match fault {
                Fault::Flip if offset == at => out.push(byte ^ (1 << (at % 8))),
                Fault::Drop(n) if (at..at + n).contains(&offset) => {}
                Fault::Duplicate(n) if (at..at + n).contains(&offset) => {
                    out.push(byte);
                    self.held.push(byte);
                    if offset + 1 == at + n {
                        out.append(&mut self.held);
                    }
                }
                Fault::Swap(n) if (at..at + 2 * n).contains(&offset) => {
                    self.held.push(byte);
                    if offset + 1 == at + 2 * n {
                        let (first, second) = self.held.split_at(n);
                        out.extend_from_slice(second);
                        out.extend_from_slice(first);
                        self.held.clear();
                    }
                }
                _ => out.push(byte),
            }
            if fault.cuts() && offset + 1 == at {
                self.cut_at = Some(at);
                step = Step::Cut;
            }
        }
        step
    }

    /// How many bytes the sender has sent, forwarded or not.
    pub fn sent(&self) -> usize {
        self.original.len()
    }

    /// At the sender's end: a partial duplicate's copy still goes out, a partial swap as it came.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.forwarded.extend_from_slice(&self.held);
        out.append(&mut self.held);
    }

    /// Whether the stream was cut: what the sender sends now is thrown away.
    pub fn is_cut(&self) -> bool {
        self.cut_at.is_some()
    }

    /// The first offset where the receiver's stream departs from the sender's: a different byte,
    /// one stream ending before the other, or the cut.
    pub fn diverges_at(&self) -> Option<usize> {
        let (original, forwarded) = (&self.original, &self.forwarded);
        let differs = original.iter().zip(forwarded).position(|(a, b)| a != b);
        let ends = (original.len() != forwarded.len()).then(|| original.len().min(forwarded.len()));
        [differs.or(ends), self.cut_at].into_iter().flatten().min()
    }
}

/// One side of the relay: its socket until it is reset, and whether its peer may still send.
struct Side {
    /// The connection, `None` once reset.
    stream: Option<TcpStream>,
    /// No end of stream and no error read from the peer yet.
    reading: bool,
    /// What happens to the bytes read from this side, with the fault if they are the faulted ones.
    mangler: Mangler,
}

impl Side {
    fn new(stream: TcpStream, fault: Option<(Fault, usize)>) -> Self {
        Side { stream: Some(stream), reading: true, mangler: Mangler::new(fault) }
    }

    /// Closes the connection with an RST (SO_LINGER 0, and no FIN before it).
    fn reset(&mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = stream.set_zero_linger();
        }
        self.reading = false;
    }

    /// Sends a FIN. An error means the peer reset the connection (the error a later read would
    /// have reported is consumed here).
    async fn finish_writing(&mut self) -> io::Result<()> {
        match self.stream.as_mut() {
            Some(stream) => stream.shutdown().await,
            None => Ok(()),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.stream.as_mut() {
            Some(stream) if !bytes.is_empty() => stream.write_all(bytes).await,
            _ => Ok(()),
        }
    }
}

/// What one read from a side brought.
enum Event {
    /// Bytes to pass on.
    Bytes(Vec<u8>),
    /// The peer's FIN.
    End,
    /// The peer reset the connection.
    Failed,
}

/// Relays between `e` (accepted from the `-e` end) and `d` (connected to the `-d` end) until both
/// directions have ended, applying `strike`. Any error on one side (the peer reset it) resets the
/// other. `e_sent` fires once the `-e` end has sent that many bytes (whatever was done to them), and
/// is dropped unfired if it never does.
pub async fn relay(
    e: TcpStream,
    d: TcpStream,
    strike: Strike,
    e_sent: (usize, oneshot::Sender<()>),
) -> Report {
    let (e_sent, mut e_sent_tx) = (e_sent.0, Some(e_sent.1));
    let fault = Some((strike.fault, strike.at));
    let d_addrs = (d.peer_addr(), d.local_addr());
    let (mut e, mut d) = match strike.dir {
        Dir::ToD => (Side::new(e, fault), Side::new(d, None)),
        Dir::ToE => (Side::new(e, None), Side::new(d, fault)),
    };
    let mut report = Report::default();
    let (sender, receiver) = match strike.dir {
        Dir::ToD => (&mut e, &mut d),
        Dir::ToE => (&mut d, &mut e),
    };
    if sender.mangler.cuts_at_start() && cut(strike.fault, sender, receiver).await.is_err() {
        sender.reset();
        receiver.reset();
    }
    let mut d_spoke = false;
    while e.reading || d.reading {
        let (from_e, event) = tokio::select! {
            event = next_event(&e), if e.reading => (true, event),
            event = next_event(&d), if d.reading => (false, event),
        };
        let (from, to) = if from_e { (&mut e, &mut d) } else { (&mut d, &mut e) };
        let forwarded = match event {
            None => Ok(()),
            Some(Event::Failed) => Err(io::ErrorKind::ConnectionReset.into()),
            Some(Event::End) => {
                from.reading = false;
                let mut out = Vec::new();
                from.mangler.finish(&mut out);
                match to.write(&out).await {
                    Ok(()) if !from.mangler.is_cut() => to.finish_writing().await,
                    done => done,
                }
            }
            Some(Event::Bytes(bytes)) => {
                if !from_e && !d_spoke {
                    d_spoke = true;
                    report.d_socket = match d_addrs {
                        (Ok(d_end), Ok(ours)) => socket_inode(d_end, ours),
                        _ => None,
                    };
                }
                let mut out = Vec::new();
                let step = from.mangler.feed(&bytes, &mut out);
                if let Some(tx) = e_sent_tx.take_if(|_| from_e && from.mangler.sent() >= e_sent) {
                    let _ = tx.send(());
                }
                match to.write(&out).await {
                    // Only the faulted direction cuts, so `from` is its sender.
                    Ok(()) if step == Step::Cut => cut(strike.fault, from, to).await,
                    done => done,
                }
            }
        };
        if forwarded.is_err() {
            from.reset();
            to.reset();
        }
    }
    report.diverges_at = match strike.dir {
        Dir::ToD => e.mangler.diverges_at(),
        Dir::ToE => d.mangler.diverges_at(),
    };
    report
}

/// Waits until `side` has something to read, and reads it: `None` when the wake-up was spurious.
async fn next_event(side: &Side) -> Option<Event> {
    let stream = side.stream.as_ref()?;
    if stream.readable().await.is_err() {
        return Some(Event::Failed);
    }
    let mut buf = vec![0u8; 16 * 1024];
    match stream.try_read(&mut buf) {
        Ok(0) => Some(Event::End),
        Ok(n) => {
            buf.truncate(n);
            Some(Event::Bytes(buf))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(_) => Some(Event::Failed),
    }
}

/// Carries out a truncation of the faulted direction, from `sender` to `receiver`, once its offset
/// is reached.
///
/// # Errors
/// When a FIN cannot be sent because that side was reset meanwhile.
async fn cut(fault: Fault, sender: &mut Side, receiver: &mut Side) -> io::Result<()> {
    match fault {
        Fault::Fin => receiver.finish_writing().await,
        Fault::FinBoth => {
            // The other direction ends here too: nothing more from the receiver goes through.
            receiver.mangler.cut_at = Some(receiver.mangler.original.len());

            receiver.finish_writing().await?;
            sender.finish_writing().await
        }
        Fault::Rst => {
            sender.reset();
            receiver.reset();
            Ok(())
        }
        _ => unreachable!("only truncations cut"),
    }
}

/// The inode of the socket at `local` whose peer is `peer`, from the kernel's table of IPv4 TCP
/// sockets: `None` if it is not there or no process holds it any more (inode 0).
pub fn socket_inode(local: SocketAddr, peer: SocketAddr) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let hex = |addr: SocketAddr| match addr {
        SocketAddr::V4(a) => format!("{:08X}:{:04X}", u32::from_ne_bytes(a.ip().octets()), a.port()),
        SocketAddr::V6(_) => String::new(),
    };
    let (local, peer) = (hex(local), hex(peer));
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&peer.as_str()))
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
            .filter(|&inode| inode != 0)
    })
}

/// Whether process `pid` still has the socket with `inode` open.
pub fn holds_socket(pid: i32, inode: u64) -> bool {
    let wanted = format!("socket:[{inode}]");
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false; // the process is gone
    };
    fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == &*wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` to a mangler in pieces of `chunk` bytes: what it forwarded, where that departs
    /// from `input`, and whether it cut.
    fn mangle(fault: Fault, at: usize, input: &[u8], chunk: usize) -> (Vec<u8>, Option<usize>, bool) {
        let mut m = Mangler::new(Some((fault, at)));
        let mut out = Vec::new();
        let mut cut = m.cuts_at_start();
        for piece in input.chunks(chunk) {
            cut |= m.feed(piece, &mut out) == Step::Cut;
        }
        m.finish(&mut out);
        assert_eq!(m.sent(), input.len(), "every byte the sender sent is counted, forwarded or not");
        (out, m.diverges_at(), cut)
    }

    #[test]
    fn each_fault_changes_the_stream_as_described_whatever_the_read_sizes() {
        let input = b"abcdefgh";
        for chunk in 1..=input.len() {
            let mangled = |fault, at| mangle(fault, at, input, chunk);
            assert_eq!(mangled(Fault::Flip, 2), (b"abgdefgh".to_vec(), Some(2), false));
            assert_eq!(mangled(Fault::Drop(2), 3), (b"abcfgh".to_vec(), Some(3), false));
            assert_eq!(mangled(Fault::Duplicate(2), 1), (b"abcbcdefgh".to_vec(), Some(3), false));
            assert_eq!(mangled(Fault::Swap(2), 4), (b"abcdghef".to_vec(), Some(4), false));
            assert_eq!(mangled(Fault::Rst, 5), (b"abcde".to_vec(), Some(5), true));
            assert_eq!(mangled(Fault::FinBoth, 8), (input.to_vec(), Some(8), true), "cut at the end");
            assert_eq!(mangled(Fault::Fin, 0), (Vec::new(), Some(0), true));
        }
    }

    #[test]
    fn a_fault_that_changes_nothing_does_not_diverge() {
        assert_eq!(
            mangle(Fault::Flip, 8, b"abcdefgh", 3),
            (b"abcdefgh".to_vec(), None, false),
            "past the end"
        );
        assert_eq!(mangle(Fault::Swap(1), 1, b"abbd", 2), (b"abbd".to_vec(), None, false), "equal chunks");
        assert_eq!(mangle(Fault::Swap(2), 2, b"abcde", 2), (b"abcde".to_vec(), None, false), "partial swap");
        assert_eq!(
            mangle(Fault::Drop(1), 1, b"abbc", 4),
            (b"abc".to_vec(), Some(2), false),
            "equal neighbour"
        );
        assert_eq!(
            mangle(Fault::Duplicate(4), 2, b"abcd", 1),
            (b"abcdcd".to_vec(), Some(4), false),
            "partial"
        );
    }
}
