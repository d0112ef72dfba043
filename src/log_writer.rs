//! Log lines leave through a thread of their own.
//!
//! One event loop carries all of op-node's calls. Writing a log line on it means a system call
//! on the sequencer's critical path, and a consumer that stops reading (a full pipe, a stalled
//! container log driver or journald) would stop the loop, and with it the chain. So the loop only
//! queues each formatted line; a writer thread writes them, in order, batching bursts into one
//! write. A line that finds the queue full is dropped and counted
//! (`switchyard_log_lines_dropped_total`), never waited for. [`FlushGuard`] writes what is queued
//! when the daemon exits.

use std::{
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};

use tracing_subscriber::fmt::MakeWriter;

/// Lines that may wait for the writer thread: far more than a burst of warnings (they are rate
/// limited) or of per-block lines; a bounded queue, so a stalled consumer costs at most this.
pub const QUEUE_LINES: usize = 4_096;

/// How long exiting waits for queued lines to be written.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

enum Message {
    Line(Vec<u8>),
    Flush(mpsc::Sender<()>),
}

/// The [`MakeWriter`] for the daemon's subscriber: each event's writer queues its line.
#[derive(Clone, Debug)]
pub struct LogWriter {
    sender: mpsc::Sender<Message>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

/// Writes what is queued, then returns (waiting at most two seconds), when dropped.
#[derive(Debug)]
pub struct FlushGuard {
    sender: mpsc::Sender<Message>,
}

/// Starts the writer thread over `sink`, with room for `capacity` waiting lines.
///
/// # Errors
///
/// If the thread cannot be started.
pub fn spawn(
    sink: Box<dyn Write + Send>,
    capacity: usize,
) -> std::io::Result<(LogWriter, FlushGuard)> {
    let (sender, receiver) = mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let writer_queued = queued.clone();
    // Allocated here: the writer thread then allocates nothing of its own (no malloc arena).
    let out = std::io::BufWriter::with_capacity(16 * 1024, sink);
    std::thread::Builder::new()
        .name("switchyard-log".into())
        .spawn(move || write_lines(&receiver, &writer_queued, out))?;
    let guard = FlushGuard {
        sender: sender.clone(),
    };
    Ok((
        LogWriter {
            sender,
            queued,
            capacity,
        },
        guard,
    ))
}

fn write_lines(
    receiver: &mpsc::Receiver<Message>,
    queued: &AtomicUsize,
    mut out: std::io::BufWriter<Box<dyn Write + Send>>,
) {
    loop {
        // Whatever is waiting goes out in one write; the buffer is flushed once the queue is empty.
        let message = match receiver.try_recv() {
            Ok(message) => message,
            Err(mpsc::TryRecvError::Empty) => {
                let _ = out.flush();
                match receiver.recv() {
                    Ok(message) => message,
                    Err(_) => return,
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        };
        match message {
            Message::Line(line) => {
                queued.fetch_sub(1, Ordering::Relaxed);
                // Nowhere to report a failed log write; the next line tries again.
                let _ = out.write_all(&line);
            }
            Message::Flush(done) => {
                let _ = out.flush();
                let _ = done.send(());
            }
        }
    }
}

impl LogWriter {
    /// Lines waiting for the writer thread.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn send(&self, line: Vec<u8>) {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            crate::metrics::log_line_dropped();
            return;
        }
        if self.sender.send(Message::Line(line)).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One event's line, queued whole when the subscriber is done writing it.
#[derive(Debug)]
pub struct QueuedLine<'a> {
    line: Vec<u8>,
    writer: &'a LogWriter,
}

impl Write for QueuedLine<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for QueuedLine<'_> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.writer.send(std::mem::take(&mut self.line));
        }
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = QueuedLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        QueuedLine {
            line: Vec::with_capacity(256),
            writer: self,
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        let (done, written) = mpsc::channel();
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = written.recv_timeout(FLUSH_WAIT);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A sink that keeps what it is given; its first write waits until released, after telling
    /// that it has begun.
    struct Sink {
        kept: Arc<Mutex<Vec<u8>>>,
        first: Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>,
    }

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Some((began, release)) = self.first.take() {
                began.send(()).expect("test waits");
                release.recv().expect("test releases");
            }
            self.kept.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn line(writer: &LogWriter, text: &str) {
        let mut line = writer.make_writer();
        // As the formatter writes: in pieces.
        let (head, tail) = text.split_at(text.len() / 2);
        line.write_all(head.as_bytes()).expect("write");
        line.write_all(tail.as_bytes()).expect("write");
    }

    #[test]
    fn lines_arrive_whole_and_in_order_and_exit_writes_them_all() {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink {
            kept: kept.clone(),
            first: None,
        };
        let (writer, guard) = spawn(Box::new(sink), 1_000).expect("spawn");
        let expected: String = (0..500).map(|i| format!("line {i}\n")).collect();
        for i in 0..500 {
            line(&writer, &format!("line {i}\n"));
        }
        drop(guard);
        assert_eq!(
            String::from_utf8(kept.lock().expect("lock").clone()),
            Ok(expected)
        );
        assert_eq!(writer.queued(), 0);
    }

    #[test]
    fn a_stalled_sink_never_blocks_a_writer_and_costs_only_the_lines_past_the_queue() {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let (began, began_rx) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let sink = Sink {
            kept: kept.clone(),
            first: Some((began, release_rx)),
        };
        let (writer, guard) = spawn(Box::new(sink), 8).expect("spawn");
        line(&writer, "first\n");
        // The writer thread is now stuck in its first write, as on a pipe nobody reads.
        began_rx.recv().expect("the sink began");
        for i in 0..20 {
            line(&writer, &format!("{i}\n"));
        }
        assert_eq!(writer.queued(), 8, "the queue holds its capacity, no more");
        release.send(()).expect("release");
        drop(guard);
        let kept = String::from_utf8(kept.lock().expect("lock").clone()).expect("utf-8");
        let expected: String = std::iter::once("first\n".to_owned())
            .chain((0..8).map(|i| format!("{i}\n")))
            .collect();
        assert_eq!(
            kept, expected,
            "the queued lines, in order; the rest dropped"
        );
    }
}
