//! A real redis-server on loopback, and redis-cli to talk to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port};

/// A real redis-server on loopback, stopped when dropped.
pub struct Redis {
    /// The server process, killed on drop.
    child: Child,
    /// The loopback port it listens on (127.0.0.1 and ::1).
    pub port: u16,
    /// Its unix socket, when asked for one.
    pub unix: Option<PathBuf>,
}

impl Redis {
    /// Starts redis-server on a free port (and a unix socket in `dir` if asked).
    pub fn start(dir: &Path, unix: bool) -> Redis {
        Self::start_on(dir, unix, free_port())
    }

    /// Starts redis-server on `port` and waits until it answers PING.
    ///
    /// # Panics
    /// When redis-server is not installed, exits (the port is taken), or never answers.
    pub fn start_on(dir: &Path, unix: bool, port: u16) -> Redis {
        let sock = dir.join("redis.sock");
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1 ::1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        cmd.args(["--dir", dir.to_str().unwrap()]);
        if unix {
            cmd.args(["--unixsocket", sock.to_str().unwrap(), "--unixsocketperm", "700"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed: run scripts/test-all, which installs it");
        let mut redis = Redis { child, port, unix: unix.then_some(sock) };
        eventually("redis-server answers PING", Duration::from_secs(10), || {
            if let Some(status) = redis.child.try_wait().unwrap() {
                panic!("redis-server on port {port} exited with {status}");
            }
            match redis_cli(&["-p", &port.to_string(), "ping"]) {
                answer if answer.trim() == "PONG" => Ok(()),
                answer => Err(format!("redis-cli said {answer:?}")),
            }
        });
        redis
    }

    /// Redis's own count of connections it has accepted (each query adds its own connection).
    pub fn connections_received(&self) -> u64 {
        let info = redis_cli(&["-p", &self.port.to_string(), "info", "stats"]);
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .expect("INFO stats has total_connections_received")
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs redis-cli and returns its standard output.
pub fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli").args(args).output().expect("redis-cli must be installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
