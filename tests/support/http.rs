//! A plain HTTP/1.1 GET over TCP or a unix socket, for the metrics endpoint and Prometheus's API: the
//! request is one line and a header, the response is read to the end (the request asks to close).
//! Also a client that pipelines requests and never reads the replies.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long a GET waits for its response: a bound far beyond any reply, so that a server that never
/// answers fails the test rather than hangs it.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A response: its status code and body.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, one per line, as sent.
    pub headers: String,
    /// The body.
    pub body: String,
}

/// GETs `path` from `addr` (`host:port`).
pub fn get(addr: &str, path: &str) -> io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    exchange(&mut stream, &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"))
}

/// GETs `path` from the unix socket at `socket`.
pub fn get_unix(socket: &Path, path: &str) -> io::Result<Response> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    exchange(&mut stream, &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
}

/// Sends `request` as it is (any method), and reads the response.
pub fn request(addr: &str, request: &str) -> io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    exchange(&mut stream, request)
}

/// Connects to `addr` and pipelines GETs of `path`, kept alive, until the socket takes no more, reading
/// nothing: a client that never reads its replies. Returns the connection, to be held open.
pub fn pipeline_unread(addr: &str, path: &str) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nonblocking(true)?;
    // Whole requests, written from a cursor that wraps at a request's boundary.
    let requests = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").repeat(1000).into_bytes();
    let mut at = 0;
    loop {
        match stream.write(&requests[at..]) {
            Ok(n) => at = (at + n) % requests.len(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(stream),
            Err(e) => return Err(e),
        }
    }
}

fn exchange(stream: &mut (impl Read + Write), request: &str) -> io::Result<Response> {
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| io::Error::other(format!("no header end: {text:?}")))?;
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no status in {status_line:?}")))?;
    Ok(Response { status, headers: headers.to_string(), body: body.to_string() })
}
