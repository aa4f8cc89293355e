//! A daemon outlives what happens around it (issue 11): a lost terminal or a closed standard error
//! never takes it down, --syslog works in the foreground, a second instance leaves the first's pid
//! file alone, and a stopping daemon removes only the unix socket it created.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::pty::PtyMaster;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::*;

/// How long anything here may take before the test gives up: generous, the machine is shared.
const PATIENCE: Duration = Duration::from_secs(30);

/// The upload sent across SIGTERM: a few MiB, so it is still live when the signal arrives.
const UPLOAD: usize = 4 << 20;

/// Polls `done` until it holds, failing with `what` after [`PATIENCE`].
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is a live process: it exists and is not a zombie waiting for a reaper (a daemon's
/// parent has exited, so whoever adopted it may be slow to reap).
fn alive(pid: Pid) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the parenthesised command name, which may itself hold spaces or ')'.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    kill(pid, None).is_ok() && state != Some("Z")
}

/// The pid a daemon wrote to `pid_file`.
fn pid_in(pid_file: &Path) -> Pid {
    let text = std::fs::read_to_string(pid_file).expect("the pid file exists");
    Pid::from_raw(text.trim().parse().unwrap_or_else(|_| panic!("a pid in {}: {text:?}", pid_file.display())))
}

/// Where a descriptor of `pid` points, as /proc shows it.
fn fd_target(pid: Pid, fd: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap()
}

/// A new terminal: its master and slave, both close-on-exec, so that the only process holding the
/// terminal besides the test is the one it is given to (other tests spawn children meanwhile).
fn terminal() -> (PtyMaster, OwnedFd) {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = nix::pty::posix_openpt(flags).unwrap();
    nix::pty::grantpt(&master).unwrap();
    nix::pty::unlockpt(&master).unwrap();
    let path = nix::pty::ptsname_r(&master).unwrap();
    // std opens with O_CLOEXEC; O_NOCTTY keeps it from becoming the test's controlling terminal.
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(OFlag::O_NOCTTY.bits())
        .open(path)
        .unwrap();
    (master, slave.into())
}

/// A systemd notification socket: the daemon says `READY=1` there when it serves and `STOPPING=1`
/// when a signal has started its drain, which no log line has to carry.
struct Notify {
    /// The bound socket the daemon sends to.
    socket: UnixDatagram,
    /// Its path, for `NOTIFY_SOCKET`.
    path: PathBuf,
}

impl Notify {
    fn bind(dir: &Path) -> Notify {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        // Short, so that a daemon which died is noticed instead of waited for.
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        Notify { socket, path }
    }

    /// Waits for a notification holding the line `state` (e.g. `READY=1`), calling `running` between
    /// reads: it panics, saying how, if the daemon is gone.
    fn wait_for(&self, state: &str, mut running: impl FnMut()) {
        let deadline = Instant::now() + PATIENCE;
        let mut buf = [0u8; 4096];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == state) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => running(),
                Err(e) => panic!("waiting for {state}: {e}"),
            }
            assert!(Instant::now() < deadline, "no {state} from the daemon");
        }
    }
}

/// A spiped started without -F: no longer our child once its parent exits, so killed when dropped,
/// lest a failing test leave it running.
struct Daemonized(Pid);

impl Drop for Daemonized {
    fn drop(&mut self) {
        if alive(self.0) {
            let _ = kill(self.0, Signal::SIGKILL);
        }
    }
}

/// Starts spiped without -F, writing its pid to `pid_file`, and returns once its parent has exited 0,
/// i.e. once the daemon serves.
fn start_daemon(
    args: &[&str],
    pid_file: &Path,
    stderr: impl Into<Stdio>,
    env: &[(&str, &Path)],
) -> Daemonized {
    let mut cmd = Command::new(spiped_bin());
    cmd.args(args).arg("-p").arg(pid_file);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let status = cmd.status().unwrap();
    assert_eq!(status.code(), Some(0), "the daemon starts");
    Daemonized(pid_in(pid_file))
}

/// A `-d` end's arguments when no connection will be made through it: the target is never dialled.
fn idle_d<'a>(source: &'a str, key: &'a str) -> [&'a str; 7] {
    ["-d", "-s", source, "-t", "[127.0.0.1]:1", "-k", key]
}

