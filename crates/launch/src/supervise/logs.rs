//! Worker output: every line goes to `<output_dir>/logs/rank-N.log` (appended across
//! restarts, each generation opened by a marker line), to the [`Console`] when that rank
//! is echoed (which prefixes it with `[rank N]`, or turns rank 0's progress records into a
//! bar), and into a small in-memory tail that the failure summary quotes.
//!
//! One thread per stream pumps whole lines, so a line from one rank is never cut by a line
//! from another on the console. The pumps end at end-of-file, which comes when the last
//! process holding the pipe dies; the launcher waits for them with a bound and moves on.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::console::{Console, Stream};

/// Lines kept for the failure summary.
pub const TAIL_LINES: usize = 20;

/// Where a pumped stream is echoed: the console, as `rank`'s `stream`.
#[derive(Clone, Debug)]
pub struct Echo {
    /// The launcher's console.
    pub console: Arc<Console>,
    /// The worker's global rank.
    pub rank: u32,
    /// Which of its streams this is.
    pub stream: Stream,
}

/// One rank's log file and tail, shared by its stdout and stderr pumps.
#[derive(Clone)]
pub struct RankLog {
    path: PathBuf,
    file: Arc<Mutex<File>>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

/// The log file of a global rank.
pub fn log_path(output_dir: &Path, rank: u32) -> PathBuf {
    output_dir.join("logs").join(format!("rank-{rank}.log"))
}

impl RankLog {
    /// Opens (appending) the log of `rank`, creating `<output_dir>/logs/`.
    pub fn open(output_dir: &Path, rank: u32) -> std::io::Result<Self> {
        let path = log_path(output_dir, rank);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Self {
            path,
            file: Arc::new(Mutex::new(file)),
            tail: Arc::new(Mutex::new(VecDeque::new())),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a launcher line (`==== vigil: ... ====`) to the file only.
    pub fn marker(&self, text: &str) {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(f, "==== vigil: {text} ====");
    }

    /// The last lines the worker wrote in this generation.
    pub fn tail(&self) -> Vec<String> {
        let t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        t.iter().cloned().collect()
    }

    /// Starts a thread copying `reader` line by line to the file, the tail and `echo`
    /// (`None` when this rank is not echoed).
    pub fn pump(
        &self,
        reader: impl Read + Send + 'static,
        echo: Option<Echo>,
    ) -> std::io::Result<JoinHandle<()>> {
        let this = self.clone();
        std::thread::Builder::new()
            .name("vigil-log".into())
            .spawn(move || this.copy(reader, echo))
    }

    fn copy(&self, reader: impl Read, echo: Option<Echo>) {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            let line = String::from_utf8_lossy(&buf);
            {
                let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
                let _ = f.write_all(&buf);
                let _ = f.write_all(b"\n");
            }
            if let Some(e) = &echo {
                e.console.line(e.rank, e.stream, &line);
            }
            let mut t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line.into_owned());
        }
    }
}

/// Waits for pump threads until `limit`; threads still running (a grandchild kept the
/// pipe open) are left detached rather than holding the launcher.
pub fn join_bounded(handles: Vec<JoinHandle<()>>, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut left = 0;
    for h in handles {
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            left += 1;
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_file_and_tail_across_generations() {
        let dir = tempfile::tempdir().unwrap();
        let log = RankLog::open(dir.path(), 3).unwrap();
        log.marker("restart 0");
        let data: Vec<u8> = (0..30)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let h = log.pump(std::io::Cursor::new(data), None).unwrap();
        assert_eq!(join_bounded(vec![h], Duration::from_secs(5)), 0);
        let tail = log.tail();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.last().unwrap(), "line 29");
        let again = RankLog::open(dir.path(), 3).unwrap();
        again.marker("restart 1");
        let text = std::fs::read_to_string(log_path(dir.path(), 3)).unwrap();
        assert!(
            text.starts_with("==== vigil: restart 0 ====\nline 0\n"),
            "{text}"
        );
        assert!(
            text.ends_with("line 29\n==== vigil: restart 1 ====\n"),
            "{text}"
        );
    }
}
