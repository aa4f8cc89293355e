//! The key file: read once at start, hashed into the protocol's [`Psk`], never kept, logged or printed.

use std::io::Read;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::proto::Psk;

/// Fewest bytes a key file may hold: 256 bits, as spiped requires.
pub const MIN_KEY_FILE_LEN: usize = 32;

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
    /// The key is too short to be a secret.
    #[error(
        "key file {path} holds {len} bytes; at least {MIN_KEY_FILE_LEN} random bytes are needed. \
         Make one with: dd if=/dev/urandom bs=32 count=1 of=<key file>"
    )]
    TooShort {
        /// The path given with -k.
        path: PathBuf,
        /// How many bytes it held.
        len: usize,
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
}

/// Reads the key from `path`, or from standard input when `path` is `-`.
///
/// # Errors
/// [`KeyError`] when it cannot be read, or holds fewer than [`MIN_KEY_FILE_LEN`] bytes.
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
    if contents.len() < MIN_KEY_FILE_LEN {
        return Err(KeyError::TooShort { path: path.to_path_buf(), len: contents.len() });
    }
    Ok(LoadedKey { psk: Psk::from_key_file(&contents), too_open })
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
    }

    #[test]
    fn a_group_readable_key_file_loads_with_a_warning() {
        let path = key_file("open", &[7; 40], 0o644);
        assert_eq!(load(&path).unwrap().too_open, Some(0o644));
    }

    #[test]
    fn a_short_key_is_refused_with_the_way_to_make_one() {
        let path = key_file("short", &[7; 31], 0o600);
        let err = load(&path).unwrap_err();
        assert!(matches!(err, KeyError::TooShort { len: 31, .. }));
        assert!(err.to_string().contains("dd if=/dev/urandom bs=32 count=1"), "{err}");
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
}
