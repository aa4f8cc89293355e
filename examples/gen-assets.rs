//! Generates the man pages and shell completions from the same clap definitions as `--help`, so they
//! cannot drift: `cargo run --example gen-assets -- <dir>` writes `<dir>/spiped.1`, `<dir>/spipe.1`
//! and `<dir>/completions/{spiped.bash,_spiped,spiped.fish,spipe.bash,_spipe,spipe.fish}`. The
//! packages are built from these.

use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};
use clap_complete::Shell;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/assets".into()));
    std::fs::create_dir_all(dir.join("completions"))?;
    spiped(&dir)?;
    spipe(&dir)
}

/// The daemon's page and completions.
fn spiped(dir: &Path) -> std::io::Result<()> {
    let cmd = spiped::cli::Args::command().about("secure pipe daemon").long_about(spiped_text::LONG_ABOUT);
    write_assets(dir, "spiped", &cmd, spiped_text::EXTRA_SECTIONS)
}

/// The client's page and completions.
fn spipe(dir: &Path) -> std::io::Result<()> {
    let cmd =
        spiped::spipe::cli::Args::command().about("secure pipe client").long_about(spipe_text::LONG_ABOUT);
    write_assets(dir, "spipe", &cmd, spipe_text::EXTRA_SECTIONS)
}

/// Writes `<dir>/<name>.1` (clap's sections, then `extra`, then the version) and the bash, zsh and
/// fish completions for `name`.
fn write_assets(dir: &Path, name: &str, cmd: &Command, extra: &str) -> std::io::Result<()> {
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone()).section("1").manual("spiped-rs");
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    page.extend_from_slice(extra.as_bytes());
    man.render_version_section(&mut page)?;
    std::fs::write(dir.join(format!("{name}.1")), page)?;

    let completions = [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ];
    for (shell, file) in completions {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), name, &mut out);
        std::fs::write(dir.join("completions").join(file), out)?;
    }
    Ok(())
}

/// spiped(1)'s text beyond the options.
mod spiped_text {
    pub const LONG_ABOUT: &str = "spiped creates a secure pipe between a source socket and a target socket. In -e mode it \
accepts plaintext connections on the source and forwards them, encrypted and authenticated with the shared \
key, to the target; in -d mode it accepts such encrypted connections and forwards the plaintext. A pipe is an \
-e end and a -d end holding the same key file.\n\nspiped-rs speaks two protocols: its native one (an X25519 \
handshake authenticated by the key, then ChaCha20-Poly1305 records) and classic spiped 1.x's, so that hosts \
can move from spiped one at a time. An -e end speaks native unless given --protocol classic (for a -d end \
still on spiped 1.x); a -d end accepts both on the same socket unless --protocol names the only one to \
accept. -f and -g mean what they mean in spiped 1.6 for classic connections (-f: skip the Diffie-Hellman \
exchange, losing forward secrecy; -g: refuse a peer using -f); native connections always perform an X25519 \
exchange, so they always have forward secrecy. Any key file of one byte or more works, as in spiped; one \
shorter than 32 bytes starts with a warning, since a guessable key can be tried offline by anyone who \
records the traffic. A -d end connects to its target only after the peer has proved it holds the key.";

    /// Sections clap does not know about, in roff.
    pub const EXTRA_SECTIONS: &str = r#".SH SIGNALS
.TP
\fBSIGTERM\fR
Stop accepting connections, let live connections finish, then exit 0. A second SIGTERM exits at once.
.TP
\fBSIGINT\fR
As SIGTERM, when running in the foreground (\fB\-F\fR).
.TP
\fBSIGHUP\fR
Read every key file (and list every key directory) again: connections that start from then on use the
new keys; live connections keep theirs. A reload that fails (a file missing, empty or unreadable) keeps
the keys in force and logs why. Nothing else is read again. Under systemd, \fBsystemctl reload\fR does
this (docs/keys.md).
.SH EXIT STATUS
0 on a clean shutdown (or, without \fB\-F\fR, once the daemon is serving);
1 for bad arguments, an unusable key, an address that cannot be resolved or bound, or any other failure
to start.
.SH ENVIRONMENT
.TP
\fBRUST_LOG\fR
Log filter; overrides \fB\-\-log\-level\fR.
.TP
\fBLISTEN_FDS\fR, \fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR
Set by systemd: socket activation, readiness and status, watchdog.
.SH EXAMPLES
Make a key, the same file at both ends:
.PP
.nf
.RS
dd if=/dev/urandom bs=32 count=1 of=/etc/spiped/redis.key
.RE
.fi
.PP
On the Redis server:
.PP
.nf
.RS
spiped \-F \-d \-s '[203.0.113.5]:6379' \-t '[127.0.0.1]:6379' \-k /etc/spiped/redis.key
.RE
.fi
.PP
On a client, after which \fBredis\-cli \-p 8000 ping\fR answers PONG through the pipe:
.PP
.nf
.RS
spiped \-F \-e \-s '[127.0.0.1]:8000' \-t '[203.0.113.5]:6379' \-k /etc/spiped/redis.key
.RE
.fi
.SH SEE ALSO
\fBspipe\fR(1), \fBspiped.conf\fR(5), \fBsystemctl\fR(1)
"#;
}

