//! A directory of cache files bounded in total size (the TTS cache, the flow host's compiled
//! components): past the budget the least recently used files are deleted. "Used" is the
//! file's modification time, which a cache hit refreshes with [`touch`], so no index has to be
//! kept and a restart loses nothing.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What [`trim`] found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// Cache files left.
    pub files: usize,
    /// Their total size, bytes.
    pub bytes: u64,
    /// Files deleted.
    pub removed: usize,
}

/// Marks `path` as just used (its modification time becomes now). Errors are ignored: the
/// worst outcome is that the file is evicted sooner.
pub fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Deletes the least recently used files of `dir` until the rest take at most `max_bytes`.
/// Only cache files count: names starting with `.` and ending in `.tmp` or `.partial` are
/// writes in progress and are left alone. A missing directory is empty.
pub fn trim(dir: &Path, max_bytes: u64) -> io::Result<Trimmed> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Trimmed::default()),
        Err(error) => return Err(error),
    };
    let mut files: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".partial") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            files.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len(), entry.path()));
        }
    }
    let mut bytes: u64 = files.iter().map(|(_, len, _)| len).sum();
    let mut removed = 0;
    // Oldest first (ties by name, so the order is stable).
    files.sort();
    let mut left = files.len();
    for (_, len, path) in &files {
        if bytes <= max_bytes {
            break;
        }
        match std::fs::remove_file(path) {
            Ok(()) => {
                bytes -= len;
                removed += 1;
                left -= 1;
            }
            // Deleted by someone else meanwhile: it no longer counts either.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                bytes -= len;
                left -= 1;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(Trimmed { files: left, bytes, removed })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn aged(dir: &Path, name: &str, len: usize, age_s: u64) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, vec![0u8; len]).unwrap();
        let file = std::fs::File::options().append(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(age_s)).unwrap();
        path
    }

    #[test]
    fn deletes_the_least_recently_used_files_until_under_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let oldest = aged(dir.path(), "a.wav", 400, 300);
        let used = aged(dir.path(), "b.wav", 400, 200);
        let newest = aged(dir.path(), "c.wav", 400, 100);
        let writing = aged(dir.path(), ".d.wav.1.tmp", 4000, 400);
        touch(&used); // b is now the most recently used
        let trimmed = trim(dir.path(), 900).unwrap();
        assert_eq!(trimmed, Trimmed { files: 2, bytes: 800, removed: 1 });
        assert!(!oldest.exists() && used.exists() && newest.exists() && writing.exists());
        let trimmed = trim(dir.path(), 500).unwrap();
        assert_eq!(trimmed, Trimmed { files: 1, bytes: 400, removed: 1 });
        assert!(used.exists() && !newest.exists());
        assert_eq!(trim(&dir.path().join("missing"), 0).unwrap(), Trimmed::default());
    }
}
