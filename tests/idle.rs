//! The idle timeout (`--idle-timeout`) end to end, in front of a real redis-server: an idle connection
//! is closed cleanly at both ends by whichever end enforces it (the client reads an end of stream, not
//! a reset; Redis sees its client go; neither end logs a failure; the end that closed it logs
//! `outcome="idle"`, the other `outcome="clean"`), on the native wire and on the classic one; a
//! connection in use stays open however long it lives, and ends as `clean` when its client ends it; and
//! spipe, which has no such option, takes a `-d` end's idle close as a clean end.
//!
//! The tests wait for what must happen and check the order an end logged things in; they never
//! measure how long anything took.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use support::spipe::{DEnd, Wire};
use support::*;

/// The option as the tests give it: one second.
const IDLE: &[&str] = &["--idle-timeout", "1"];

/// How long an idle close may take to be seen before the test fails: far longer than it needs.
const WITHIN: Duration = Duration::from_secs(20);

/// What an end logs when its timer closes a connection.
const CLOSING: &str = "no data either way for the idle timeout: closing cleanly";

/// What it logs when the peer end has not ended its stream one timeout after that.
const OVER: &str = "the peer end did not end its stream within the idle timeout after ours: closing";

/// A Redis client speaking through the pipe on one connection.
struct Client {
    /// The connection to the `-e` end.
    stream: BufReader<TcpStream>,
}

impl Client {
    /// Connects to the `-e` end and names the connection `name` in Redis (CLIENT SETNAME), which also
    /// shows it reaches Redis.
    fn connect(pipe: &Pipe, name: &str) -> Client {
        let stream = TcpStream::connect(pipe.e_addr()).unwrap();
        stream.set_read_timeout(Some(WITHIN)).unwrap();
        let mut client = Client { stream: BufReader::new(stream) };
        assert_eq!(client.ask(&format!("CLIENT SETNAME {name}")), "+OK");
        client
    }

    /// Sends one inline command and returns Redis's one-line answer.
    fn ask(&mut self, command: &str) -> String {
        self.stream.get_mut().write_all(format!("{command}\r\n").as_bytes()).unwrap();
        let mut line = String::new();
        self.stream.read_line(&mut line).unwrap_or_else(|e| panic!("{command}: {e}"));
        assert!(line.ends_with("\r\n"), "{command}: a whole answer, not {line:?}");
        line.trim_end().to_string()
    }

    /// Reads until the connection ends; the end must be a clean one (an end of stream with nothing
    /// before it), not a reset.
    fn reads_a_clean_end(&mut self) {
        let mut rest = Vec::new();
        match self.stream.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "nothing arrives before the end: {rest:?}"),
            Err(e) => panic!("the client reads an end of stream, not an error: {e}"),
        }
    }
}

/// A redis-server, and a pair in front of it with `d_extra` on its `-d` end and `e_extra` on its `-e`
/// end, in the scratch directory `name`.
fn redis_behind_a_pipe(name: &str, d_extra: &[&str], e_extra: &[&str]) -> (Redis, Pipe) {
    let dir = scratch(name);
    let redis = Redis::start(&dir, false);
    let key = key_file(&dir, "idle.key");
    let pipe = Pipe::start(&dir, &key, &format!("[127.0.0.1]:{}", redis.port), d_extra, e_extra);
    (redis, pipe)
}

/// Redis's list of its clients (asked directly, not through the pipe).
fn client_list(redis: &Redis) -> String {
    redis_cli(&["-p", &redis.port.to_string(), "client", "list"])
}

/// Waits until Redis no longer lists the client named `name`.
fn redis_sees_it_go(redis: &Redis, name: &str) {
    eventually(&format!("Redis sees {name} go"), WITHIN, || {
        let list = client_list(redis);
        if list.contains(&format!("name={name} ")) { Err(list) } else { Ok(()) }
    });
}

/// What the end-of-connection line says of a connection this end closed for being idle.
const IDLE_OUTCOME: &str = r#"outcome="idle""#;

/// What it says of one that ended as connections do without the timeout.
const CLEAN_OUTCOME: &str = r#"outcome="clean""#;

/// Waits for `end` to log the end of its one connection and returns that line; the end logged no
/// failure.
fn closed_line(end: &Spiped) -> String {
    wait_for_log(end, "connection closed");
    let log = end.log_text();
    assert!(!log.contains("connection aborted") && !log.contains("reset"), "{log}");
    let closed: Vec<&str> = log.lines().filter(|line| line.contains("connection closed")).collect();
    assert_eq!(closed.len(), 1, "one connection: {log}");
    closed[0].to_string()
}

/// `end` enforced the timeout: it logged the idle close, then the connection's end as idle.
fn closed_for_being_idle(end: &Spiped) {
    let line = closed_line(end);
    assert!(line.contains(IDLE_OUTCOME), "{line}");
    let log = end.log_text();
    let (closing, closed) = (log.find(CLOSING), log.find("connection closed"));
    assert!(closing.is_some() && closing < closed, "the idle close, then the connection's end: {log}");
}

/// `end` did not close the connection for being idle: it logs the connection's end as clean.
fn closed_as_usual(end: &Spiped) {
    let line = closed_line(end);
    assert!(line.contains(CLEAN_OUTCOME), "{line}");
    assert!(!end.log_text().contains(CLOSING), "{}", end.log_text());
}

