//! Our `spipe` client as users run it: by its built path (Debian's classic spipe may be on PATH),
//! its standard input from a file, /dev/null or a pipe the test writes, its standard output to a file
//! or a pipe the test reads; and the services a spipe test needs behind a `-d` end: a slow echo, a
//! sink that answers a digest, a service that speaks first, and a listener that never answers.
//!
//! [`SpipeCmd`] builds the command line, [`RunningSpipe`] is the process (killed on drop), and
//! [`SpipeOutput`] how it ended, with the two checks every test makes: a clean end (exit 0, nothing
//! on standard error) or a failure (exit 1, exactly one line on standard error, starting as the
//! contract says).

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use super::classic::write_file;
use super::{Spiped, SpipedCmd, digest, eventually, free_port, key_file};

/// How long a transfer through spipe may take before the test fails: far longer than it needs.
pub const TRANSFER_WITHIN: Duration = Duration::from_secs(60);

/// How long a service may take to report how a connection ended, once spipe has exited.
const OUTCOME_WITHIN: Duration = Duration::from_secs(20);

/// Bytes the slow echo reads and writes back at a time.
const SLOW_CHUNK: usize = 100;

/// The slow echo's pause after each chunk: with [`SLOW_CHUNK`], about 1,000 bytes a second, as the
/// slow echo of spiped's own test 08.
const SLOW_PAUSE: Duration = Duration::from_millis(100);

/// The built `spipe`, by its path.
pub fn spipe_bin() -> &'static str {
    env!("CARGO_BIN_EXE_spipe")
}

/// The wire protocol spipe is asked to speak.
#[derive(Clone, Copy, Debug)]
pub enum Wire {
    /// spiped-rs's own, spipe's default: no flag.
    Native,
    /// Classic spiped 1.x's: `--protocol classic`.
    Classic,
}

impl Wire {
    /// The flags that choose it.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Wire::Native => &[],
            Wire::Classic => &["--protocol", "classic"],
        }
    }
}

/// Our `-d` end (which accepts both protocols) in front of a service, with its own key: what spipe
/// talks to.
pub struct DEnd {
    /// The daemon.
    pub spiped: Spiped,
    /// Where it listens, as spipe's `-t` takes it.
    pub source: String,
    /// The key both ends hold.
    pub key: PathBuf,
}

impl DEnd {
    /// Starts `-d` on a free loopback port in front of `service` (`[127.0.0.1]:port`).
    pub fn start(dir: &Path, service: &str) -> DEnd {
        DEnd::start_on(dir, &format!("[127.0.0.1]:{}", free_port()), service)
    }

    /// Starts `-d` listening on `source` (a port or a unix socket path) in front of `service`.
    pub fn start_on(dir: &Path, source: &str, service: &str) -> DEnd {
        let key = key_file(dir, "d.key");
        let spiped = SpipedCmd::new(dir, "d")
            .args(["-d", "-s", source, "-t", service, "-k", key.to_str().expect("scratch paths are UTF-8")])
            .start();
        DEnd { spiped, source: source.to_string(), key }
    }

    /// spipe to this end with its key, speaking `wire`.
    pub fn spipe(&self, wire: Wire) -> SpipeCmd {
        SpipeCmd::new(&self.source, &self.key).args(wire.args())
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        format!("-d end's log:\n{}", self.spiped.log_text())
    }
}

/// A `spipe` command line to run, built step by step: `SpipeCmd::new(target, key).stdin_file(..)`.
pub struct SpipeCmd {
    /// spipe's arguments.
    args: Vec<OsString>,
    /// Where standard input comes from.
    stdin: Input,
    /// The file standard output goes to, or `None` for a pipe the test reads.
    stdout: Option<PathBuf>,
}

/// Where spipe's standard input comes from.
enum Input {
    /// /dev/null: end of input at once.
    Null,
    /// A regular file.
    File(PathBuf),
    /// A pipe the test writes and closes ([`RunningSpipe::take_stdin`]).
    Piped,
}

impl SpipeCmd {
    /// `spipe -t target -k key`, standard input /dev/null, standard output a pipe.
    pub fn new(target: &str, key: &Path) -> SpipeCmd {
        SpipeCmd::bare().args(["-t", target, "-k"]).args([key])
    }