/// spipe(1)'s text beyond the options.
mod spipe_text {
    pub const LONG_ABOUT: &str = "spipe connects to a spiped -d end, proves it holds the shared key, \
then carries standard input to the -d end and the -d end's answers to standard output, both at once, \
encrypted and authenticated. It is the client side of a pipe without a listening -e end: for a single \
connection from a script, or as ssh's ProxyCommand.\n\nThe end of standard input is passed on as a \
half-close: the -d end's service sees the end of its input and can still answer. Standard output ends \
as soon as the service's answer has ended, even while standard input is still open. A connection that \
is cut short, reset or tampered with is an error (exit status 1), never a clean end: with the native \
protocol every stream ends with an authenticated end-of-stream record.\n\nspipe speaks the native \
protocol unless given --protocol classic, for a -d end still on spiped 1.x (a spiped-rs -d end \
accepts both). With the classic protocol the end of a stream is a plain TCP FIN, so a connection cut \
between two packets cannot be told from a complete one. -f and -g mean what they mean in spiped 1.6 \
for the classic protocol; native connections always have forward secrecy.\n\nThe key file cannot be \
- (standard input carries the data). Any key file of one byte or more works, as in spiped; one \
shorter than 32 bytes starts with a warning.";

    /// Sections clap does not know about, in roff.
    pub const EXTRA_SECTIONS: &str = r#".SH SIGNALS
.TP
\fBSIGHUP\fR
Ignored: ssh sends it to its ProxyCommand as it exits, once it has closed spipe's standard input; the end
of input then reaches the \-d end and the connection ends cleanly.
.TP
\fBSIGINT\fR, \fBSIGTERM\fR
End spipe at once. With the native protocol the \-d end sees a truncated stream and resets the
connection to its service, never a clean end.
.SH EXIT STATUS
0 once both directions have ended cleanly: standard input reached its end and was passed on, and the
\-d end's stream ended with its authenticated end (with \fB\-\-protocol classic\fR, a FIN).
.PP
1 with one line on standard error, starting \fBspipe:\fR, when:
.TP
the target cannot be reached
\fBspipe: cannot connect to\fR \fIaddress\fR\fB:\fR \fIreason\fR (or \fB\-t\fR cannot be resolved);
.TP
the handshake fails
\fBspipe: handshake failed:\fR \fIreason\fR (a wrong key, a peer that is not a spiped \-d end, or
one that did not answer within \fB\-o\fR seconds);
.TP
the connection is cut short, reset or tampered with
\fBspipe: connection aborted:\fR \fIreason\fR;
.TP
standard input or output fails
\fBspipe: cannot read standard input:\fR ... or \fBspipe: cannot write standard output:\fR ...
(for instance, the reader of the output has gone);
.TP
the key file cannot be used
a line naming the key file and what is wrong with it (missing, unreadable, empty, too large);
.TP
the arguments are wrong
\fBspipe:\fR \fIreason\fR, followed by the usage (\fB\-k \-\fR among them).
.PP
A key file shorter than 32 bytes, or one that others can read, adds a line starting
\fBspipe: warning:\fR before the connection is made; the exit status does not change.
.SH EXAMPLES
Ask Redis behind a spiped \-d end for PONG, from a script:
.PP
.nf
.RS
printf 'PING\er\en' | spipe \-t '[203.0.113.5]:6379' \-k /etc/spiped/redis.key
.RE
.fi
.PP
ssh through a pipe. On the server, in front of sshd:
.PP
.nf
.RS
spiped \-F \-d \-s '[0.0.0.0]:8022' \-t '[127.0.0.1]:22' \-k /etc/spiped/ssh.key
.RE
.fi
.PP
On the client, with the same key, in \fI~/.ssh/config\fR (scp and sftp use it too):
.PP
.nf
.RS
Host server.example.org
    ProxyCommand spipe \-t %h:8022 \-k ~/.ssh/spiped.key
.RE
.fi
.PP
Against a \-d end still on spiped 1.x:
.PP
.nf
.RS
spipe \-\-protocol classic \-t '[203.0.113.5]:6379' \-k /etc/spiped/redis.key
.RE
.fi
.SH SEE ALSO
\fBspiped\fR(1), \fBssh_config\fR(5)
"#;
}
