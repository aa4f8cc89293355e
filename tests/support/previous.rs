//! The `spiped` of the previous protocol version, from before parked connections (issue 16), built by
//! scripts/build-previous from a fixed commit, and started through the same harness as the current one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::SpipedCmd;

/// The previous version's binary, built on first use (once per test binary; a few minutes when cold).
///
/// # Panics
/// When the build fails, with the script's output: a test that needs the older binary never skips. Or
/// when the binary built knows `--pool`, so is not from before parked connections.
pub fn previous_spiped() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    // Kept as a Result, so that a failed build fails every test with its output, and runs once.
    let built = BUILT.get_or_init(build).as_ref();
    built.unwrap_or_else(|failure| panic!("{failure}"))
}

/// [`SpipedCmd`] for the previous version's binary instead of the current one.
pub fn previous_cmd(dir: &Path, name: &str) -> SpipedCmd {
    SpipedCmd::new(dir, name).program(previous_spiped())
}

/// Runs scripts/build-previous and checks what it built.
fn build() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-previous");
    let out = Command::new(&script).output().map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} exited with {}; the previous version's binary is needed.\nstdout:\n{stdout}\nstderr:\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bin = PathBuf::from(stdout.trim());
    let help = Command::new(&bin).arg("--help").output().map_err(|e| format!("{}: {e}", bin.display()))?;
    let help = String::from_utf8_lossy(&help.stdout);
    if !help.contains("--protocol") || help.contains("--pool") {
        return Err(format!(
            "{} is not spiped from before parked connections (its --help should name --protocol and not \
             --pool):\n{help}",
            bin.display()
        ));
    }
    Ok(bin)
}
