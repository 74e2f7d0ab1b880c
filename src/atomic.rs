//! Atomic file writing, for every file nof1 writes (models, assessments,
//! reports): the bytes go to a temporary file beside the target, which is
//! synced and renamed over the target only when everything was written, so a
//! failed run never leaves a partial file. An existing special file
//! (`/dev/null`, a FIFO, `/dev/stdout`) is written in place, never replaced.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file being written atomically: [`AtomicFile::commit`] moves it into
/// place; dropping it uncommitted removes the temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<std::fs::File>,
    /// The temporary file, `None` for a special file written in place.
    tmp: Option<PathBuf>,
    target: PathBuf,
}

impl AtomicFile {
    /// Starts writing `path`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Io`] naming `path` when it is a directory or its
    /// directory does not accept a new file.
    pub fn create(path: &Path) -> Result<AtomicFile> {
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            return Ok(AtomicFile {
                file: Some(file),
                tmp: None,
                target: path.to_path_buf(),
            });
        }
        if path.is_dir() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "is a directory"),
            ));
        }
        let tmp = temp_path(path);
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(path, e))?;
        Ok(AtomicFile {
            file: Some(file),
            tmp: Some(tmp),
            target: path.to_path_buf(),
        })
    }

    /// The target path.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Syncs the temporary file and renames it over the target (a special
    /// file is only flushed).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Io`] naming the target; the temporary file is
    /// removed and the target left untouched.
    pub fn commit(mut self) -> Result<()> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        let result = match self.tmp.take() {
            None => file.flush(),
            Some(tmp) => {
                let r = file
                    .sync_all()
                    .and_then(|_| std::fs::rename(&tmp, &self.target));
                if r.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                r
            }
        };
        result.map_err(|e| Error::io(&self.target, e))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.file.as_mut() {
            Some(f) => f.write(buf),
            None => Err(std::io::Error::other("the file was committed")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            self.file = None;
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// The temporary file an atomic write of `path` goes through before it is
/// renamed into place: `.NAME.tmp-PID` in the same directory, where `PID` is
/// this process's id. A process killed mid-write leaves at most this file,
/// never a partial `path`; a caller that catches signals removes it (the
/// CLI does), and a later run may remove those of processes that no longer
/// exist.
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    dir.join(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically (see the module documentation).
///
/// # Errors
/// [`crate::ErrorKind::Io`] naming `path`; on error `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_and_drop_leaves_the_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_atomic(&path, b"first").unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"second").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomic(&path, b"third").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"third");
        let e = write_atomic(dir.path(), b"x").unwrap_err();
        assert!(matches!(e.kind(), crate::ErrorKind::Io { .. }), "{e}");
    }
}
