//! Key files: read (at start, and again at each reload), checked, hashed into the protocol's [`Psk`];
//! the file's contents are never kept, logged or printed. A key is named by its [`Fingerprint`]. The
//! set of keys an end holds is a [`KeySet`], and the one in force sits in a [`KeyRing`], swapped whole
//! at reload: each connection takes one snapshot and keeps it to its end.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use zeroize::Zeroizing;

use crate::proto::{Fingerprint, Psk};

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
    /// A new key file could not be created (it exists already, or its directory is not writable).
    #[error("cannot create key file {path}: {source}")]
    Create {
        /// The path given with --keygen.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The operating system's random source failed.
    #[error("cannot read the operating system's random source: {0}")]
    Random(String),
    /// An initiator (`-e`) was given several keys; it uses exactly one.
    #[error("an -e end uses one key, and the key files given hold {count}; several are for -d ends")]
    Several {
        /// How many keys the files held.
        count: usize,
    },
    /// A key directory holds no key file.
    #[error("key directory {path} holds no key file (names starting with '.' are skipped)")]
    EmptyDirectory {
        /// The directory given with -k.
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

/// The keys an end holds, in the order given: one on `-e`, one or more on `-d`, which accepts a peer
/// that proves any of them. Never empty.
pub struct KeySet {
    /// Each key's K, in order: what the handshakes take.
    psks: Vec<Psk>,
    /// Each key's fingerprint and file, in the same order: what logs and status lines show.
    names: Vec<(Fingerprint, PathBuf)>,
    /// Connections each key authenticated since it was loaded: during a rotation, whether anyone still
    /// uses the old key. Shared with the set a reload replaces, for the keys both hold, so a key's count
    /// runs on across reloads (a counter in `/metrics` that never goes back while the key stays).
    used: Vec<Arc<AtomicU64>>,
}

impl KeySet {
    /// Reads every key file in `paths` (at least one); a directory stands for the key files in it (see
    /// [`key_files`]). A file whose key is already in the set (the same file twice, or a copy) is left
    /// out. Returns the set and the warnings to log, one line each.
    ///
    /// # Errors
    /// The first key file that cannot be used ([`load`]); no set is made then.
    pub fn load(paths: &[PathBuf]) -> Result<(KeySet, Vec<String>), KeyError> {
        let mut set = KeySet { psks: Vec::new(), names: Vec::new(), used: Vec::new() };
        let mut warnings = Vec::new();
        let mut files = Vec::new();
        for path in paths {
            files.extend(key_files(path)?);
        }
        for path in &files {
            let loaded = load(path)?;
            warnings.extend(loaded.warnings(path));
            let fingerprint = loaded.psk.fingerprint();
            if let Some((_, first)) = set.names.iter().find(|(known, _)| *known == fingerprint) {
                warnings.push(format!(
                    "key file {} holds the same key as {} (fingerprint {fingerprint}); it is used once",
                    path.display(),
                    first.display()
                ));
                continue;
            }
            set.psks.push(loaded.psk);
            set.names.push((fingerprint, path.clone()));
            set.used.push(Arc::default());
        }
        assert!(!set.psks.is_empty(), "the command line requires at least one key file");
        Ok((set, warnings))
    }

    /// [`KeySet::load`] for an end: an initiator (`-e`) must end up with exactly one key, a responder
    /// with one or more. At start and at each reload alike.
    ///
    /// # Errors
    /// As [`KeySet::load`]; [`KeyError::Several`] for an initiator given several keys.
    pub fn load_for(paths: &[PathBuf], initiator: bool) -> Result<(KeySet, Vec<String>), KeyError> {
        let (set, warnings) = KeySet::load(paths)?;
        match set.len() {
            count if initiator && count > 1 => Err(KeyError::Several { count }),
            _ => Ok((set, warnings)),
        }
    }

    /// A set of one key with no file behind it: for tests, benchmarks and the demonstration.
    pub fn single(psk: Psk) -> KeySet {
        let name = (psk.fingerprint(), PathBuf::from("(given)"));
        KeySet { psks: vec![psk], names: vec![name], used: vec![Arc::default()] }
    }

    /// Every key's K, in order: a responder accepts any of them.
    pub fn psks(&self) -> &[Psk] {
        &self.psks
    }

    /// The first key: the one an initiator uses (it is given exactly one).
    pub fn first(&self) -> &Psk {
        &self.psks[0]
    }

    /// The fingerprint of the key at `index` in [`KeySet::psks`].
    ///
    /// # Panics
    /// When `index` is out of range: the index comes from a handshake given this set's keys.
    pub fn fingerprint(&self, index: usize) -> Fingerprint {
        self.names[index].0
    }

    /// Counts a connection whose peer proved the key at `index`.
    ///
    /// # Panics
    /// When `index` is out of range: the index comes from a handshake given this set's keys.
    pub fn note_used(&self, index: usize) {
        self.used[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Each key's fingerprint, in order, with the connections it authenticated since the set was loaded.
    pub fn usage(&self) -> impl Iterator<Item = (Fingerprint, u64)> + '_ {
        self.names
            .iter()
            .zip(&self.used)
            .map(|((fingerprint, _), used)| (*fingerprint, used.load(Ordering::Relaxed)))
    }

    /// The keys' fingerprints, in order.
    pub fn fingerprints(&self) -> impl Iterator<Item = Fingerprint> + '_ {
        self.names.iter().map(|(fingerprint, _)| *fingerprint)
    }

    /// The key files, in order, for reloading.
    pub fn paths(&self) -> impl Iterator<Item = &Path> + '_ {
        self.names.iter().map(|(_, path)| path.as_path())
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.psks.len()
    }

    /// Always false: a set holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.psks.is_empty()
    }
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The fingerprints and paths only: the keys themselves print as redacted anyway.
        f.debug_struct("KeySet").field("keys", &self.names).finish()
    }
}