/// A `-d` end in front of an echo server, and the arguments of an `-e -n 2` end in front of it.
struct Tunnel {
    /// The `-d` end, in the foreground with its log in a file.
    _d: Spiped,
    /// The arguments for the `-e` end under test, listening on `e_source`.
    e_args: Vec<String>,
    /// Where clients connect, as std's `host:port`.
    e_addr: String,
}

fn tunnel(dir: &Path) -> Tunnel {
    let key = key_file(dir, "k");
    let echo = format!("[127.0.0.1]:{}", echo_server());
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let d = Spiped::start(
        dir,
        "d",
        &["-d", "-s", &d_source, "-t", &echo, "-k", key.to_str().unwrap()],
        &d_source,
    );
    let e_source = format!("[127.0.0.1]:{}", free_port());
    let e_args = ["-e", "-s", &e_source, "-t", &d_source, "-k", key.to_str().unwrap(), "-n", "2"];
    Tunnel { _d: d, e_args: e_args.map(String::from).to_vec(), e_addr: plain_addr(&e_source) }
}

/// Sends a few bytes through `conn` and checks they come back.
fn ping(conn: &mut TcpStream, what: &[u8]) {
    conn.write_all(what).unwrap();
    let mut back = vec![0u8; what.len()];
    conn.read_exact(&mut back).unwrap();
    assert_eq!(back, what);
}

/// Opens `-n` + 1 = 3 connections, which makes the listener log "connection limit reached" while
/// the first two are served, then frees the slots and returns the third, now being served.
fn exceed_the_limit(addr: &str) -> TcpStream {
    let connect = || {
        let conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(PATIENCE)).unwrap();
        conn
    };
    let mut first = connect();
    let mut second = connect();
    ping(&mut first, b"one");
    ping(&mut second, b"two");
    // Both slots are taken: the listener has logged the limit before it waits for a free one.
    let mut third = connect();
    drop((first, second));
    ping(&mut third, b"three");
    third
}

/// Uploads [`UPLOAD`] bytes through `conn` while reading the echo, with SIGTERM sent to `pid` half
/// way: the daemon must drain, so the whole upload comes back byte-exact and the daemon lives
/// until it has.
fn upload_across_sigterm(conn: TcpStream, pid: Pid, notify: &Notify) {
    let data = pattern(11, UPLOAD);
    let half = UPLOAD / 2;
    let mut reader = conn.try_clone().unwrap();
    let (progress, arrived) = mpsc::channel::<usize>();
    let echo = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(UPLOAD);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    let _ = progress.send(got.len());
                }
                Err(e) => return Err(e),
            }
        }
    });
    let mut writer = conn;
    writer.write_all(&data[..half]).unwrap();
    // The first half has crossed both ends: the connection is live in the middle of the upload.
    while arrived.recv_timeout(PATIENCE).expect("the first half echoes back") < half {}

    kill(pid, Signal::SIGTERM).unwrap();
    notify.wait_for("STOPPING=1", || assert!(alive(pid), "the daemon exited on SIGTERM instead of draining"));
    writer.write_all(&data[half..]).unwrap();
    assert!(alive(pid), "the daemon drains the live upload instead of exiting");
    writer.shutdown(Shutdown::Write).unwrap();
    let got = echo.join().unwrap().expect("the echo ends cleanly, not with a reset");
    assert_eq!(got.len(), data.len());
    assert_eq!(digest(&got), digest(&data), "the upload comes back byte-exact");
}

/// Issue 11's first finding: started from a terminal that then goes away (an ssh session logging
/// out), the daemon keeps the dead terminal as standard error; the limit warning once made it exit
/// 101, and SIGTERM crashed it instead of draining.
#[test]
fn a_daemon_whose_terminal_is_gone_keeps_serving_and_drains_on_sigterm() {
    let dir = scratch("lost-terminal");
    let tunnel = tunnel(&dir);
    let notify = Notify::bind(&dir);
    let pid_file = dir.join("e.pid");
    let (master, slave) = terminal();
    let on_terminal = || Stdio::from(slave.try_clone().unwrap());
    let mut cmd = Command::new(spiped_bin());
    cmd.args(&tunnel.e_args).args(["-p", pid_file.to_str().unwrap(), "--log-level", "debug"]);
    cmd.env("NOTIFY_SOCKET", &notify.path);
    cmd.stdin(on_terminal()).stdout(on_terminal()).stderr(on_terminal());
    assert_eq!(cmd.status().unwrap().code(), Some(0), "the daemon starts");
    let daemon = Daemonized(pid_in(&pid_file));
    let pid = daemon.0;

    // The session logs out: the terminal is gone, and writing to it fails (EIO).
    drop((cmd, slave, master));
    let upload = exceed_the_limit(&tunnel.e_addr);
    assert!(alive(pid), "the limit warning to a dead terminal does not take the daemon down");
    assert_eq!(fd_target(pid, 0), PathBuf::from("/dev/null"), "standard input is /dev/null");
    assert_eq!(fd_target(pid, 1), PathBuf::from("/dev/null"), "standard output is /dev/null");
    upload_across_sigterm(upload, pid, &notify);

    eventually("the daemon exits after its drain", || !alive(pid));
    assert!(!pid_file.exists(), "the pid file is removed at exit");
}

