//! ssh through `spipe` for real, the way spiped's users reach their hosts: a throwaway sshd (Debian's
//! openssh-server, on a loopback port, with its own host key and one user key) behind our `-d`, and
//! OpenSSH's `ssh` and `scp` with `-o ProxyCommand='spipe -t <the -d end> -k <key>'`. A command runs and
//! says what it was given; a file of a few MiB goes to the server and back, byte-exact. Both protocols:
//! spipe's default (native), and `--protocol classic`, which our `-d` accepts as well.
//!
//! The client trusts nothing it was not given: no configuration file (`-F /dev/null`), only the known
//! host written here (strict checking), only the user key made here, no agent, no prompts.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::sshd::{Ran, Sshd, run_within};
use support::*;

/// The name the client knows the server by: never resolved (the ProxyCommand is the only way there),
/// only looked up in the known_hosts file written for it.
const ALIAS: &str = "spiped-ssh-test";

/// How long one ssh or scp run may take, generously: a few MiB on a shared, busy machine.
const RUN_WITHIN: Duration = Duration::from_secs(120);

/// The size of the file copied: a few MiB, not a multiple of 64 KiB (nor of any record or packet).
const FILE_SIZE: usize = 3 * 1024 * 1024 + 12_345;

/// spipe's arguments for the native protocol: none, its default, as in a ProxyCommand written for
/// Debian's spipe.
const NATIVE: &[&str] = &[];

/// spipe's arguments for the classic protocol.
const CLASSIC: &[&str] = &["--protocol", "classic"];

#[test]
fn ssh_runs_a_command_through_spipe() {
    runs_a_command("ssh-native", NATIVE);
}

#[test]
fn ssh_runs_a_command_through_spipe_classic() {
    runs_a_command("ssh-classic", CLASSIC);
}

#[test]
fn scp_copies_a_file_there_and_back_through_spipe() {
    copies_there_and_back("scp-native", NATIVE);
}

#[test]
fn scp_copies_a_file_there_and_back_through_spipe_classic() {
    copies_there_and_back("scp-classic", CLASSIC);
}

/// `ssh ... 'echo <token>; sha256sum <file>'` prints the token and the file's digest, exit 0.
fn runs_a_command(name: &str, protocol: &[&str]) {
    let site = Site::start(name);
    let token = hex::encode(rand::random::<[u8; 16]>());
    let data = pattern(0x55_4e_13, FILE_SIZE);
    let file = site.dir.join("local.bin");
    std::fs::write(&file, &data).unwrap();
    let file = path_str(&file);

    let ran = site.ssh(protocol, &format!("echo {token}; sha256sum {file}"));
    site.assert_success("ssh", &ran);
    site.assert_ended_cleanly(1);
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        format!("{token}\n{}  {file}\n", digest(&data)),
        "the command's output through spipe {protocol:?}"
    );
}

/// `scp` a file to the server, then back under another name: both copies are the original's bytes.
fn copies_there_and_back(name: &str, protocol: &[&str]) {
    let site = Site::start(name);
    let data = pattern(0x5c_90_13, FILE_SIZE);
    let local = site.dir.join("local.bin");
    let remote = site.dir.join("remote.bin");
    let back = site.dir.join("back.bin");
    std::fs::write(&local, &data).unwrap();

    let ran = site.scp(protocol, &path_str(&local), &site.remote(&remote));
    site.assert_success("scp to the server", &ran);
    let there = std::fs::read(&remote).unwrap();
    assert_eq!((there.len(), digest(&there)), (data.len(), digest(&data)), "the copy on the server");

    let ran = site.scp(protocol, &site.remote(&remote), &path_str(&back));
    site.assert_success("scp from the server", &ran);
    site.assert_ended_cleanly(2);
    let again = std::fs::read(&back).unwrap();
    assert_eq!((again.len(), digest(&again)), (data.len(), digest(&data)), "the copy brought back");
}

/// An sshd behind our `-d`, and what a client needs to reach it through spipe.
struct Site {
    /// The test's scratch directory: keys, configuration, logs and the files copied.
    dir: PathBuf,
    /// The server.
    sshd: Sshd,
    /// Our `-d` end in front of the server.
    d: Spiped,
    /// The `-d` end's address, as spiped writes it: spipe's `-t`.
    d_source: String,
    /// The spiped key the `-d` end and spipe share.
    key: PathBuf,
    /// The client's known_hosts: the server's host key under [`ALIAS`], and nothing else.
    known_hosts: PathBuf,
}