    /// `spipe` with no arguments yet: for the tests of the command line itself.
    pub fn bare() -> SpipeCmd {
        SpipeCmd { args: Vec::new(), stdin: Input::Null, stdout: None }
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> SpipeCmd {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Standard input from the regular file at `path`.
    pub fn stdin_file(mut self, path: &Path) -> SpipeCmd {
        self.stdin = Input::File(path.to_path_buf());
        self
    }

    /// Standard input from a pipe the test writes ([`RunningSpipe::take_stdin`]).
    pub fn stdin_piped(mut self) -> SpipeCmd {
        self.stdin = Input::Piped;
        self
    }

    /// Standard output to a new file at `path`, for large transfers.
    pub fn stdout_file(mut self, path: &Path) -> SpipeCmd {
        self.stdout = Some(path.to_path_buf());
        self
    }

    /// Starts spipe; standard error is always a pipe, read when it exits.
    ///
    /// # Panics
    /// When a file cannot be opened or spipe cannot be started.
    pub fn spawn(self) -> RunningSpipe {
        let mut cmd = Command::new(spipe_bin());
        cmd.args(&self.args).stderr(Stdio::piped());
        cmd.stdin(match &self.stdin {
            Input::Null => Stdio::null(),
            Input::File(path) => Stdio::from(std::fs::File::open(path).unwrap()),
            Input::Piped => Stdio::piped(),
        });
        cmd.stdout(match &self.stdout {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::piped(),
        });
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        RunningSpipe { child }
    }

    /// Runs spipe to its exit, up to `within` (then it is killed and the test fails).
    pub fn run(self, within: Duration) -> SpipeOutput {
        self.spawn().wait(within)
    }
}

/// A running spipe, killed and reaped when dropped (so a failed test leaves none behind).
pub struct RunningSpipe {
    /// The process.
    child: Child,
}

impl RunningSpipe {
    /// Its standard input, to write and then close (drop).
    ///
    /// # Panics
    /// Unless started with [`SpipeCmd::stdin_piped`], or when taken twice.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("standard input is a pipe, not taken yet")
    }

    /// Sends it `signal`.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pids fit in i32"));
        nix::sys::signal::kill(pid, signal).expect("spipe runs until it is waited for");
    }

    /// Its standard output, for the test to read (and perhaps close early).
    ///
    /// # Panics
    /// When it goes to a file, or is taken twice.
    pub fn take_stdout(&mut self) -> ChildStdout {
        self.child.stdout.take().expect("standard output is a pipe, not taken yet")
    }

    /// Waits until spipe has written `n` bytes to its standard output (a pipe), up to `within`, and
    /// returns them; the rest stays in the pipe for [`RunningSpipe::wait`] or the test to read.
    ///
    /// # Panics
    /// When standard output ends first or `within` passes: the message shows spipe's standard error.
    pub fn read_stdout(&mut self, n: usize, within: Duration) -> Vec<u8> {
        let mut stdout = self.take_stdout();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut got = vec![0; n];
            let _ = tx.send(stdout.read_exact(&mut got).map(|()| (got, stdout)));
        });
        let why = match rx.recv_timeout(within) {
            Ok(Ok((got, stdout))) => {
                self.child.stdout = Some(stdout);
                return got;
            }
            Ok(Err(e)) => format!("its standard output ended first: {e}"),
            Err(_) => format!("not within {within:?}"),
        };
        // Killed first, so that its standard error is at its end.
        let _ = self.child.kill();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        panic!("spipe wrote fewer than {n} bytes to standard output ({why}); standard error: {stderr:?}")
    }

    /// Waits for spipe to exit, up to `within`, reading what it writes to its pipes meanwhile.
    ///
    /// # Panics
    /// When it is still running after `within`.
    pub fn wait(mut self, within: Duration) -> SpipeOutput {
        let stdout = self.child.stdout.take().map(read_in_background);
        let stderr = self.child.stderr.take().map(read_in_background);
        let status = eventually("spipe exits", within, || match self.child.try_wait().unwrap() {
            Some(status) => Ok(status),
            None => Err("still running"),
        });
        // It has exited, so its pipes are at their end and the readers return.
        let collect = |reader: Option<JoinHandle<Vec<u8>>>| {
            reader.map_or_else(Vec::new, |r| r.join().expect("a pipe reader does not panic"))
        };
        let stdout = collect(stdout);
        let stderr = String::from_utf8_lossy(&collect(stderr)).into_owned();
        SpipeOutput { status, stdout, stderr }
    }
}

impl Drop for RunningSpipe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a pipe to its end on a thread of its own, so that spipe never blocks writing to it.
fn read_in_background(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut got = Vec::new();
        // An error ends the read like an end of file: what arrived before it is what spipe wrote.
        let _ = pipe.read_to_end(&mut got);
        got
    })
}

/// Runs `spipe` with `data` as its standard input (a regular file in `dir`) and its standard output
/// to a file, asserts a clean end, and returns what it wrote. `logs` (the `-d` end's) go in failure
/// messages.
pub fn through_files(dir: &Path, spipe: SpipeCmd, data: &[u8], logs: impl Fn() -> String) -> Vec<u8> {
    let (input, output) = (dir.join("input"), dir.join("output"));
    write_file(&input, data);
    spipe.stdin_file(&input).stdout_file(&output).run(TRANSFER_WITHIN).assert_clean(&logs());
    std::fs::read(&output).unwrap()
}

/// Asserts that `got` is `sent`, byte for byte: the lengths first, then digests, so that a failure on
/// megabytes prints two lines. `what` and `logs` go in the message.
pub fn assert_same_bytes(got: &[u8], sent: &[u8], what: &str, logs: &str) {
    assert_eq!(got.len(), sent.len(), "{what}: as many bytes as were sent\n{logs}");
    assert_eq!(digest(got), digest(sent), "{what}: byte-exact\n{logs}");
}

