//! Rank 0's console progress: an indicatif bar on a terminal, otherwise one JSON
//! object per logging interval (what cluster log collectors parse), or plain text.
//!
//! Under `vigil launch` a worker's stdout is a pipe and the launcher owns the console:
//! it sets [`UNDER_LAUNCHER`], and the worker then always prints the machine-readable
//! records (whatever `logging.format` says), which the launcher turns into its own bar,
//! plain lines or JSON lines as `logging.format` and its terminal decide. Besides the
//! training records (`"event":"train"`, keys stable for log parsers), a worker under a
//! launcher reports the progress of evaluation (`"event":"eval"`) and of the feature-cache
//! build (`"event":"feature_cache"`) through a throttled [`Ticker`]; run alone on a
//! terminal, those show as bars of their own beside the training bar.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use vigil_collective::progress::{EvalProgress, FeatureCacheProgress, ProgressRecord};

use vigil_config::LogFormat;

/// Set to `1` by `vigil launch` in every worker's environment: the launcher renders the
/// console, so rank 0 prints JSON progress records on stdout.
pub const UNDER_LAUNCHER: &str = vigil_collective::group::env::var::PROGRESS_JSON;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A redrawn progress bar (stdout is a terminal).
    Bar,
    /// One human-readable line per interval.
    Text,
    /// One JSON object per interval.
    Json,
}

impl ProgressMode {
    /// Resolves `logging.format` against where stdout goes; a worker under a launcher
    /// always prints JSON (the launcher applies `logging.format` to its own console).
    pub fn resolve(format: LogFormat, stdout_tty: bool, under_launcher: bool) -> Self {
        match format {
            _ if under_launcher => Self::Json,
            LogFormat::Text => Self::Text,
            LogFormat::Json => Self::Json,
            LogFormat::Auto if stdout_tty => Self::Bar,
            LogFormat::Auto => Self::Json,
        }
    }

    /// [`ProgressMode::resolve`] for this process.
    pub fn detect(format: LogFormat) -> Self {
        Self::resolve(format, std::io::stdout().is_terminal(), under_launcher())
    }
}

/// Whether `vigil launch` renders this worker's console ([`UNDER_LAUNCHER`]).
fn under_launcher() -> bool {
    std::env::var(UNDER_LAUNCHER).is_ok_and(|v| v == "1")
}

/// The bars of this process, so the training bar and an evaluation bar share the terminal.
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
}

/// The progress display of rank 0.
pub struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts the display at `start_step` of `total_steps`.
    pub fn new(mode: ProgressMode, start_step: u64, total_steps: u64) -> Self {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = bars().add(ProgressBar::new(total_steps));
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
                )
                .expect("a valid template"),
            );
            bar.set_position(start_step);
            bar
        });
        Self { mode, bar }
    }

    /// Shows one interval.
    pub fn update(&self, r: &ProgressRecord) {
        match (&self.bar, self.mode) {
            (Some(bar), _) => {
                bar.set_position(r.step);
                bar.set_message(format!(
                    "epoch {} loss {:.4} lr {:.2e} {:.1} samples/s",
                    r.epoch, r.loss, r.lr, r.samples_per_sec
                ));
            }
            (None, ProgressMode::Json) => {
                println!("{}", serde_json::to_string(r).expect("a record serializes"));
            }
            (None, _) => println!(
                "step {}/{} epoch {} loss {:.4} lr {:.2e} grad_norm {:.3} {:.1} samples/s eta {:.0}s",
                r.step,
                r.total_steps,
                r.epoch,
                r.loss,
                r.lr,
                r.grad_norm,
                r.samples_per_sec,
                r.eta_s
            ),
        }
    }

    /// Prints a line without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    /// Ends the display.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// Shortest gap between two records of one [`Ticker`] (the last one always goes out).
const TICK_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
enum TickKind {
    Eval,
    FeatureCache {
        split: &'static str,
        tower: &'static str,
    },
}

