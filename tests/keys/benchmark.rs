//! redis-benchmark through an `-e` end, each run counting on a Redis key of its own, so that Redis
//! itself says whether every request arrived exactly once.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::rig::Rig;
use crate::support::eventually;

/// Parallel connections a benchmark keeps.
pub const CLIENTS: u64 = 20;

/// How long a benchmark may take once it is let go, generously.
const FINISH_WITHIN: Duration = Duration::from_secs(120);

/// A running `redis-benchmark` making INCR requests of its own counter; its output goes to a file.
pub struct Benchmark {
    /// The running benchmark, killed on drop if still running.
    child: Child,
    /// Its standard output and error.
    output: PathBuf,
    /// The Redis key it increments: nothing else touches it.
    counter: String,
    /// How many INCRs it makes, which its counter must equal at the end.
    requests: u32,
}

impl Benchmark {
    /// Starts `redis-benchmark incr <its counter>` through `e_addr`: `requests` INCRs over
    /// [`CLIENTS`] connections, kept open (`-k 1`) or a new one per request (`-k 0`). It exits 1 at
    /// its first error (a connection refused or cut, an error reply), saying so.
    pub fn start(rig: &Rig, e_addr: &str, keepalive: bool, requests: u32) -> Benchmark {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let counter = format!("benchmark-{n}");
        let (host, port) = e_addr.rsplit_once(':').unwrap();
        let output = rig.dir.join(format!("{counter}-k{}.out", u8::from(keepalive)));
        let file = std::fs::File::create(&output).unwrap();
        let child = Command::new("redis-benchmark")
            .args(["-h", host, "-p", port, "-n", &requests.to_string(), "-c", &CLIENTS.to_string()])
            .args(["-k", if keepalive { "1" } else { "0" }, "-q", "incr", &counter])
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("redis-benchmark must be installed: run scripts/test-all, which installs it");
        Benchmark { child, output, counter, requests }
    }

    /// How many of its INCRs Redis has run so far.
    pub fn ran(&self, rig: &Rig) -> u64 {
        rig.redis_cli(&["get", &self.counter]).trim().parse().unwrap_or(0)
    }

    /// Waits for it to finish and asserts that no request failed: it exits 0, says nothing of an
    /// error, and Redis ran every one of its INCRs exactly once.
    pub fn assert_no_failure(mut self, rig: &Rig) {
        let status =
            eventually("the benchmark finishes", FINISH_WITHIN, || match self.child.try_wait().unwrap() {
                Some(status) => Ok(status),
                None => Err(format!("{} INCRs so far", self.ran(rig))),
            });
        let output = self.output_text();
        let logs = format!("its output:\n{output}\nthe -d end's log:\n{}", rig.d.log_text());
        assert!(status.success(), "the benchmark exited with {status}; {logs}");
        let errors: Vec<&str> = output.lines().filter(|l| l.to_lowercase().contains("error")).collect();
        assert!(errors.is_empty(), "the benchmark saw errors: {errors:?}; {logs}");
        assert_eq!(self.ran(rig), u64::from(self.requests), "every INCR ran once; {logs}");
    }

    fn output_text(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
}

impl Drop for Benchmark {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