impl Site {
    fn start(name: &str) -> Site {
        let dir = scratch(name);
        let sshd = Sshd::start(&dir);
        let key = key_file(&dir, "key");
        let source = format!("[127.0.0.1]:{}", free_port());
        let d = SpipedCmd::new(&dir, "d")
            .args(["-d", "-s", &source, "-t", &sshd.addr, "-k"])
            .args([&key])
            .start();
        let known_hosts = dir.join("known_hosts");
        std::fs::write(&known_hosts, sshd.known_hosts_line(ALIAS)).unwrap();
        Site { dir, sshd, d, d_source: source, key, known_hosts }
    }

    /// `ssh ... -l <user> <alias> <command>`.
    fn ssh(&self, protocol: &[&str], command: &str) -> Ran {
        let mut cmd = self.client("ssh", protocol);
        cmd.args(["-l", &self.sshd.user, ALIAS, command]);
        run_within(cmd, &self.dir, "ssh", RUN_WITHIN)
    }

    /// `scp ... <from> <to>`, either of which may be [`Site::remote`].
    fn scp(&self, protocol: &[&str], from: &str, to: &str) -> Ran {
        let mut cmd = self.client("scp", protocol);
        cmd.args([from, to]);
        run_within(cmd, &self.dir, "scp", RUN_WITHIN)
    }

    /// `path` on the server, for scp: `<user>@<alias>:<path>`.
    fn remote(&self, path: &Path) -> String {
        format!("{}@{ALIAS}:{}", self.sshd.user, path_str(path))
    }

    /// `program` (ssh or scp) with the options both take: the ProxyCommand through spipe, this
    /// site's known host and user key, and nothing from the user's own configuration.
    fn client(&self, program: &str, protocol: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(["-F", "/dev/null", "-i"]).arg(&self.sshd.user_key);
        for option in [
            format!("ProxyCommand={}", self.proxy_command(protocol)),
            format!("UserKnownHostsFile={}", path_str(&self.known_hosts)),
            "GlobalKnownHostsFile=/dev/null".into(),
            "StrictHostKeyChecking=yes".into(),
            "UpdateHostKeys=no".into(),
            "BatchMode=yes".into(),
            "IdentitiesOnly=yes".into(),
            "IdentityAgent=none".into(),
        ] {
            cmd.arg("-o").arg(option);
        }
        cmd
    }

    /// `'<spipe>' [--protocol classic] -t '[127.0.0.1]:P' -k '<key>'`, as ssh hands it to a shell:
    /// each word quoted, so that the brackets of the address are no pattern.
    fn proxy_command(&self, protocol: &[&str]) -> String {
        let key = path_str(&self.key);
        let target: &[&str] = &["-t", &self.d_source, "-k", &key];
        let words = [&[env!("CARGO_BIN_EXE_spipe")][..], protocol, target].concat();
        words.iter().map(|word| shell_word(word)).collect::<Vec<_>>().join(" ")
    }

    /// Waits until the `-d` end has seen `sessions` connections end, and fails the test unless each
    /// ended cleanly. ssh hangs up its ProxyCommand (SIGHUP) as it exits; a spipe that died of it cut
    /// the connection before the end of its input had reached the `-d` end, which then logged a
    /// truncated stream for a session that had gone well.
    fn assert_ended_cleanly(&self, sessions: usize) {
        let ends = |log: &str| {
            log.lines().filter(|l| l.contains("connection closed") || l.contains(" WARN ")).count()
        };
        let log = eventually("the -d end sees the sessions end", Duration::from_secs(30), || {
            let log = self.d.log_text();
            if ends(&log) >= sessions { Ok(log) } else { Err(log) }
        });
        assert!(!log.contains(" WARN "), "a session did not end cleanly at the -d end:\n{log}");
    }

    /// Fails the test with everything that tells why, unless `ran` exited 0.
    fn assert_success(&self, what: &str, ran: &Ran) {
        assert!(
            ran.status.success(),
            "{what} exited with {}; its standard error:\n{}\nsshd's log:\n{}\nthe -d end's log:\n{}",
            ran.status,
            ran.stderr,
            self.sshd.log_text(),
            self.d.log_text()
        );
    }
}

/// `word` quoted for the shell ssh runs a ProxyCommand with; ssh itself expands `%` sequences in it.
fn shell_word(word: &str) -> String {
    assert!(!word.contains(['\'', '%']), "{word:?} cannot be quoted this simply");
    format!("'{word}'")
}

/// A scratch path as text: the temporary directory's paths are UTF-8.
fn path_str(path: &Path) -> String {
    path.to_str().expect("scratch paths are UTF-8").to_string()
}
