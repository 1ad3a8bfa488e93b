//! What one line of worker output becomes on the launcher's console (pure).
//!
//! Rank 0's stdout carries machine-readable progress records (`{"event":"train",...}`,
//! `"eval"`, `"feature_cache"`; see `vigil_collective::progress`). Depending on the
//! [`ConsoleMode`] a record becomes a bar update, a plain line, or is echoed as it came;
//! every other line is echoed with its `[rank N]` prefix (above the bar when there is one).

use serde::{Deserialize, Deserializer};
use vigil_config::LogFormat;

/// How the launcher shows worker output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleMode {
    /// One live bar drawn from rank 0's records; other lines print above it.
    Bar,
    /// Records as plain lines.
    Text,
    /// Every line as the worker wrote it (what log collectors and the tests parse).
    Json,
}

impl ConsoleMode {
    /// `logging.format` against whether the launcher's stdout is a terminal.
    pub fn resolve(format: LogFormat, stdout_tty: bool) -> Self {
        match format {
            LogFormat::Auto if stdout_tty => Self::Bar,
            LogFormat::Auto | LogFormat::Json => Self::Json,
            LogFormat::Text => Self::Text,
        }
    }
}

/// Which of a worker's streams a line came from (and goes to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A training record: the keys of `vigil_collective::progress::ProgressRecord` the console uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TrainProgress {
    /// Optimizer steps done.
    pub step: u64,
    /// Total optimizer steps of the run.
    pub total_steps: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Mean loss over the interval (NaN when the worker wrote `null`).
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    /// Encoder learning rate.
    #[serde(deserialize_with = "nan_if_null")]
    pub lr: f64,
    /// Gradient norm before clipping.
    #[serde(deserialize_with = "nan_if_null")]
    pub grad_norm: f64,
    /// Samples per second over all ranks.
    #[serde(deserialize_with = "nan_if_null")]
    pub samples_per_sec: f64,
    /// Estimated seconds to the end.
    #[serde(deserialize_with = "nan_if_null")]
    pub eta_s: f64,
}

/// A progress record of rank 0.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    /// A logging interval of training.
    Train(TrainProgress),
    /// Rows of rank 0's evaluation shard scored.
    Eval {
        /// Done.
        done: u64,
        /// Of.
        total: u64,
    },
    /// Rows of rank 0's share of a feature-cache table encoded.
    FeatureCache {
        /// `train` or `val`.
        split: String,
        /// `text` or `image`.
        tower: String,
        /// Done.
        done: u64,
        /// Of.
        total: u64,
    },
}

/// serde_json writes a non-finite float as `null`.
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// What the console does with a line.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsoleAction {
    /// Update the bar.
    Progress(Record),
    /// Print this text (above the bar, if one is drawn) on this stream.
    PrintAbove {
        /// The text, prefix included.
        text: String,
        /// Where it goes.
        stream: Stream,
    },
    /// Show nothing (the line is still in the rank's log file).
    Ignore,
}

enum Parsed {
    Record(Record),
    /// `{"event":...}` of a kind this launcher does not know (a newer worker).
    Unknown,
    NotARecord,
}

fn parse(line: &str) -> Parsed {
    if !line.trim_start().starts_with('{') {
        return Parsed::NotARecord;
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
        return Parsed::NotARecord;
    };
    if value.get("event").is_none_or(|e| !e.is_string()) {
        return Parsed::NotARecord;
    }
    match serde_json::from_value(value) {
        Ok(r) => Parsed::Record(r),
        Err(_) => Parsed::Unknown,
    }
}

/// Decides what a line of `rank`'s `stream` becomes; only rank 0's stdout carries records.
pub fn classify(mode: ConsoleMode, rank: u32, stream: Stream, line: &str) -> ConsoleAction {
    let print = |text: String| ConsoleAction::PrintAbove { text, stream };
    let raw = || print(format!("[rank {rank}] {line}"));
    if mode == ConsoleMode::Json {
        return raw();
    }
    let parsed = if rank == 0 && stream == Stream::Stdout {
        parse(line)
    } else {
        Parsed::NotARecord
    };
    match (mode, parsed) {
        (_, Parsed::NotARecord) => raw(),
        (ConsoleMode::Bar, Parsed::Record(r)) => ConsoleAction::Progress(r),
        (ConsoleMode::Text, Parsed::Record(Record::Train(t))) => {
            print(format!("[rank {rank}] {}", text_line(&t)))
        }
        // The worker prints its own closing line for these (the evaluation table, the
        // feature-cache summary); a line per tick would only be noise in text mode.
        (_, Parsed::Record(_) | Parsed::Unknown) => ConsoleAction::Ignore,
    }
}

/// A training record as one plain line.
pub fn text_line(t: &TrainProgress) -> String {
    format!(
        "step {}/{} epoch {} loss {:.4} lr {:.2e} grad_norm {:.3} {:.1} samples/s eta {}",
        t.step,
        t.total_steps,
        t.epoch,
        t.loss,
        t.lr,
        t.grad_norm,
        t.samples_per_sec,
        duration(t.eta_s)
    )
}

