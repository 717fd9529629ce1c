//! Crash-safe local file operations.
//!
//! The only way the engine makes a file appear under its final name is [`write_atomic`]: the
//! bytes go to a temporary file in the same directory, which is fsynced, renamed over the final
//! name, and then the directory itself is fsynced so that the rename survives a crash. At every
//! instant a reader sees either the old file (or none) or the complete new one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Suffix of temporary files. Anything ending in it is garbage after a crash and may be removed.
pub const TMP_SUFFIX: &str = ".tmp";

/// Fsyncs a directory so that entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dir/name` atomically and durably (see the module docs).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let dst = dir.join(name);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &dst)?;
    sync_dir(dir)
}

/// Removes `dir/name` if present and fsyncs the directory.
pub fn remove_durable(dir: &Path, name: &str) -> io::Result<()> {
    match fs::remove_file(dir.join(name)) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `dir` (and parents) and fsyncs its parent so the new entry is durable.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().expect("tempdir");
        write_atomic(d.path(), "a", b"one").expect("write");
        write_atomic(d.path(), "a", b"two!").expect("write");
        assert_eq!(fs::read(d.path().join("a")).expect("read"), b"two!");
        let names: Vec<_> = fs::read_dir(d.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a")]);
        remove_durable(d.path(), "a").expect("rm");
        remove_durable(d.path(), "a").expect("rm twice is fine");
        assert!(!d.path().join("a").exists());
    }
}