/// The key set in force, replaced whole at reload. Connections take a snapshot when they start and
/// keep it, so a reload never changes the keys of a handshake under way.
#[derive(Debug)]
pub struct KeyRing(RwLock<Arc<KeySet>>);

impl KeyRing {
    /// A ring holding `set`.
    pub fn new(set: KeySet) -> Self {
        KeyRing(RwLock::new(Arc::new(set)))
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<KeySet> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Puts `set` in force for every connection that starts from now on. A key the set in force also
    /// holds keeps its count of connections, including those its handshakes under way still add.
    pub fn replace(&self, mut set: KeySet) {
        let mut current = self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (i, (fingerprint, _)) in set.names.iter().enumerate() {
            if let Some(j) = current.names.iter().position(|(old, _)| old == fingerprint) {
                set.used[i] = current.used[j].clone();
            }
        }
        *current = Arc::new(set);
    }
}

/// The key files `path` stands for: itself, or, for a directory, every regular file directly in it
/// whose name does not start with '.', in name order. A directory is listed anew at each reload, so a
/// key can be added or removed without changing the command line (the systemd units rely on this).
///
/// # Errors
/// [`KeyError::Read`] when the directory cannot be listed, [`KeyError::EmptyDirectory`] when it
/// holds no key file.
pub fn key_files(path: &Path) -> Result<Vec<PathBuf>, KeyError> {
    let read_err = |source| KeyError::Read { path: path.to_path_buf(), source };
    if path == Path::new("-") || !std::fs::metadata(path).map_err(read_err)?.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let hidden = entry.file_name().as_encoded_bytes().starts_with(b".");
        // Followed, as `-k` itself follows links: a key directory may link its files from elsewhere.
        let regular = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file());
        if !hidden && regular {
            files.push(entry.path());
        }
    }
    if files.is_empty() {
        return Err(KeyError::EmptyDirectory { path: path.to_path_buf() });
    }
    files.sort();
    Ok(files)
}

/// Bytes of a key file made by [`keygen`]: what [`STRONG_KEY_FILE_LEN`] asks for.
pub const NEW_KEY_LEN: usize = STRONG_KEY_FILE_LEN;