/// Seconds as `42s`, `3m05s`, `1h02m`; `?` when unknown.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_collective::progress::{EvalProgress, FeatureCacheProgress, ProgressRecord};

    fn train_json(step: u64, loss: f64) -> String {
        serde_json::to_string(&ProgressRecord {
            event: "train",
            step,
            total_steps: 40,
            epoch: 1,
            loss,
            lr: 1e-3,
            grad_norm: 0.5,
            samples_per_sec: 123.4,
            eta_s: 75.0,
            collectives_per_step: 1.0,
            time_ms: [("forward".to_string(), serde_json::json!(3.0))]
                .into_iter()
                .collect(),
        })
        .unwrap()
    }

    #[test]
    fn the_workers_records_parse_as_progress_on_a_terminal() {
        let Progress(Record::Train(t)) =
            classify(ConsoleMode::Bar, 0, Stream::Stdout, &train_json(10, 0.25))
        else {
            panic!("not a train record");
        };
        assert_eq!((t.step, t.total_steps, t.epoch, t.loss), (10, 40, 1, 0.25));
        let eval = serde_json::to_string(&EvalProgress {
            event: "eval",
            done: 16,
            total: 80,
        })
        .unwrap();
        assert_eq!(
            classify(ConsoleMode::Bar, 0, Stream::Stdout, &eval),
            Progress(Record::Eval {
                done: 16,
                total: 80
            })
        );
        let cache = serde_json::to_string(&FeatureCacheProgress {
            event: "feature_cache",
            split: "train",
            tower: "image",
            done: 64,
            total: 400,
        })
        .unwrap();
        assert_eq!(
            classify(ConsoleMode::Bar, 0, Stream::Stdout, &cache),
            Progress(Record::FeatureCache {
                split: "train".into(),
                tower: "image".into(),
                done: 64,
                total: 400
            })
        );
    }

    use ConsoleAction::{Ignore, PrintAbove, Progress};

    #[test]
    fn a_nan_loss_written_as_null_still_parses() {
        let line = train_json(3, f64::NAN);
        assert!(line.contains("\"loss\":null"), "{line}");
        let Progress(Record::Train(t)) = classify(ConsoleMode::Bar, 0, Stream::Stdout, &line)
        else {
            panic!("not parsed");
        };
        assert!(t.loss.is_nan());
        assert!(text_line(&t).contains("loss NaN"));
    }

    #[test]
    fn no_raw_json_record_reaches_a_terminal_or_a_text_console() {
        let unknown = r#"{"event":"checkpoint","step":5}"#;
        for mode in [ConsoleMode::Bar, ConsoleMode::Text] {
            assert_eq!(classify(mode, 0, Stream::Stdout, unknown), Ignore);
            let eval = r#"{"event":"eval","done":1,"total":2}"#;
            assert_ne!(
                classify(mode, 0, Stream::Stdout, eval),
                classify(ConsoleMode::Json, 0, Stream::Stdout, eval)
            );
        }
        let text = classify(ConsoleMode::Text, 0, Stream::Stdout, &train_json(10, 0.25));
        assert_eq!(
            text,
            PrintAbove {
                text: "[rank 0] step 10/40 epoch 1 loss 0.2500 lr 1.00e-3 grad_norm 0.500 \
                       123.4 samples/s eta 1m15s"
                    .into(),
                stream: Stream::Stdout
            }
        );
    }

    #[test]
    fn other_lines_print_above_with_their_prefix() {
        for mode in [ConsoleMode::Bar, ConsoleMode::Text, ConsoleMode::Json] {
            assert_eq!(
                classify(mode, 0, Stream::Stdout, "eval step 20: loss 0.3"),
                PrintAbove {
                    text: "[rank 0] eval step 20: loss 0.3".into(),
                    stream: Stream::Stdout
                }
            );
            assert_eq!(
                classify(mode, 1, Stream::Stderr, "warning: slow disk"),
                PrintAbove {
                    text: "[rank 1] warning: slow disk".into(),
                    stream: Stream::Stderr
                }
            );
        }
        // Only rank 0's stdout carries records: elsewhere JSON is just a line.
        let line = train_json(1, 1.0);
        assert!(matches!(
            classify(ConsoleMode::Bar, 1, Stream::Stdout, &line),
            PrintAbove { .. }
        ));
        assert!(matches!(
            classify(ConsoleMode::Bar, 0, Stream::Stderr, &line),
            PrintAbove { .. }
        ));
        // Malformed or non-record JSON is a line too.
        for l in ["{\"event\":", "{\"loss\":1}", "[1,2]"] {
            assert!(matches!(
                classify(ConsoleMode::Bar, 0, Stream::Stdout, l),
                PrintAbove { .. }
            ));
        }
    }

    #[test]
    fn json_mode_echoes_every_line_as_today() {
        let line = train_json(10, 0.25);
        assert_eq!(
            classify(ConsoleMode::Json, 0, Stream::Stdout, &line),
            PrintAbove {
                text: format!("[rank 0] {line}"),
                stream: Stream::Stdout
            }
        );
    }

    #[test]
    fn modes_and_durations() {
        assert_eq!(
            ConsoleMode::resolve(LogFormat::Auto, true),
            ConsoleMode::Bar
        );
        assert_eq!(
            ConsoleMode::resolve(LogFormat::Auto, false),
            ConsoleMode::Json
        );
        assert_eq!(
            ConsoleMode::resolve(LogFormat::Text, true),
            ConsoleMode::Text
        );
        assert_eq!(
            ConsoleMode::resolve(LogFormat::Json, true),
            ConsoleMode::Json
        );
        assert_eq!(duration(59.4), "59s");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(3720.0), "1h02m");
        assert_eq!(duration(f64::NAN), "?");
    }
}
