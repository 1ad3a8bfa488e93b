//! The console of one launcher: applies [`classify`]'s actions to the terminal, drawing
//! indicatif bars in [`ConsoleMode::Bar`] and writing lines as they come otherwise.
//!
//! Every log pump thread and the supervision loop write through one [`Console`], under
//! one lock, so a line never lands in the middle of a bar redraw: in bar mode lines are
//! written inside [`MultiProgress::suspend`], which clears the bars, writes, and redraws.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::line::{ConsoleAction, ConsoleMode, Record, Stream, TrainProgress, classify, duration};

/// The launcher's console.
pub struct Console {
    mode: ConsoleMode,
    state: Mutex<Bars>,
}

#[derive(Default)]
struct Bars {
    multi: Option<MultiProgress>,
    train: Option<ProgressBar>,
    /// The evaluation or feature-cache bar, with what it shows (`evaluating`, ...).
    phase: Option<(String, ProgressBar)>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").field("mode", &self.mode).finish()
    }
}

impl Console {
    /// A console in `mode`; bars draw on stdout (that `mode` is `Bar` means it is a terminal).
    pub fn new(mode: ConsoleMode) -> Self {
        let multi = (mode == ConsoleMode::Bar)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        Self {
            mode,
            state: Mutex::new(Bars {
                multi,
                ..Bars::default()
            }),
        }
    }

    /// Shows one line a worker wrote.
    pub fn line(&self, rank: u32, stream: Stream, line: &str) {
        let action = classify(self.mode, rank, stream, line);
        let mut bars = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match action {
            ConsoleAction::Ignore => {}
            ConsoleAction::PrintAbove { text, stream } => bars.print(&text, stream),
            ConsoleAction::Progress(record) => bars.progress(record),
        }
    }

    /// A message of the launcher itself (stderr), above the bars.
    pub fn note(&self, text: &str) {
        let bars = self.state.lock().unwrap_or_else(|p| p.into_inner());
        bars.print(text, Stream::Stderr);
    }

    /// The generation ended: the training bar stays as last drawn (complete when
    /// `complete`), the phase bar goes; a restarted generation draws anew.
    pub fn end_generation(&self, complete: bool) {
        let mut bars = self.state.lock().unwrap_or_else(|p| p.into_inner());
        bars.clear_phase();
        if let Some(train) = bars.train.take() {
            if complete {
                train.finish();
            } else {
                train.abandon();
            }
        }
    }
}

impl Bars {
    fn print(&self, text: &str, stream: Stream) {
        // Console errors (a closed pipe) must not stop the pumps or the log files.
        let write = || match stream {
            Stream::Stdout => {
                let _ = writeln!(std::io::stdout().lock(), "{text}");
            }
            Stream::Stderr => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        };
        match &self.multi {
            Some(m) if self.train.is_some() || self.phase.is_some() => m.suspend(write),
            _ => write(),
        }
    }

    fn progress(&mut self, record: Record) {
        let Some(multi) = self.multi.clone() else {
            return;
        };
        match record {
            Record::Train(t) => {
                // Training again: an evaluation that sent no last record is over.
                self.clear_phase();
                let bar = self.train.get_or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new(t.total_steps));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise}]",
                        )
                        .expect("a valid template"),
                    );
                    // Redraw between records too, so the elapsed time moves.
                    bar.enable_steady_tick(Duration::from_secs(1));
                    bar
                });
                bar.set_length(t.total_steps);
                bar.set_position(t.step);
                bar.set_message(train_message(&t));
            }
            Record::Eval { done, total } => self.phase(&multi, "evaluating".into(), done, total),
            Record::FeatureCache {
                split,
                tower,
                done,
                total,
            } => self.phase(
                &multi,
                format!("feature cache {split}/{tower}"),
                done,
                total,
            ),
        }
    }

    fn phase(&mut self, multi: &MultiProgress, what: String, done: u64, total: u64) {
        if self.phase.as_ref().is_some_and(|(w, _)| *w != what) {
            self.clear_phase();
        }
        if done >= total {
            self.clear_phase();
            return;
        }
        let (_, bar) = self.phase.get_or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} rows  [{elapsed}]")
                    .expect("a valid template"),
            );
            bar.set_message(what.clone());
            (what, bar)
        });
        bar.set_length(total);
        bar.set_position(done);
    }

    fn clear_phase(&mut self) {
        if let Some((_, bar)) = self.phase.take() {
            bar.finish_and_clear();
            if let Some(m) = &self.multi {
                m.remove(&bar);
            }
        }
    }
}

/// The text after `N/M steps`: epoch, loss, throughput, the worker's ETA.
fn train_message(t: &TrainProgress) -> String {
    format!(
        "epoch {}  loss {:.4}  {:.1} samples/s  ETA {}",
        t.epoch,
        t.loss,
        t.samples_per_sec,
        duration(t.eta_s)
    )
}