/// Writes a new key file at `path`: [`NEW_KEY_LEN`] bytes from the operating system's random source,
/// mode 0600 from the moment it exists. An existing file (or link) is never overwritten. Returns the
/// new key's fingerprint.
///
/// # Errors
/// [`KeyError::Create`] when the file exists or cannot be written (a partly written file is
/// removed); [`KeyError::Random`] when the random source fails.
pub fn keygen(path: &Path) -> Result<Fingerprint, KeyError> {
    use rand::TryRng;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut key = Zeroizing::new([0u8; NEW_KEY_LEN]);
    rand::rngs::SysRng.try_fill_bytes(&mut key[..]).map_err(|e| KeyError::Random(e.to_string()))?;
    let create_err = |source| KeyError::Create { path: path.to_path_buf(), source };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(create_err)?;
    if let Err(e) = file.write_all(&key[..]).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(create_err(e));
    }
    Ok(Psk::from_key_file(&key[..]).fingerprint())
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
    fn keygen_writes_32_private_bytes_once_and_names_them() {
        let dir = std::env::temp_dir().join(format!("spiped-keygen-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("new.key");
        let _ = std::fs::remove_file(&path);
        let fingerprint = keygen(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), NEW_KEY_LEN);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(Psk::from_key_file(&bytes).fingerprint(), fingerprint);
        assert!(matches!(keygen(&path), Err(KeyError::Create { .. })), "never overwrites");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "the first key is still there");
    }

    #[test]
    fn a_key_set_keeps_order_and_drops_a_repeated_key() {
        let a = key_file("set-a", &[1; 32], 0o600);
        let b = key_file("set-b", &[2; 32], 0o600);
        let (set, warnings) = KeySet::load(&[a.clone(), b.clone(), a.clone()]).unwrap();
        assert_eq!(set.psks(), [Psk::from_key_file(&[1; 32]), Psk::from_key_file(&[2; 32])]);
        assert_eq!(set.fingerprint(1), Psk::from_key_file(&[2; 32]).fingerprint());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("the same key"), "{warnings:?}");
        assert!(!format!("{set:?}").contains("[1, 1"), "Debug shows no key bytes");
    }

    #[test]
    fn a_key_directory_stands_for_its_visible_files_in_name_order() {
        let dir = std::env::temp_dir().join(format!("spiped-keydir-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for (name, byte) in [("b.key", 2u8), ("a.key", 1), (".hidden", 3)] {
            std::fs::write(dir.join(name), [byte; 32]).unwrap();
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(key_files(&dir).unwrap(), [dir.join("a.key"), dir.join("b.key")]);
        let (set, _) = KeySet::load(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(set.psks(), [Psk::from_key_file(&[1; 32]), Psk::from_key_file(&[2; 32])]);
        assert!(matches!(key_files(&dir.join("sub")), Err(KeyError::EmptyDirectory { .. })));
    }

    #[test]
    fn a_key_set_counts_the_connections_each_key_authenticated() {
        let a = key_file("count-a", &[1; 32], 0o600);
        let b = key_file("count-b", &[2; 32], 0o600);
        let (set, _) = KeySet::load(&[a, b]).unwrap();
        set.note_used(1);
        set.note_used(1);
        let used: Vec<u64> = set.usage().map(|(_, used)| used).collect();
        assert_eq!(used, [0, 2]);
        assert_eq!(
            set.usage().map(|(key, _)| key).collect::<Vec<_>>(),
            set.fingerprints().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_key_kept_across_a_reload_keeps_counting_even_from_handshakes_under_way() {
        let (a, b) = (key_file("carry-a", &[1; 32], 0o600), key_file("carry-b", &[2; 32], 0o600));
        let ring = KeyRing::new(KeySet::load(&[a.clone(), b.clone()]).unwrap().0);
        let before = ring.current();
        before.note_used(0);
        before.note_used(1);
        let c = key_file("carry-c", &[3; 32], 0o600);
        ring.replace(KeySet::load(&[c, b]).unwrap().0);
        // A handshake that took the old set before the reload finishes after it.
        before.note_used(1);
        let used: Vec<u64> = ring.current().usage().map(|(_, used)| used).collect();
        assert_eq!(used, [0, 2], "the new key starts at 0; the kept one runs on");
    }

    #[test]
    fn a_reload_changes_the_ring_not_a_snapshot_taken_before() {
        let ring = KeyRing::new(KeySet::single(Psk::from_key_file(b"old")));
        let before = ring.current();
        ring.replace(KeySet::single(Psk::from_key_file(b"new")));
        assert_eq!(before.first(), &Psk::from_key_file(b"old"));
        assert_eq!(ring.current().first(), &Psk::from_key_file(b"new"));
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