/// A pair with `d_extra` and `e_extra` in front of Redis; one client goes idle. The end with the
/// timeout closes it: the client reads a clean end, Redis sees the client go while the client still
/// holds its socket, the closing end logs the connection as idle and the other as clean.
fn an_idle_connection_is_closed_cleanly(name: &str, d_extra: &[&str], e_extra: &[&str]) {
    let (redis, pipe) = redis_behind_a_pipe(name, d_extra, e_extra);
    let mut client = Client::connect(&pipe, name);
    assert_eq!(client.ask("PING"), "+PONG");
    assert!(client_list(&redis).contains(&format!("name={name} ")));

    client.reads_a_clean_end();
    redis_sees_it_go(&redis, name);
    // Whether the client lets go before the closing end stops waiting for it (one more timeout) or
    // after, both ends close cleanly: the wait only decides when the closing end logs its line.
    drop(client);
    let (closing, other) =
        if d_extra.contains(&"--idle-timeout") { (&pipe.d, &pipe.e) } else { (&pipe.e, &pipe.d) };
    closed_for_being_idle(closing);
    closed_as_usual(other);
}

#[test]
fn an_idle_connection_is_closed_cleanly_by_the_d_end() {
    an_idle_connection_is_closed_cleanly("idle-d", IDLE, &[]);
}

#[test]
fn an_idle_connection_is_closed_cleanly_by_the_e_end() {
    an_idle_connection_is_closed_cleanly("idle-e", &[], IDLE);
}

#[test]
fn an_idle_classic_connection_is_closed_with_fins() {
    an_idle_connection_is_closed_cleanly("idle-classic", IDLE, &["--protocol", "classic"]);
}

#[test]
fn a_client_that_keeps_its_socket_after_the_end_is_let_go_one_timeout_later() {
    let (redis, pipe) = redis_behind_a_pipe("idle-held", IDLE, &[]);
    let mut client = Client::connect(&pipe, "held");
    client.reads_a_clean_end();
    redis_sees_it_go(&redis, "held");
    wait_for_log(&pipe.d, OVER);
    closed_for_being_idle(&pipe.d);
    let log = pipe.d.log_text();
    assert!(log.find(OVER) < log.find("connection closed"), "{log}");
    drop(client);
}

#[test]
fn a_connection_in_use_stays_open_and_ends_as_clean_when_its_client_ends_it() {
    let (redis, pipe) = redis_behind_a_pipe("idle-busy", IDLE, IDLE);
    let mut client = Client::connect(&pipe, "busy");
    let id = client.ask("CLIENT ID");
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(client.ask("PING"), "+PONG");
    }
    assert_eq!(client.ask("CLIENT ID"), id, "still the same connection to Redis after 15 PINGs");

    client.stream.get_ref().shutdown(Shutdown::Write).unwrap();
    client.reads_a_clean_end();
    redis_sees_it_go(&redis, "busy");
    closed_as_usual(&pipe.d);
    closed_as_usual(&pipe.e);
}

#[test]
fn a_connection_idle_at_both_ends_is_closed_by_either_or_both() {
    let (redis, pipe) = redis_behind_a_pipe("idle-both", IDLE, IDLE);
    let mut client = Client::connect(&pipe, "both");
    assert_eq!(client.ask("PING"), "+PONG");

    client.reads_a_clean_end();
    redis_sees_it_go(&redis, "both");
    drop(client);
    // Which end's timer fires first is not the test's to know, and the other may fire too while it
    // waits for its client: each end says idle exactly when it closed the connection itself.
    let mut closers = 0;
    for end in [&pipe.d, &pipe.e] {
        let line = closed_line(end);
        let closed_it = end.log_text().contains(CLOSING);
        let outcome = if closed_it { IDLE_OUTCOME } else { CLEAN_OUTCOME };
        assert!(line.contains(outcome), "closed it: {closed_it}; {line}");
        closers += usize::from(closed_it);
    }
    assert!(closers > 0, "one end or both closed it:\n{}\n{}", pipe.d.log_text(), pipe.e.log_text());
}

#[test]
fn spipe_takes_an_idle_close_as_a_clean_end() {
    let dir = scratch("idle-spipe");
    let echo = echo_server();
    let key = key_file(&dir, "spipe.key");
    let source = format!("[127.0.0.1]:{}", free_port());
    let d = SpipedCmd::new(&dir, "d")
        .args(["-d", "-s", &source, "-t", &format!("[127.0.0.1]:{echo}"), "-k", key.to_str().unwrap()])
        .args(IDLE)
        .start();
    let d = DEnd { spiped: d, source, key };
    let mut spipe = d.spipe(Wire::Native).stdin_piped().spawn();
    let mut stdin = spipe.take_stdin();
    stdin.write_all(b"hello\n").unwrap();
    assert_eq!(spipe.read_stdout(6, WITHIN), b"hello\n");

    wait_for_log(&d.spiped, CLOSING);
    drop(stdin);
    let out = spipe.wait(WITHIN);
    out.assert_clean(&d.log());
    assert!(out.stdout.is_empty(), "nothing after the echo: {:?}", out.stdout);
    closed_for_being_idle(&d.spiped);
}
