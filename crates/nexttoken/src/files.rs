//! Reading a model directory's files: regular files only (after following symlinks), so that a
//! FIFO or a device named `config.json` is refused instead of blocking the load forever, and
//! read rather than mapped, so that a file truncated by another process while it loads is a
//! short read (an error), never a SIGBUS that kills the process.

use std::io::ErrorKind;
use std::path::Path;

use crate::error::{Error, Result};

/// Fails unless `path` is a regular file (after following symlinks); `what` names it.
pub fn check_regular(path: &Path, what: &str) -> Result<()> {
    let metadata = std::fs::metadata(path).map_err(|err| match err.kind() {
        ErrorKind::NotFound => Error::missing_file(path.to_path_buf(), what),
        _ => Error::invalid_file(path, err),
    })?;
    match metadata.is_file() {
        true => Ok(()),
        false => Err(Error::invalid_file(path, format!("{what} is not a regular file"))),
    }
}

/// Whether anything is at `path`, including what `Path::exists` calls absent (a symlink loop, a
/// dangling symlink): `check_regular` then refuses it as what it is instead of the loader moving
/// on to another kind of file and reporting the wrong one.
pub fn present(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// The bytes of `path`, which must be a regular file; `what` names it in messages.
pub fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    check_regular(path, what)?;
    std::fs::read(path).map_err(|err| Error::invalid_file(path, err))
}

/// Opens `path`, which must be a regular file, for reads at offsets (`read_at`).
pub fn open(path: &Path, what: &str) -> Result<std::fs::File> {
    check_regular(path, what)?;
    std::fs::File::open(path).map_err(|err| Error::invalid_file(path, err))
}

/// Fills `buf` from `file` at `offset`. A file that ends early (truncated, even while it is
/// read) is an `UnexpectedEof` error.
pub fn read_at(file: &std::fs::File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let (mut done, mut offset) = (0, offset);
        while done < buf.len() {
            match std::os::windows::fs::FileExt::seek_read(file, &mut buf[done..], offset)? {
                0 => return Err(ErrorKind::UnexpectedEof.into()),
                read => (done, offset) = (done + read, offset + read as u64),
            }
        }
        Ok(())
    }
}

/// Where a checkpoint's bytes are read from: its open file, or (for fuzzing and tests) its
/// contents in memory, through the same reads at offsets.
pub enum Source {
    File(std::fs::File),
    Bytes(Vec<u8>),
}

impl Source {
    /// Its length in bytes.
    pub fn size(&self) -> std::io::Result<u64> {
        match self {
            Source::File(file) => Ok(file.metadata()?.len()),
            Source::Bytes(bytes) => Ok(bytes.len() as u64),
        }
    }

    /// Fills `buf` from `offset`; past the end is an `UnexpectedEof` error.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        match self {
            Source::File(file) => read_at(file, offset, buf),
            Source::Bytes(bytes) => {
                let range =
                    usize::try_from(offset).ok().and_then(|start| Some(start..start.checked_add(buf.len())?));
                match range.and_then(|range| bytes.get(range)) {
                    Some(part) => {
                        buf.copy_from_slice(part);
                        Ok(())
                    }
                    None => Err(ErrorKind::UnexpectedEof.into()),
                }
            }
        }
    }
}

/// `read`, as UTF-8 text.
pub fn read_text(path: &Path, what: &str) -> Result<String> {
    String::from_utf8(read(path, what)?)
        .map_err(|_| Error::invalid_file(path, format!("{what} is not UTF-8 text")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let dir = std::env::temp_dir();
        assert_eq!(read(&dir, "config.json").unwrap_err().code(), "ERR_MODEL_INVALID");
        let missing = dir.join("nexttoken-no-such-file");
        assert_eq!(read(&missing, "config.json").unwrap_err().code(), "ERR_MODEL_NOT_FOUND");
        #[cfg(unix)]
        {
            let fifo = dir.join(format!("nexttoken-fifo-{}", std::process::id()));
            let made = std::process::Command::new("mkfifo").arg(&fifo).status().map(|s| s.success());
            if let Ok(true) = made {
                let err = read(&fifo, "config.json").unwrap_err();
                assert!(err.to_string().contains("not a regular file"), "{err}");
                std::fs::remove_file(&fifo).unwrap();
            }
        }
    }
}
