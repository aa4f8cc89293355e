//! Standard input and output as one socket. They may be a terminal, a file, a pipe or a socket, and
//! only sockets and pipes can wait in an event loop; so, as spiped 1.6's spipe does, two threads copy
//! between them and one end of a socket pair, and the pump gets the other end like any connection.
//! End of standard input becomes a half-close of the pair, which the pump carries on as the protocol's
//! end of stream; the end of the peer's stream ends standard output.
//!
//! A failure on either side (a terminal gone, a reader of the output gone) must not pass for a clean
//! end: the thread that saw it records it and sends the forced stop, and the pump resets the
//! connection to the `-d` end.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::tunnel::shutdown::AbortSender;

/// Bytes moved per system call: enough that the copy costs little beside the cipher.
const CHUNK: usize = 64 * 1024;

/// Why standard input or output failed.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    /// Reading standard input failed.
    #[error("cannot read standard input: {0}")]
    Read(io::Error),
    /// Writing standard output failed (its reader has gone, the disk is full).
    #[error("cannot write standard output: {0}")]
    Write(io::Error),
}

/// The two copying threads.
#[derive(Debug)]
pub struct Stdio {
    /// Standard input into the pair, then a half-close.
    input: JoinHandle<()>,
    /// The pair to standard output, then standard output closed.
    output: JoinHandle<()>,
    /// The first failure of either, kept here before the forced stop is sent, so that it is there to
    /// report when the pump returns.
    failed: Arc<Mutex<Option<StdioError>>>,
}

/// Starts copying standard input into a socket pair and the pair into standard output; returns the
/// pair's other end, for the pump. On a failure of either, `abort` is sent.
///
/// # Errors
/// The operating system's, when the pair, a descriptor or a thread cannot be made.
pub fn bridge(abort: AbortSender) -> io::Result<(UnixStream, Stdio)> {
    let (ours, theirs) = UnixStream::pair()?;
    let stdin = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let stdout = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let sending = theirs.try_clone()?;
    let failed = Arc::new(Mutex::new(None));
    let abort = Arc::new(abort);
    let fail = |failed: &Arc<Mutex<Option<StdioError>>>, abort: &Arc<AbortSender>| {
        let (failed, abort) = (failed.clone(), abort.clone());
        move |e: StdioError| {
            failed.lock().expect("never poisoned: nothing panics holding it").get_or_insert(e);
            abort.abort_all();
        }
    };
    // Each thread keeps its end of the pair until its failure is recorded: closing the pair is what
    // stops the pump, and the pump's caller must then find the failure there to report it.
    let on_input = fail(&failed, &abort);
    let input = std::thread::Builder::new().name("stdin".into()).spawn(move || {
        let mut sending = sending;
        send(stdin, &mut sending).unwrap_or_else(on_input);
    })?;
    let on_output = fail(&failed, &abort);
    let output = std::thread::Builder::new().name("stdout".into()).spawn(move || {
        let mut theirs = theirs;
        receive(&mut theirs, stdout).unwrap_or_else(on_output);
    })?;
    Ok((ours, Stdio { input, output, failed }))
}

impl Stdio {
    /// Waits for both copies, once the pump has finished cleanly (so both have ended or will).
    ///
    /// # Errors
    /// The first failure of either side.
    pub fn finish(self) -> Result<(), StdioError> {
        let Stdio { input, output, failed } = self;
        input.join().expect("the stdin thread does not panic");
        output.join().expect("the stdout thread does not panic");
        failed.lock().expect("never poisoned: nothing panics holding it").take().map_or(Ok(()), Err)
    }

    /// The failure of standard input or output, if one has happened: after the pump failed, it is
    /// what stopped it. A side still copying is left alone; the process is about to exit.
    pub fn failure(&self) -> Option<StdioError> {
        self.failed.lock().expect("never poisoned: nothing panics holding it").take()
    }
}

/// Copies standard input into the pair until it ends, then half-closes the pair. If the pair is gone
/// the pump has stopped, and its own error is the one to report.
fn send(mut stdin: File, pair: &mut UnixStream) -> Result<(), StdioError> {
    let mut buf = vec![0; CHUNK];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StdioError::Read(e)),
        };
        if pair.write_all(&buf[..n]).is_err() {
            return Ok(());
        }
    }
    let _ = pair.shutdown(Shutdown::Write);
    Ok(())
}

/// Copies the pair into standard output until the peer's stream ends, then ends standard output:
/// a socket is shut down for writing, anything else is closed (the descriptor then points at
/// /dev/null), so whoever reads it sees the end now, not when standard input ends too.
fn receive(pair: &mut UnixStream, mut stdout: File) -> Result<(), StdioError> {
    let mut buf = vec![0; CHUNK];
    loop {
        let n = match pair.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The pump reset the pair: its error is the one to report.
            Err(_) => return Ok(()),
        };
        stdout.write_all(&buf[..n]).map_err(StdioError::Write)?;
    }
    end_output(stdout);
    Ok(())
}

/// Ends standard output once the peer's stream has ended (see [`receive`]).
fn end_output(stdout: File) {
    let socket = socket2::SockRef::from(&stdout);
    if socket.shutdown(Shutdown::Write).is_err() {
        drop(stdout);
        if let Ok(null) = File::options().write(true).open("/dev/null") {
            let _ = nix::unistd::dup2_stdout(null);
        }
    }
}
