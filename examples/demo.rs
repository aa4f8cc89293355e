//! A loopback demonstration that needs nothing installed: a throwaway key, a `-d` end in front of a
//! built-in echo service (or in front of redis-server, when it is installed), an `-e` end, data through
//! the pipe, and a short report of what crossed and how fast. Both ends run the daemon's own code
//! (`spiped::tunnel`) in this process, on 127.0.0.1.
//!
//! `cargo run --release --example demo [MiB]` (default 512 MiB).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spiped::keys::{KeyRing, KeySet};
use spiped::proto::classic::ForwardSecrecy;
use spiped::proto::{Protocol, Protocols, Psk};
use spiped::tunnel::addr::{Addr, SocketSpec, TargetAddrs};
use spiped::tunnel::stream::TcpOptions;
use spiped::tunnel::{
    self, AcceptedOptions, Dialer, Listener, Mode, Parking, Settings, Stats, StdListener, Tunnel, bind_tcp,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mib: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(512);
    let psk = Psk::from_key_file(&rand::random::<[u8; 32]>());
    println!("throwaway key made; nothing is written to disk");

    let echo = echo_service().await?;
    let echo_pipe = start_pipe(&psk, echo, "built-in echo service").await?;
    let started = Instant::now();
    let (bytes, checked) = echo_transfer(TcpStream::connect(echo_pipe).await?, mib << 20).await?;
    let secs = started.elapsed().as_secs_f64();
    println!("{} MiB sent and echoed back through the pipe, every byte checked: {checked}", bytes >> 20);
    println!(
        "{secs:.2} s, {:.2} Gbit/s each way (both ends, the echo service and this client share this machine)\n",
        bytes as f64 * 8.0 / secs / 1e9
    );

    let redis = start_redis().await;
    let request_pipe = match &redis {
        Some((addr, _)) => {
            let pipe = start_pipe(&psk, *addr, "redis-server").await?;
            let mut conn = TcpStream::connect(pipe).await?;
            for (cmd, args) in
                [("PING", vec![]), ("SET", vec!["demo", "through the pipe"]), ("GET", vec!["demo"])]
            {
                let reply = redis_call(&mut conn, cmd, &args).await?;
                println!("redis> {cmd} {}  ->  {}", args.join(" "), reply.trim_end());
            }
            println!();
            pipe
        }
        None => {
            println!("(install redis-server to see Redis answer through the pipe)\n");
            echo_pipe
        }
    };
    let e_addr = request_pipe;
    let started = Instant::now();
    let n = 200;
    for _ in 0..n {
        let mut conn = TcpStream::connect(e_addr).await?;
        conn.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
        conn.shutdown().await?;
        let mut reply = Vec::new();
        conn.read_to_end(&mut reply).await?;
        if reply.is_empty() {
            return Err("a connection came back empty".into());
        }
    }
    println!(
        "{n} fresh connections, each a full handshake, one request and a close: {:.0} per second",
        n as f64 / started.elapsed().as_secs_f64()
    );
    drop(redis);
    Ok(())
}

/// Starts a `-d` end in front of `target` and an `-e` end in front of it; returns the `-e` source.
async fn start_pipe(psk: &Psk, target: SocketAddr, what: &str) -> Result<SocketAddr, Error> {
    let d_addr = start_end(Mode::Decrypt, psk, target).await?;
    let e_addr = start_end(Mode::Encrypt, psk, d_addr).await?;
    println!("pipe: client -> {e_addr} (-e) => encrypted => {d_addr} (-d) -> {target} ({what})");
    Ok(e_addr)
}

/// Starts one end of the pipe with the daemon's own accept loop, on a free loopback port.
async fn start_end(mode: Mode, psk: &Psk, target: SocketAddr) -> Result<SocketAddr, Error> {
    let tcp = TcpOptions { keepalive: true };
    let socket = bind_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), tcp)?;
    let addr = socket.local_addr()?;
    let listener = Listener::from_std(StdListener::Tcp(socket), AcceptedOptions::Inherited)?;
    let tunnel = Arc::new(Tunnel {
        settings: Settings {
            mode,
            protocols: Protocols::Only(Protocol::Native),
            classic: ForwardSecrecy::Offer,
            unproven_timeout: tunnel::UNPROVEN_TIMEOUT,
            max_connections: 0,
            max_unproven: tunnel::MAX_UNPROVEN,
            proxy_protocol: false,
            idle_timeout: None,
        },
        keys: KeyRing::new(KeySet::single(psk.clone())),
        dialer: Dialer {
            target: TargetAddrs::new(SocketSpec::Ip(target), vec![Addr::Tcp(target)]),
            bind: None,
            timeout: Duration::from_secs(5),
            tcp,
        },
        stats: Stats::default(),
        parking: Parking::new(0, Duration::from_secs(1)),
        pool: None,
    });
    tokio::spawn(tunnel::run(listener, tunnel, std::future::pending(), std::future::pending()));
    Ok(addr)
}

/// A plain TCP echo service: writes back what it reads, half-closes when the client does.
async fn echo_service() -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.into_split();
                if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                    let _ = w.shutdown().await;
                }
            });
        }
    });
    Ok(addr)
}

/// Sends `len` bytes of a known pattern and checks the echo, concurrently.
async fn echo_transfer(conn: TcpStream, len: usize) -> Result<(usize, &'static str), Error> {
    let block: Vec<u8> = (0..64 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    let (mut r, mut w) = conn.into_split();
    let sender = {
        let block = block.clone();
        tokio::spawn(async move {
            let mut sent = 0;
            while sent < len {
                let n = block.len().min(len - sent);
                w.write_all(&block[..n]).await?;
                sent += n;
            }
            w.shutdown().await?;
            Ok::<_, std::io::Error>(sent)
        })
    };
    let mut buf = vec![0u8; 256 * 1024];
    let mut received = 0usize;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        for (i, b) in buf[..n].iter().enumerate() {
            if *b != block[(received + i) % block.len()] {
                return Err(format!("byte {} differs", received + i).into());
            }
        }
        received += n;
    }
    let sent = sender.await??;
    if received != sent {
        return Err(format!("sent {sent} bytes, {received} came back").into());
    }
    Ok((sent, "all equal"))
}

/// Starts redis-server on a free port if it is installed.
async fn start_redis() -> Option<(SocketAddr, KillOnDrop)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let child = KillOnDrop(child);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            return Some((addr, child));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// One RESP request and its (single-line or bulk) reply.
async fn redis_call(conn: &mut TcpStream, cmd: &str, args: &[&str]) -> Result<String, Error> {
    let mut req = format!("*{}\r\n${}\r\n{cmd}\r\n", args.len() + 1, cmd.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    conn.write_all(req.as_bytes()).await?;
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    Ok(text.lines().last().unwrap_or_default().to_string())
}

/// Stops redis-server when the demo ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