/// How a spipe run ended.
pub struct SpipeOutput {
    /// Its exit status.
    pub status: ExitStatus,
    /// What it wrote to standard output, when that was a pipe the harness read.
    pub stdout: Vec<u8>,
    /// What it wrote to standard error.
    pub stderr: String,
}

impl SpipeOutput {
    /// Asserts a clean end: exit 0 and nothing on standard error. `logs` goes in the message.
    pub fn assert_clean(&self, logs: &str) {
        assert!(
            self.status.success() && self.stderr.is_empty(),
            "spipe: {}, standard error {:?}\n{logs}",
            self.status,
            self.stderr
        );
    }

    /// Asserts a failure as the contract has it: exit 1 and exactly one line on standard error,
    /// starting with `prefix`. Returns that line. `logs` goes in the message.
    pub fn assert_failed(&self, prefix: &str, logs: &str) -> &str {
        let what = format!("spipe: {}, standard error {:?}\n{logs}", self.status, self.stderr);
        assert_eq!(self.status.code(), Some(1), "{what}");
        let line = self.stderr.strip_suffix('\n').unwrap_or_else(|| panic!("one whole line: {what}"));
        assert!(!line.contains('\n'), "exactly one line: {what}");
        assert!(line.starts_with(prefix), "starts with {prefix:?}: {what}");
        line
    }
}

/// A slow echo service, as spiped's test 08 uses: it reads [`SLOW_CHUNK`] bytes at a time, writes them
/// back, pauses, and half-closes once the client's end of stream has come and all is echoed.
pub struct SlowEcho {
    /// The loopback port it listens on.
    pub port: u16,
    /// How each connection ended: the bytes echoed before a clean end of stream, or the error.
    pub outcomes: Receiver<io::Result<usize>>,
}

impl SlowEcho {
    pub fn start() -> SlowEcho {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, outcomes) = channel();
        serve(listener, move |mut conn| {
            let _ = tx.send(slow_echo(&mut conn));
        });
        SlowEcho { port, outcomes }
    }

    /// Its address, as `-t` takes it.
    pub fn target(&self) -> String {
        format!("[127.0.0.1]:{}", self.port)
    }

    /// Asserts that the next connection it served read a clean end of stream after `len` bytes: the
    /// client's half-close crossed as one. `logs` go in the message.
    pub fn assert_clean_end_after(&self, len: usize, logs: &str) {
        match self.outcomes.recv_timeout(OUTCOME_WITHIN) {
            Ok(Ok(echoed)) => assert_eq!(echoed, len, "the slow echo read all before the end\n{logs}"),
            Ok(Err(e)) => panic!("the slow echo's connection failed: {e}\n{logs}"),
            Err(e) => panic!("the slow echo served no connection: {e}\n{logs}"),
        }
    }
}

/// One slow echo connection; returns how many bytes it echoed before the client's clean end.
fn slow_echo(conn: &mut TcpStream) -> io::Result<usize> {
    let mut buf = [0; SLOW_CHUNK];
    let mut echoed = 0;
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            conn.shutdown(Shutdown::Write)?;
            return Ok(echoed);
        }
        conn.write_all(&buf[..n])?;
        echoed += n;
        std::thread::sleep(SLOW_PAUSE);
    }
}

/// A service that only listens: it reads each connection to its end, then answers one line,
/// [`sink_answer`] of what it read, and closes. Returns its address as `-t` takes it.
pub fn digest_sink() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve(listener, |mut conn| {
        let mut got = Vec::new();
        if conn.read_to_end(&mut got).is_ok() {
            let _ = conn.write_all(&sink_answer(&got));
        }
    });
    format!("[127.0.0.1]:{port}")
}

/// What [`digest_sink`] answers after reading `data`: its length and SHA-256, on one line.
pub fn sink_answer(data: &[u8]) -> Vec<u8> {
    format!("{} {}\n", data.len(), digest(data)).into_bytes()
}

/// A service that speaks first: on each connection it sends `speech`, half-closes, then reads the
/// client's side to its end (so that nothing it leaves unread turns its close into a reset).
/// Returns its address as `-t` takes it.
pub fn speaker(speech: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let speech = std::sync::Arc::new(speech);
    serve(listener, move |mut conn| {
        if conn.write_all(&speech).and_then(|()| conn.shutdown(Shutdown::Write)).is_ok() {
            let _ = io::copy(&mut conn, &mut io::sink());
        }
    });
    format!("[127.0.0.1]:{port}")
}

/// A plain TCP listener that accepts and never says a word, nor closes: no spiped `-d` end. Returns
/// its address as `-t` takes it.
pub fn silent_listener() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // Held, so that they stay open, until the test process ends.
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    format!("[127.0.0.1]:{port}")
}

/// Accepts connections on a thread and hands each to `handle` on a thread of its own.
fn serve(listener: TcpListener, handle: impl Fn(TcpStream) + Clone + Send + 'static) {
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let handle = handle.clone();
            std::thread::spawn(move || handle(conn));
        }
    });
}
