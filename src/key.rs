//! The key file: read once at start, hashed into the protocol's [`Psk`], never kept, logged or printed.

use std::io::Read;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::proto::Psk;

/// Fewest bytes a key file should hold: 256 random bits, what `dd if=/dev/urandom bs=32 count=1` makes
/// and what SHA-256 can carry. Shorter files are accepted, as classic spiped accepts any key file and
/// sites that migrate from it may have short ones, but with a warning: a short key file is often a
/// word or a phrase, and anyone who records a handshake can test guesses against it offline.
pub const STRONG_KEY_FILE_LEN: usize = 32;

/// Largest key file read; spiped keys are 32 bytes, so this only stops a wrong path (a disk image,
/// /dev/zero) from being read forever.
pub const MAX_KEY_FILE_LEN: u64 = 1 << 20;

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file (or standard input) could not be read.
    #[error("cannot read key file {path}: {source}")]
    Read {
        /// The path given with -k.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The key file is empty: no secret at all (often a file truncated by mistake).
    #[error(
        "key file {path} is empty; a key should be {STRONG_KEY_FILE_LEN} random bytes. \
         Make one with: dd if=/dev/urandom bs=32 count=1 of=<key file>"
    )]
    Empty {
        /// The path given with -k.
        path: PathBuf,
    },
    /// The file is unreasonably large: probably not a key file.
    #[error("key file {path} is larger than {MAX_KEY_FILE_LEN} bytes; is it the right file?")]
    TooLong {
        /// The path given with -k.
        path: PathBuf,
    },
}

/// A loaded key and what the operator should hear about it.
#[derive(Debug)]
pub struct LoadedKey {
    /// K = SHA-256(key file).
    pub psk: Psk,
    /// Set when the key file is readable by its group or by others.
    pub too_open: Option<u32>,
    /// The key file's length when it is shorter than [`STRONG_KEY_FILE_LEN`], so that start-up warns.
    pub short: Option<usize>,
}

impl LoadedKey {
    /// What start-up should say about the key file at `path`, one line each: that it is readable by
    /// others, that it is short.
    pub fn warnings(&self, path: &Path) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(mode) = self.too_open {
            lines.push(format!(
                "key file {} is readable by others (mode {mode:o}); chmod 600 it",
                path.display()
            ));
        }
        if let Some(len) = self.short {
            lines.push(short_key_warning(path, len));
        }
        lines
    }
}

/// Why a key file of `len` bytes (fewer than [`STRONG_KEY_FILE_LEN`]) is weak, and where the way out
/// is written.
fn short_key_warning(path: &Path, len: usize) -> String {
    format!(
        "key file {} holds only {len} byte{}, fewer than the {STRONG_KEY_FILE_LEN} random bytes a key \
         should have: if it can be guessed, anyone who records the traffic can try keys offline until one \
         fits. Make a new one (dd if=/dev/urandom bs=32 count=1) and rotate to it: see \"Short keys\" in \
         docs/migrating.md",
        path.display(),
        if len == 1 { "" } else { "s" },
    )
}

/// Reads the key from `path`, or from standard input when `path` is `-`.
///
/// # Errors
/// [`KeyError`] when it cannot be read, is empty, or is larger than [`MAX_KEY_FILE_LEN`].
pub fn load(path: &Path) -> Result<LoadedKey, KeyError> {
    let read_err = |source| KeyError::Read { path: path.to_path_buf(), source };
    let mut contents = Zeroizing::new(Vec::with_capacity(64));
    let too_open = if path == Path::new("-") {
        std::io::stdin().lock().take(MAX_KEY_FILE_LEN + 1).read_to_end(&mut contents).map_err(read_err)?;
        None
    } else {
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mode = permissions(&file).map_err(read_err)?;
        file.take(MAX_KEY_FILE_LEN + 1).read_to_end(&mut contents).map_err(read_err)?;
        (mode & 0o077 != 0).then_some(mode & 0o777)
    };
    if contents.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(KeyError::TooLong { path: path.to_path_buf() });
    }
    if contents.is_empty() {
        return Err(KeyError::Empty { path: path.to_path_buf() });
    }
    let short = (contents.len() < STRONG_KEY_FILE_LEN).then_some(contents.len());
    Ok(LoadedKey { psk: Psk::from_key_file(&contents), too_open, short })
}

#[cfg(unix)]
fn permissions(file: &std::fs::File) -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    Ok(file.metadata()?.mode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key_file(name: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("spiped-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_private_key_file_loads_as_its_sha256() {
        let path = key_file("good", &[7; 32], 0o600);
        let key = load(&path).unwrap();
        assert_eq!(key.psk, Psk::from_key_file(&[7; 32]));
        assert_eq!(key.too_open, None);
        assert_eq!(key.short, None);
    }

    #[test]
    fn a_group_readable_key_file_loads_with_a_warning() {
        let path = key_file("open", &[7; 40], 0o644);
        assert_eq!(load(&path).unwrap().too_open, Some(0o644));
    }

    /// Classic spiped accepts any key file, so sites migrating from it may have short ones.
    #[test]
    fn a_short_key_loads_as_its_sha256_and_is_flagged() {
        for len in [1, 5, 31] {
            let path = key_file(&format!("short-{len}"), &vec![7; len], 0o600);
            let key = load(&path).unwrap_or_else(|e| panic!("{len} bytes: {e}"));
            assert_eq!(key.psk, Psk::from_key_file(&vec![7; len]), "{len} bytes");
            assert_eq!(key.short, Some(len));
        }
        assert_eq!(load(&key_file("just-long-enough", &[7; 32], 0o600)).unwrap().short, None);
    }

    #[test]
    fn an_empty_key_is_refused_with_the_way_to_make_one() {
        let path = key_file("empty", &[], 0o600);
        let err = load(&path).unwrap_err();
        assert!(matches!(err, KeyError::Empty { .. }), "{err:?}");
        assert!(err.to_string().contains("is empty"), "{err}");
        assert!(err.to_string().contains("dd if=/dev/urandom bs=32 count=1"), "{err}");
    }

    #[test]
    fn a_key_file_over_the_limit_is_refused() {
        let path = key_file("huge", &vec![7; MAX_KEY_FILE_LEN as usize + 1], 0o600);
        assert!(matches!(load(&path), Err(KeyError::TooLong { .. })));
        assert!(load(&key_file("largest", &vec![7; MAX_KEY_FILE_LEN as usize], 0o600)).is_ok());
    }

    #[test]
    fn a_missing_key_file_names_the_path() {
        let err = load(Path::new("/nonexistent/spiped.key")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/spiped.key"), "{err}");
    }

    #[test]
    fn errors_and_debug_output_never_show_key_bytes() {
        let path = key_file("secret", b"0123456789abcdef0123456789abcdef", 0o600);
        let shown = format!("{:?}", load(&path).unwrap());
        assert!(!shown.contains("0123456789"), "{shown}");
    }

    #[test]
    fn the_short_key_warning_says_why_and_where_to_read_on() {
        let warning = short_key_warning(Path::new("/etc/spiped/k.key"), 5);
        assert!(warning.starts_with("key file /etc/spiped/k.key holds only 5 bytes"), "{warning}");
        assert!(warning.contains("try keys offline"), "{warning}");
        assert!(warning.contains("docs/migrating.md"), "{warning}");
        assert!(short_key_warning(Path::new("k"), 1).contains("only 1 byte,"));
    }
}
