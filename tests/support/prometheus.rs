//! Debian's Prometheus: `promtool check metrics` on a text, and a real server, started on a loopback
//! port with its own storage, that scrapes the given targets every second and answers queries.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port, http};

/// `promtool check metrics` on `text`: its exit status and everything it printed (its findings).
pub fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) is installed");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

/// A running Prometheus server, killed on drop.
pub struct Prometheus {
    child: Child,
    /// `127.0.0.1:port` of its HTTP API.
    pub addr: String,
}

impl Prometheus {
    /// Starts a server in `dir` scraping each `(job, host:port)` every second.
    pub fn start(dir: &Path, targets: &[(&str, &str)]) -> Prometheus {
        let mut config =
            String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
        for (job, target) in targets {
            config.push_str(&format!(
                "  - job_name: '{job}'\n    static_configs:\n      - targets: ['{target}']\n"
            ));
        }
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian's prometheus package) is installed");
        let server = Prometheus { child, addr };
        eventually("prometheus ready", Duration::from_secs(60), || {
            http::get(&server.addr, "/-/ready")
                .map_err(|e| e.to_string())
                .and_then(|r| if r.status == 200 { Ok(()) } else { Err(format!("{} {}", r.status, r.body)) })
        });
        server
    }

    /// The value of the instant query `query`, when it gives exactly one sample.
    pub fn query_one(&self, query: &str) -> Result<f64, String> {
        let path = format!("/api/v1/query?query={}", encode(query));
        let response = http::get(&self.addr, &path).map_err(|e| e.to_string())?;
        let json: serde_json::Value = serde_json::from_str(&response.body).map_err(|e| e.to_string())?;
        let result = json["data"]["result"].as_array().ok_or_else(|| format!("no result: {json}"))?;
        match result.as_slice() {
            [sample] => sample["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no value: {sample}")),
            _ => Err(format!("{} samples for {query}: {json}", result.len())),
        }
    }

    /// Waits until `query` gives `expected`.
    pub fn wait_for(&self, query: &str, expected: f64) {
        eventually(&format!("{query} == {expected}"), Duration::from_secs(60), || {
            let got = self.query_one(query)?;
            if (got - expected).abs() < 1e-9 { Ok(()) } else { Err(format!("{query} = {got}")) }
        });
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query for a URL.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
