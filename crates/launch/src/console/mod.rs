//! The launcher's console: what the user sees of the workers' output.
//!
//! Every line still goes to `<output_dir>/logs/rank-N.log` unchanged (`supervise::logs`);
//! this module decides what reaches the terminal. On a terminal with `logging.format:
//! auto`, rank 0's progress records (JSON lines the worker prints because the launcher
//! set `VIGIL_PROGRESS_JSON=1`) drive one live bar — step/total, epoch, loss, samples/s,
//! ETA — plus a bar for evaluation or the feature-cache build, and every other line
//! (evaluation tables, warnings, other ranks) prints above the bars. `logging.format:
//! text` turns the records into plain lines; `json`, or a stdout that is not a terminal,
//! echoes every line as the worker wrote it, `[rank N]`-prefixed, which is what log
//! collectors and the end-to-end tests parse.
//!
//! Why the launcher draws the bar rather than the worker: a worker's stdout is a pipe, and
//! several workers (and the launcher's own messages) share one terminal; only the process
//! that owns the terminal can keep one bar below interleaved lines.
//!
//! # Layout
//! - `line.rs`: a line → `ConsoleAction` (pure, unit-tested).
//! - `view.rs`: [`Console`], the indicatif part that carries the actions out.

mod line;
mod view;

pub use line::{ConsoleMode, Stream};
pub use view::Console;
