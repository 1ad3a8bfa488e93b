//! [`EventWriter`]: one TensorBoard event file, appended record by record.
//!
//! The file is `events.out.tfevents.<secs>.<host>.<pid>.<n>` (the name TensorBoard
//! and PyTorch's writer use; `<n>` counts writers in this process), created
//! exclusively so two writers never share a file. Its first record is the
//! `file_version: "brain.Event:2"` header, which tells the reader to honour
//! `SessionLog` markers.
//!
//! Writes go to a buffer that is flushed to the OS when `flush_interval` has passed
//! since the last flush (checked at each write — the training loop writes every few
//! steps, so no background thread is needed), on [`EventWriter::flush`] and on drop.
//! [`EventWriter::sync`] also fsyncs the file (and, the first time, its directory)
//! so events up to a checkpoint survive a machine crash together with it.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::error::Error;
use crate::proto::event::What;
use crate::proto::{Event, SessionLog, SessionStatus, Summary, summary};
use crate::record::encode_record;

/// The header every event file starts with.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Writers opened by this process, the last part of the file name.
static WRITERS: AtomicU64 = AtomicU64::new(0);

/// Tunables of an [`EventWriter`].
#[derive(Debug, Clone, PartialEq)]
pub struct WriterOptions {
    /// Longest time events stay in the buffer while writes continue.
    pub flush_interval: Duration,
    /// Buffer size in bytes; a larger batch of events is written through.
    pub buffer_bytes: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(10),
            buffer_bytes: 256 * 1024,
        }
    }
}

/// Appends events to one event file.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    dir: PathBuf,
    file: BufWriter<File>,
    options: WriterOptions,
    last_flush: Instant,
    dir_synced: bool,
    scratch: Vec<u8>,
}

/// Seconds since the Unix epoch, as event files store them.
pub fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// This machine's host name (`localhost` if it cannot be read).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).replace(['/', '\\'], "_");
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// The event file name for a writer opened at `secs` by process `pid`.
pub fn event_file_name(secs: u64, host: &str, pid: u32, n: u64) -> String {
    format!("events.out.tfevents.{secs:010}.{host}.{pid}.{n}")
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it, headed by the
    /// `file_version` record (flushed at once, so readers see the file as valid).
    pub fn create(dir: &Path, options: WriterOptions) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            op: "create directory",
            path: dir.to_owned(),
            source,
        })?;
        let now = wall_time();
        let name = event_file_name(
            now as u64,
            &hostname(),
            std::process::id(),
            WRITERS.fetch_add(1, Ordering::Relaxed),
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| Error::Io {
                op: "create",
                path: path.clone(),
                source,
            })?;
        let mut writer = Self {
            path,
            dir: dir.to_owned(),
            file: BufWriter::with_capacity(options.buffer_bytes, file),
            options,
            last_flush: Instant::now(),
            dir_synced: false,
            scratch: Vec::new(),
        };
        writer.write_event(&Event {
            wall_time: now,
            step: 0,
            what: Some(What::FileVersion(FILE_VERSION.to_owned())),
        })?;
        writer.flush()?;
        Ok(writer)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event; flushes if the flush interval has passed.
    pub fn write_event(&mut self, event: &Event) -> Result<(), Error> {
        self.scratch.clear();
        encode_record(&event.encode_to_vec(), &mut self.scratch);
        self.file
            .write_all(&self.scratch)
            .map_err(|source| self.io("write", source))?;
        if self.last_flush.elapsed() >= self.options.flush_interval {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends a summary event holding `values` at `step`.
    pub fn write_summary(&mut self, step: u64, values: Vec<summary::Value>) -> Result<(), Error> {
        self.write_event(&Event {
            wall_time: wall_time(),
            step: step_i64(step),
            what: Some(What::Summary(Summary { value: values })),
        })
    }

    /// Writes a `SessionLog START` marker at `step`. TensorBoard then drops every
    /// event of this run written earlier with a step `>= step`: after a resume
    /// from a checkpoint at `step`, the steps the crashed attempt logged past it
    /// are replaced, not drawn twice.
    pub fn session_start(&mut self, step: u64) -> Result<(), Error> {
        self.write_event(&Event {
            wall_time: wall_time(),
            step: step_i64(step),
            what: Some(What::SessionLog(SessionLog {
                status: SessionStatus::Start as i32,
                checkpoint_path: String::new(),
                msg: format!("session starts at step {step}"),
            })),
        })
    }

    /// Hands buffered events to the OS (readers see them; a process crash keeps them).
    pub fn flush(&mut self) -> Result<(), Error> {
        self.file
            .flush()
            .map_err(|source| self.io("write", source))?;
        self.last_flush = Instant::now();
        Ok(())
    }

    /// Flushes and fsyncs the file (and once its directory), for checkpoints.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.flush()?;
        self.file
            .get_ref()
            .sync_data()
            .map_err(|source| self.io("sync", source))?;
        if !self.dir_synced {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| Error::Io {
                    op: "sync",
                    path: self.dir.clone(),
                    source,
                })?;
            self.dir_synced = true;
        }
        Ok(())
    }

    fn io(&self, op: &'static str, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: self.path.clone(),
            source,
        }
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!("TensorBoard events lost on close: {e}");
        }
    }
}

fn step_i64(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_has_tensorboards_shape() {
        assert_eq!(
            event_file_name(1_700_000_000, "node1", 42, 0),
            "events.out.tfevents.1700000000.node1.42.0"
        );
        assert!(!hostname().is_empty());
    }
}