/// The same with -F and a standard error pipe whose reader has gone (a supervisor that died).
#[test]
fn a_daemon_whose_stderr_pipe_is_closed_keeps_serving_and_drains_on_sigterm() {
    let dir = scratch("dead-pipe");
    let tunnel = tunnel(&dir);
    let notify = Notify::bind(&dir);
    // Close-on-exec, so no other test's child inherits the read end and keeps the pipe open.
    let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    drop(read_end);
    let mut child = Command::new(spiped_bin())
        .arg("-F")
        .args(&tunnel.e_args)
        .args(["--log-level", "debug"])
        .env("NOTIFY_SOCKET", &notify.path)
        .stdin(Stdio::null())
        .stderr(write_end)
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    notify.wait_for("READY=1", || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("spiped exited with {status} before it was ready");
        }
    });

    let upload = exceed_the_limit(&tunnel.e_addr);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the limit warning to a closed pipe does not take the daemon down"
    );
    upload_across_sigterm(upload, pid, &notify);

    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the daemon exits after its drain");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "a drained daemon exits 0: {status}");
}

/// Supervisors run spiped in the foreground and want its lines in syslog: with -F --syslog they go
/// there from start-up, not to standard error; and they keep going there when the syslog daemon
/// restarts (a new socket at the same path), as with syslog(3).
#[test]
fn with_syslog_in_the_foreground_lines_go_to_syslog_from_start_up() {
    let dir = scratch("syslog-foreground");
    let key = key_file(&dir, "k");
    let log_socket = dir.join("log.sock");
    let listen = || {
        let syslog = UnixDatagram::bind(&log_socket).unwrap();
        syslog.set_read_timeout(Some(PATIENCE)).unwrap();
        syslog
    };
    let syslog = listen();
    let stderr_file = dir.join("stderr");
    let source = format!("[127.0.0.1]:{}", free_port());
    let mut d = Spiped {
        child: Command::new(spiped_bin())
            .arg("-F")
            .args(idle_d(&source, key.to_str().unwrap()))
            .arg("--syslog")
            .env("SPIPED_SYSLOG_SOCKET", &log_socket)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&stderr_file).unwrap())
            .spawn()
            .unwrap(),
        log: stderr_file.clone(),
    };
    let tag = format!("spiped[{}]: ", d.pid());
    let receive = |syslog: &UnixDatagram, what: &str| {
        let mut buf = [0u8; 2048];
        let n = syslog.recv(&mut buf).unwrap_or_else(|e| panic!("{what}: {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let listening = loop {
        let line = receive(&syslog, "the start-up lines go to syslog");
        if line.contains("listening") {
            break line;
        }
    };
    assert!(listening.starts_with(&format!("<30>{tag}")), "daemon.info priority and tag: {listening}");

    drop(syslog);
    std::fs::remove_file(&log_socket).unwrap();
    let syslog = listen();
    // Stopping logs a line.
    kill(Pid::from_raw(d.pid()), Signal::SIGTERM).unwrap();
    let line = receive(&syslog, "lines reach the restarted syslog");
    assert!(line.starts_with('<') && line.contains(&format!(">{tag}")), "{line}");
    assert_eq!(d.wait_exit(PATIENCE).code(), Some(0));
    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
    assert!(stderr.is_empty(), "nothing on standard error: {stderr}");
}

/// With --syslog nothing is meant for standard output or error: once the daemon serves, both are
/// /dev/null, so a closed terminal cannot matter.
#[test]
fn with_syslog_a_daemons_standard_output_and_error_are_dev_null() {
    let dir = scratch("syslog-daemon");
    let key = key_file(&dir, "k");
    let log_socket = dir.join("log.sock");
    let _syslog = UnixDatagram::bind(&log_socket).unwrap();
    let source = format!("[127.0.0.1]:{}", free_port());
    let args = [&idle_d(&source, key.to_str().unwrap())[..], &["--syslog"]].concat();
    let syslog_env = [("SPIPED_SYSLOG_SOCKET", log_socket.as_path())];
    let daemon = start_daemon(&args, &dir.join("d.pid"), Stdio::piped(), &syslog_env);
    for fd in 0..=2 {
        assert_eq!(fd_target(daemon.0, fd), PathBuf::from("/dev/null"), "descriptor {fd}");
    }
    kill(daemon.0, Signal::SIGTERM).unwrap();
    eventually("the daemon exits", || !alive(daemon.0));
}

/// A second instance given the same -p (with another source, so binding does not stop it) must
/// refuse to start and leave the running instance's pid file as it is; a pid file nobody holds is
/// stale and taken over; and at exit a daemon removes its pid file only if the path still names it.
#[test]
fn a_pid_file_belongs_to_the_running_daemon_that_holds_it() {
    let dir = scratch("pid-file");
    let key = key_file(&dir, "k");
    let key = key.to_str().unwrap();
    let pid_file = dir.join("shared.pid");
    let first_source = format!("[127.0.0.1]:{}", free_port());
    let first = start_daemon(&idle_d(&first_source, key), &pid_file, Stdio::null(), &[]);
    let written = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(written, format!("{}\n", first.0));

    let second_source = format!("[127.0.0.1]:{}", free_port());
    let second_stderr = dir.join("second.stderr");
    let status = Command::new(spiped_bin())
        .args(idle_d(&second_source, key))
        .arg("-p")
        .arg(&pid_file)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&second_stderr).unwrap())
        .status()
        .unwrap();
    let stderr = std::fs::read_to_string(&second_stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let expected = format!("pid file {} is held by a running spiped (pid {})", pid_file.display(), first.0);
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(TcpStream::connect(plain_addr(&second_source)).is_err(), "the second instance bound nothing");
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), written, "the first's pid file is untouched");
    assert!(alive(first.0));

    // Someone replaces the file while the first runs: at exit it is not the first's to remove.
    std::fs::remove_file(&pid_file).unwrap();
    std::fs::write(&pid_file, "not spiped's\n").unwrap();
    kill(first.0, Signal::SIGTERM).unwrap();
    eventually("the first daemon exits", || !alive(first.0));
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), "not spiped's\n");

    // A pid file left by a daemon that died without removing it (longer than the new one, so a
    // takeover that does not truncate shows).
    let stale = dir.join("stale.pid");
    std::fs::write(&stale, "4000000000\n").unwrap();
    let third_source = format!("[127.0.0.1]:{}", free_port());
    let third = start_daemon(&idle_d(&third_source, key), &stale, Stdio::null(), &[]);
    let taken_over = std::fs::read_to_string(&stale).unwrap();
    assert_eq!(taken_over, format!("{}\n", third.0), "the stale pid file is taken over");
    kill(third.0, Signal::SIGTERM).unwrap();
    eventually("the third daemon exits and removes its pid file", || !alive(third.0) && !stale.exists());
}

/// Daemon A's socket file is removed and daemon B binds the same path: when A stops, it must not
/// remove B's socket.
#[test]
fn a_stopping_daemon_removes_only_the_unix_socket_it_created() {
    let dir = scratch("unix-socket");
    let key = key_file(&dir, "k");
    let source = dir.join("x.sock");
    let source = source.to_str().unwrap();
    let args = idle_d(source, key.to_str().unwrap());
    let mut a = Spiped::start(&dir, "a", &args, source);
    std::fs::remove_file(source).unwrap();
    let _b = Spiped::start(&dir, "b", &args, source);

    kill(Pid::from_raw(a.pid()), Signal::SIGTERM).unwrap();
    assert_eq!(a.wait_exit(PATIENCE).code(), Some(0), "{}", a.log_text());
    assert!(Path::new(source).exists(), "B's socket file is still there");
    assert!(std::os::unix::net::UnixStream::connect(source).is_ok(), "and B accepts connections on it");
}
