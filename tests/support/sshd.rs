//! A throwaway OpenSSH server, Debian's `/usr/sbin/sshd`, on a loopback port: its own configuration,
//! host key and authorized key in the test's scratch directory, none of the system's in `/etc/ssh`.
//! It runs as the user running the tests and lets only that user in, by public key: as root (as in
//! CI) that is root, allowed by `PermitRootLogin prohibit-password`; as anyone else, sshd runs
//! unprivileged and can log in no one but them, which is all the tests need (so no test is ignored).
//!
//! Also here: [`run_within`], which runs a client program (ssh, scp) to its end with a bound.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::unistd::{Uid, User};

use super::{eventually, free_port};

/// Debian's OpenSSH server (openssh-server); run by its absolute path, which sshd needs to re-exec
/// itself for each connection.
const SSHD: &str = "/usr/sbin/sshd";

/// OpenSSH's key generator (openssh-client).
const SSH_KEYGEN: &str = "ssh-keygen";

/// The privilege separation directory Debian's sshd insists on when it starts as root; packages
/// create it through systemd's tmpfiles or the init script, neither of which runs here.
const PRIVSEP_DIR: &str = "/run/sshd";

/// How long sshd may take to listen.
const START_WITHIN: Duration = Duration::from_secs(20);

/// What sshd logs once it listens (`Server listening on 127.0.0.1 port N.`).
const LISTENING: &str = "Server listening on";

/// A running sshd in the foreground (`-D -e`), killed when dropped.
pub struct Sshd {
    /// The sshd process; the processes it forks per connection end with their connections.
    child: Child,
    /// Where sshd logs (standard error, `-e`): the first place to look when a login fails.
    pub log: PathBuf,
    /// The loopback port it listens on, as spiped writes a target: `[127.0.0.1]:port`.
    pub addr: String,
    /// The user it lets in: the one running the tests.
    pub user: String,
    /// The private half of the only key it accepts, for the client's `-i`.
    pub user_key: PathBuf,
    /// Its host key's public half, `ssh-ed25519 AAAA...`, for the client's known_hosts.
    host_key: String,
}

impl Sshd {
    /// Makes a host key and a user key in `dir`, writes an sshd_config there and starts sshd on a free
    /// loopback port, logging to `dir/sshd.log`; returns once it listens.
    ///
    /// # Panics
    /// When sshd or ssh-keygen is missing (scripts/test-all installs openssh-server), the user running
    /// the tests has no name, or sshd refuses its configuration, exits, or does not listen in time.
    pub fn start(dir: &Path) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: run scripts/test-all, which installs openssh-server without starting it"
        );
        let user = User::from_uid(Uid::current())
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("the user running the tests (uid {}) has no name", Uid::current()))
            .name;
        let host_key = keygen(dir, "host_key");
        let user_key = dir.join("user_key");
        let authorized = dir.join("authorized_keys");
        std::fs::write(&authorized, public_key(&keygen(dir, "user_key"))).unwrap();
        if Uid::current().is_root() {
            std::fs::create_dir_all(PRIVSEP_DIR).unwrap();
        }
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(&config, config_text(port, &host_key, &authorized, &user)).unwrap();

        let log = dir.join("sshd.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(SSHD);
        cmd.args(["-D", "-e", "-f"]).arg(&config).stdin(Stdio::null());
        cmd.stdout(log_file.try_clone().unwrap()).stderr(log_file);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut sshd = Sshd {
            child,
            log,
            addr: format!("[127.0.0.1]:{port}"),
            user,
            user_key,
            host_key: public_key(&host_key),
        };
        eventually(&format!("sshd listens on port {port}"), START_WITHIN, || {
            if let Some(status) = sshd.child.try_wait().unwrap() {
                panic!("sshd exited with {status}:\n{}", sshd.log_text());
            }
            let log = sshd.log_text();
            match log.contains(LISTENING) {
                true => Ok(()),
                false => Err(format!("the log so far:\n{log}")),
            }
        });
        sshd
    }

    /// A known_hosts line that vouches for this server's host key under the name `alias`.
    pub fn known_hosts_line(&self, alias: &str) -> String {
        format!("{alias} {}\n", self.host_key)
    }

    /// Everything sshd has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration: this port on 127.0.0.1, this host key, public keys from `authorized` only, for
/// `user` only; no PAM (no system login policy), no passwords. `StrictModes no`, because the scratch
/// directory sits under the world-writable temporary directory, which strict modes refuse. scp in
/// OpenSSH 9 speaks SFTP, served in-process by `internal-sftp`. `PidFile none`: nothing outside the
/// scratch directory is written.
fn config_text(port: u16, host_key: &Path, authorized: &Path, user: &str) -> String {
    let mut text = String::new();
    for (option, value) in [
        ("ListenAddress", format!("127.0.0.1:{port}")),
        ("HostKey", host_key.display().to_string()),
        ("AuthorizedKeysFile", authorized.display().to_string()),
        ("AllowUsers", user.to_string()),
        ("PermitRootLogin", "prohibit-password".into()),
        ("PubkeyAuthentication", "yes".into()),
        ("PasswordAuthentication", "no".into()),
        ("KbdInteractiveAuthentication", "no".into()),
        ("UsePAM", "no".into()),
        ("StrictModes", "no".into()),
        ("PidFile", "none".into()),
        ("Subsystem", "sftp internal-sftp".into()),
        ("LogLevel", "VERBOSE".into()),
    ] {
        writeln!(text, "{option} {value}").expect("writing to a String cannot fail");
    }
    text
}

/// Makes an ed25519 key pair without a passphrase at `dir/name` (and `.pub`); returns the private
/// half's path.
fn keygen(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new(SSH_KEYGEN)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {SSH_KEYGEN} (openssh-client): {e}"));
    assert!(out.status.success(), "{SSH_KEYGEN} {name}: {}", String::from_utf8_lossy(&out.stderr));
    path
}

/// The public half of the key at `private`, as `type base64` without the comment.
fn public_key(private: &Path) -> String {
    let text = std::fs::read_to_string(private.with_extension("pub")).unwrap();
    let fields: Vec<&str> = text.split_whitespace().take(2).collect();
    assert_eq!(fields.len(), 2, "{}.pub: {text:?}", private.display());
    fields.join(" ")
}

/// How a program run by [`run_within`] ended.
pub struct Ran {
    /// Its exit status.
    pub status: ExitStatus,
    /// All it wrote to standard output.
    pub stdout: Vec<u8>,
    /// All it wrote to standard error, for failure messages.
    pub stderr: String,
}

/// Runs `cmd` with standard input from /dev/null and its output in files `dir/<name>.out` and
/// `.err`, and waits for it to exit, up to `within` (then it is killed and the test fails).
///
/// # Panics
/// When it cannot be started or is still running after `within`.
pub fn run_within(mut cmd: Command, dir: &Path, name: &str, within: Duration) -> Ran {
    let (out, err) = (dir.join(format!("{name}.out")), dir.join(format!("{name}.err")));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    // Killed on every way out of this function, the panic of a timeout included.
    let mut child = KillOnDrop(child);
    let status = eventually(&format!("{name} exits"), within, || match child.0.try_wait().unwrap() {
        Some(status) => Ok(status),
        None => Err(format!("still running; its standard error so far:\n{}", read_lossy(&err))),
    });
    Ran { status, stdout: std::fs::read(&out).unwrap(), stderr: read_lossy(&err) }
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// A child process killed and reaped when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
