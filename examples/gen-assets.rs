//! Generates the man page and shell completions from the same clap definitions as `--help`, so they
//! cannot drift: `cargo run --example gen-assets -- <dir>` writes `<dir>/spiped.1` and
//! `<dir>/completions/{spiped.bash,_spiped,spiped.fish}`. The packages are built from these.

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;
use spiped::cli::Args;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/assets".into()));
    std::fs::create_dir_all(dir.join("completions"))?;
    let cmd = Args::command().about("secure pipe daemon").long_about(LONG_ABOUT);

    let mut page = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone()).section("1").manual("spiped-rs");
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    page.extend_from_slice(EXTRA_SECTIONS.as_bytes());
    man.render_version_section(&mut page)?;
    std::fs::write(dir.join("spiped.1"), page)?;

    for (shell, name) in [(Shell::Bash, "spiped.bash"), (Shell::Zsh, "_spiped"), (Shell::Fish, "spiped.fish")]
    {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "spiped", &mut out);
        std::fs::write(dir.join("completions").join(name), out)?;
    }
    Ok(())
}

const LONG_ABOUT: &str = "spiped creates a secure pipe between a source socket and a target socket. In -e mode it \
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
const EXTRA_SECTIONS: &str = r#".SH SIGNALS
.TP
\fBSIGTERM\fR
Stop accepting connections, let live connections finish, then exit 0. A second SIGTERM exits at once.
.TP
\fBSIGINT\fR
As SIGTERM, when running in the foreground (\fB\-F\fR).
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
\fBspiped.conf\fR(5), \fBsystemctl\fR(1)
"#;
