//! `--log-file`: log lines also appended to a file, reopened on SIGHUP so that logrotate can move
//! the file away and have switchyard start a new one.
//!
//! The file is one more sink of the log thread (see [`crate::log_writer`]): the event loop never
//! touches it. A reopen is asked for with [`Reopen::request`] and done by the log thread before
//! its next line, so no line is split between the old file and the new one.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

/// A file opened for appending that reopens its path when asked.
#[derive(Debug)]
pub struct AppendFile {
    path: PathBuf,
    file: File,
    reopen: Arc<AtomicBool>,
}

/// Asks an [`AppendFile`] to reopen its path before its next write.
#[derive(Clone, Debug)]
pub struct Reopen(Arc<AtomicBool>);

impl Reopen {
    /// The next line goes to a file opened anew at the same path.
    pub fn request(&self) {
        self.0.store(true, Ordering::Release);
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Opens `path` for appending (creating it).
///
/// # Errors
///
/// If it cannot be opened.
pub fn open(path: &Path) -> std::io::Result<(AppendFile, Reopen)> {
    let reopen = Arc::new(AtomicBool::new(false));
    let file = AppendFile {
        path: path.to_owned(),
        file: append(path)?,
        reopen: reopen.clone(),
    };
    Ok((file, Reopen(reopen)))
}

impl Write for AppendFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.reopen.swap(false, Ordering::AcqRel) {
            // If the new file cannot be made, lines keep going to the old one rather than nowhere;
            // the next SIGHUP tries again.
            if let Ok(file) = append(&self.path) {
                self.file = file;
            }
        }
        self.file.write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Writes every line to the file, then to the console: a failure of one never stops the other.
#[derive(Debug)]
pub struct Tee<A, B> {
    file: A,
    console: B,
}

impl<A, B> Tee<A, B> {
    /// Both sinks, the file first.
    pub fn new(file: A, console: B) -> Self {
        Self { file, console }
    }
}

impl<A: Write, B: Write> Write for Tee<A, B> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let to_file = self.file.write_all(bytes);
        let to_console = self.console.write_all(bytes);
        to_file.and(to_console).map(|()| bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let file = self.file.flush();
        let console = self.console.flush();
        file.and(console)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopen_moves_the_next_line_to_a_new_file_at_the_same_path() {
        let dir = std::env::temp_dir().join(format!("switchyard-logfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("switchyard.log");
        let (mut file, reopen) = open(&path).expect("open");
        file.write_all(b"before\n").expect("write");
        std::fs::rename(&path, dir.join("switchyard.log.1")).expect("rotate");
        file.write_all(b"still old\n").expect("write");
        reopen.request();
        file.write_all(b"after\n").expect("write");
        assert_eq!(
            std::fs::read_to_string(dir.join("switchyard.log.1")).expect("read"),
            "before\nstill old\n"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "after\n");
    }
}
