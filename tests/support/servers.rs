//! Small real TCP servers for the tunnels to reach, and the client side of a transfer through them.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

/// A real TCP server that reads each connection to its end, then writes back what it read (optionally
/// transformed) and closes: the shape of a request after a half-close. Records how each read ended.
pub struct CollectServer {
    /// The loopback port it listens on.
    pub port: u16,
    /// How each connection's read ended: what arrived before a clean end, or the error.
    pub outcomes: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
}

impl CollectServer {
    pub fn start() -> CollectServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, outcomes) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let result = conn.read_to_end(&mut got).map(|_| got);
                    if let Ok(data) = &result {
                        let _ = conn.write_all(data);
                    }
                    let _ = tx.send(result);
                });
            }
        });
        CollectServer { port, outcomes }
    }
}

/// A real TCP echo server: writes back every byte as it arrives, half-closes when the client does.
pub fn echo_server() -> u16 {
    echo_server_saying(b"")
}

/// [`echo_server`] that first sends `greeting` on each connection, as a service that speaks first
/// does.
pub fn echo_server_saying(greeting: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut reader = conn.try_clone().unwrap();
                let mut writer = conn;
                if writer.write_all(greeting).is_ok() && io::copy(&mut reader, &mut writer).is_ok() {
                    let _ = writer.shutdown(Shutdown::Write);
                }
            });
        }
    });
    port
}

/// Sends `data` through `stream` while reading the echo on another thread; returns what came back.
pub fn echo_through(mut stream: TcpStream, data: &[u8]) -> Vec<u8> {
    let mut reader = stream.try_clone().unwrap();
    let back = std::thread::spawn(move || {
        let mut got = Vec::new();
        reader.read_to_end(&mut got).map(|_| got)
    });
    stream.write_all(data).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    back.join().unwrap().expect("the echo ends cleanly")
}

/// Reads until the peer closes; `Ok` with what arrived, or the error that ended it. A read timeout
/// guards against a test hanging forever if the daemon never closes.
pub fn read_until_closed(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut got = Vec::new();
    stream.read_to_end(&mut got).map(|_| got)
}