/// Rows-done progress of a phase other than training (evaluation, the feature-cache
/// build), at most about twice a second: JSON records under a launcher, a bar of its own
/// on a terminal, nothing otherwise or on ranks other than 0.
pub struct Ticker {
    kind: TickKind,
    total: u64,
    json: bool,
    bar: Option<ProgressBar>,
    last: Option<Instant>,
}

impl Ticker {
    /// Evaluation of `total` rows of this rank's shard.
    pub fn eval(format: LogFormat, rank: usize, total: usize) -> Self {
        Self::new(TickKind::Eval, format, rank, total)
    }

    /// The feature-cache build of `split`/`tower`, `total` rows on this rank.
    pub fn feature_cache(
        format: LogFormat,
        rank: usize,
        split: &'static str,
        tower: &'static str,
        total: usize,
    ) -> Self {
        Self::new(TickKind::FeatureCache { split, tower }, format, rank, total)
    }

    fn new(kind: TickKind, format: LogFormat, rank: usize, total: usize) -> Self {
        let mode = (rank == 0).then(|| ProgressMode::detect(format));
        let json = mode == Some(ProgressMode::Json) && under_launcher();
        let bar = (mode == Some(ProgressMode::Bar)).then(|| {
            let bar = bars().add(ProgressBar::new(total as u64));
            bar.set_style(
                ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} rows  [{eta}]")
                    .expect("a valid template"),
            );
            bar.set_message(match kind {
                TickKind::Eval => "evaluating".to_string(),
                TickKind::FeatureCache { split, tower } => {
                    format!("feature cache {split}/{tower}")
                }
            });
            bar
        });
        let mut ticker = Self {
            kind,
            total: total as u64,
            json,
            bar,
            last: None,
        };
        // The phase shows from its start, not from its first finished chunk.
        ticker.update(0);
        ticker
    }

    /// `done` rows are finished.
    pub fn update(&mut self, done: usize) {
        let done = done as u64;
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
        if !self.json {
            return;
        }
        let now = Instant::now();
        let due = self.last.is_none_or(|t| now - t >= TICK_EVERY) || done >= self.total;
        if !due {
            return;
        }
        self.last = Some(now);
        let line = match self.kind {
            TickKind::Eval => serde_json::to_string(&EvalProgress {
                event: "eval",
                done,
                total: self.total,
            }),
            TickKind::FeatureCache { split, tower } => {
                serde_json::to_string(&FeatureCacheProgress {
                    event: "feature_cache",
                    split,
                    tower,
                    done,
                    total: self.total,
                })
            }
        };
        println!("{}", line.expect("a record serializes"));
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            bars().remove(bar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_under_the_launcher_always_prints_json() {
        for format in [LogFormat::Auto, LogFormat::Text, LogFormat::Json] {
            for tty in [false, true] {
                assert_eq!(ProgressMode::resolve(format, tty, true), ProgressMode::Json);
            }
        }
        assert_eq!(
            ProgressMode::resolve(LogFormat::Text, false, false),
            ProgressMode::Text
        );
    }

    #[test]
    fn records_keep_their_keys() {
        let e = serde_json::to_value(EvalProgress {
            event: "eval",
            done: 3,
            total: 9,
        })
        .unwrap();
        assert_eq!(
            e,
            serde_json::json!({"event": "eval", "done": 3, "total": 9})
        );
        let f = serde_json::to_value(FeatureCacheProgress {
            event: "feature_cache",
            split: "train",
            tower: "image",
            done: 0,
            total: 4,
        })
        .unwrap();
        assert_eq!(
            f,
            serde_json::json!({"event": "feature_cache", "split": "train",
                               "tower": "image", "done": 0, "total": 4})
        );
    }

    #[test]
    fn auto_is_a_bar_on_a_terminal_and_json_in_pipes() {
        assert_eq!(
            ProgressMode::resolve(LogFormat::Auto, true, false),
            ProgressMode::Bar
        );
        assert_eq!(
            ProgressMode::resolve(LogFormat::Auto, false, false),
            ProgressMode::Json
        );
        assert_eq!(
            ProgressMode::resolve(LogFormat::Json, true, false),
            ProgressMode::Json
        );
    }
}
