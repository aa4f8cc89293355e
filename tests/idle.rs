//! The idle timeout (`--idle-timeout`) end to end, in front of a real redis-server: an idle connection
//! is closed cleanly at both ends by whichever end enforces it (the client reads an end of stream, not
//! a reset; Redis sees its client go; neither end logs a failure), on the native wire and on the
//! classic one; a connection in use stays open however long it lives; and spipe, which has no such
//! option, takes a `-d` end's idle close as a clean end.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
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

/// Both ends log the connection as closed, neither as a failure.
fn both_ends_close_it_cleanly(pipe: &Pipe) {
    for end in [&pipe.d, &pipe.e] {
        wait_for_log(end, "connection closed");
        let log = end.log_text();
        assert!(!log.contains("connection aborted") && !log.contains("reset"), "{log}");
    }
}

/// A pair with `d_extra` and `e_extra` in front of Redis; one client goes idle. The end with the
/// timeout closes it: the client reads a clean end, Redis sees the client go, both ends log a clean close.
fn an_idle_connection_is_closed_cleanly(name: &str, d_extra: &[&str], e_extra: &[&str]) {
    let dir = scratch(name);
    let redis = Redis::start(&dir, false);
    let key = key_file(&dir, "idle.key");
    let pipe = Pipe::start(&dir, &key, &format!("[127.0.0.1]:{}", redis.port), d_extra, e_extra);
    let mut client = Client::connect(&pipe, name);
    assert_eq!(client.ask("PING"), "+PONG");
    assert!(client_list(&redis).contains(&format!("name={name} ")));

    client.reads_a_clean_end();
    redis_sees_it_go(&redis, name);
    let d_closes = d_extra.contains(&"--idle-timeout");
    wait_for_log(if d_closes { &pipe.d } else { &pipe.e }, CLOSING);
    if d_closes {
        // The -d end sent Redis its end at the idle close, not when its connection ended: that waits
        // for the -e end's end of stream, which waits for the client, which still holds its socket.
        assert!(!pipe.d.log_text().contains("connection closed"), "{}", pipe.d.log_text());
    }
    drop(client);
    both_ends_close_it_cleanly(&pipe);
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
    let dir = scratch("idle-held");
    let redis = Redis::start(&dir, false);
    let key = key_file(&dir, "idle.key");
    let pipe = Pipe::start(&dir, &key, &format!("[127.0.0.1]:{}", redis.port), IDLE, &[]);
    let mut client = Client::connect(&pipe, "held");
    client.reads_a_clean_end();
    redis_sees_it_go(&redis, "held");
    wait_for_log(&pipe.d, OVER);
    wait_for_log(&pipe.d, "connection closed");
    let log = pipe.d.log_text();
    assert!(!log.contains("connection aborted"), "{log}");
    drop(client);
}

#[test]
fn a_connection_in_use_stays_open_then_closes_once_left_idle() {
    let dir = scratch("idle-busy");
    let redis = Redis::start(&dir, false);
    let key = key_file(&dir, "idle.key");
    let pipe = Pipe::start(&dir, &key, &format!("[127.0.0.1]:{}", redis.port), IDLE, IDLE);
    let mut client = Client::connect(&pipe, "busy");
    let id = client.ask("CLIENT ID");
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(client.ask("PING"), "+PONG");
    }
    assert_eq!(client.ask("CLIENT ID"), id, "still the same connection to Redis after 15 PINGs");
    for end in [&pipe.d, &pipe.e] {
        assert!(!end.log_text().contains(CLOSING), "{}", end.log_text());
    }

    client.reads_a_clean_end();
    redis_sees_it_go(&redis, "busy");
    drop(client);
    both_ends_close_it_cleanly(&pipe);
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
    wait_for_log(&d.spiped, "connection closed");
    assert!(!d.log().contains("connection aborted"), "{}", d.log());
}
