//! The run's length and the step counts that must fit inside it.
//!
//! A run is bounded by `train.max_steps`, by `train.epochs` (whose length in steps
//! depends on the training split's size, the world size and the batch), or by the
//! smaller of the two. `optim.warmup_steps`, `train.eval_every` and
//! `checkpoint.every_steps` larger than the run are mistakes that would otherwise go
//! unnoticed: a run that never leaves warmup, never evaluates before its last step,
//! never checkpoints before its end. Three places check them with the same rule
//! ([`schedule_problems`]):
//! - [`super::validate`], the warmup against `train.max_steps` (an upper bound);
//! - `vigil validate` / `vigil launch`, against the steps [`planned_steps`] computes
//!   from the row count of `data.train` when the file is readable there (an upper
//!   bound too: rows the loader skips only shorten the run): every problem is an
//!   error (exit 2);
//! - the worker at start, against the run's real length, as a warning (the data size
//!   may not have been known at validation, and the run itself is still sound).
//!
//! A smoke run shortened with `--set train.max_steps=…` therefore also shortens (or
//! nulls) `train.eval_every` and `checkpoint.every_steps`: an interval longer than
//! the run is what a real run's mistake looks like too (`gpu-8x.yaml` once asked for
//! 500-step intervals in a 340-step run), and one rule for both is the one users can
//! predict.

use std::io::BufRead;
use std::path::Path;

use super::RunConfig;
use super::enums::UnevenTail;
use super::validate::Problem;

impl RunConfig {
    /// Ranks of the run as configured: `launch.nproc_per_node × launch.nnodes`.
    pub fn world_size(&self) -> u64 {
        u64::from(self.launch.nproc_per_node.max(1)) * u64::from(self.launch.nnodes.max(1))
    }

    /// Optimizer steps of the run when each rank has `batches_per_epoch` batches per
    /// epoch: `train.max_steps`, `train.epochs` worth, or the smaller of the two.
    pub fn total_steps(&self, batches_per_epoch: u64) -> u64 {
        let per_epoch = batches_per_epoch.div_ceil(u64::from(self.train.grad_accum.max(1)));
        let by_epochs = self.train.epochs.map(|e| u64::from(e) * per_epoch);
        match (by_epochs, self.train.max_steps) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => per_epoch,
        }
    }
}

/// Batches per rank per epoch for `rows` training rows on `world` ranks (the
/// sampler's rule: pad repeats rows so every rank gets `ceil(rows / world)`, drop
/// gives `floor(rows / world)`).
pub fn batches_per_epoch(rows: u64, world: u64, batch: u64, uneven: UnevenTail) -> u64 {
    let world = world.max(1);
    let per_rank = match uneven {
        UnevenTail::Pad => rows.div_ceil(world),
        UnevenTail::Drop => rows / world,
    };
    per_rank.div_ceil(batch.max(1))
}

/// The run's steps when its training split has `rows` rows (on the configured world
/// size); `None` when the length depends on a row count that is not known.
pub fn planned_steps(c: &RunConfig, rows: Option<u64>) -> Option<u64> {
    match (c.train.epochs, rows) {
        (None, _) => c.train.max_steps,
        (Some(_), Some(rows)) => {
            let world = c.world_size();
            let batches = batches_per_epoch(rows, world, c.train.batch_size as u64, c.data.uneven);
            Some(c.total_steps(batches))
        }
        (Some(_), None) => None,
    }
}

/// Every step count of `c` that does not fit in a run of `total` steps; `how` says
/// where `total` comes from (it ends each message).
pub fn schedule_problems(c: &RunConfig, total: u64, how: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut check = |ok: bool, key: &str, what: String, fix: String| {
        if !ok {
            out.push(Problem {
                key: key.into(),
                message: format!("{what}, but the run has only {total} steps ({how}); {fix}"),
            });
        }
    };
    let warmup = c.optim.warmup_steps;
    check(
        warmup == 0 || warmup < total,
        "optim.warmup_steps",
        format!("is {warmup}: the learning rate would never leave warmup"),
        format!("make it less than {total} (or 0)"),
    );
    let interval = format!("make it at most {total} (or null)");
    if let Some(e) = c.train.eval_every {
        check(
            e <= total,
            "train.eval_every",
            format!("is {e}: no evaluation before the last step"),
            interval.clone(),
        );
    }
    if let Some(e) = c.checkpoint.every_steps {
        check(
            e <= total,
            "checkpoint.every_steps",
            format!("is {e}: no checkpoint before the run ends"),
            interval,
        );
    }
    out
}

/// How `total` was arrived at, for messages: the bound that decided it.
pub fn length_source(c: &RunConfig, rows: Option<u64>, total: u64) -> String {
    match (c.train.epochs, rows) {
        (Some(e), Some(rows)) if c.train.max_steps != Some(total) => format!(
            "train.epochs {e} × {rows} rows of data.train / ({} ranks × train.batch_size {}{})",
            c.world_size(),
            c.train.batch_size,
            if c.train.grad_accum > 1 {
                format!(" × train.grad_accum {}", c.train.grad_accum)
            } else {
                String::new()
            }
        ),
        _ => "train.max_steps".into(),
    }
}

/// Rows of a JSONL file (its non-blank lines), or `None` when it cannot be read here
/// (not a local file, not mounted on this machine).
pub fn count_jsonl_rows(path: &Path) -> Option<u64> {
    let file = std::fs::File::open(path).ok()?;
    let mut n = 0u64;
    for line in std::io::BufReader::new(file).lines() {
        if !line.ok()?.trim().is_empty() {
            n += 1;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu_8x_like() -> RunConfig {
        let mut c = RunConfig::default();
        c.launch.nproc_per_node = 8;
        c.train.batch_size = 32;
        c.train.epochs = Some(10);
        c.optim.warmup_steps = 500;
        c.train.eval_every = Some(500);
        c.checkpoint.every_steps = Some(500);
        c
    }

    #[test]
    fn hateful_memes_on_8x32_is_340_steps() {
        // 8500 training rows / (8 × 32) = 33.2 → 34 batches per epoch, 10 epochs.
        let c = gpu_8x_like();
        assert_eq!(planned_steps(&c, Some(8500)), Some(340));
        assert_eq!(planned_steps(&c, None), None);
    }

    #[test]
    fn the_old_gpu_8x_schedule_is_rejected_on_every_key() {
        let c = gpu_8x_like();
        let p = schedule_problems(&c, 340, "x");
        let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "optim.warmup_steps",
                "train.eval_every",
                "checkpoint.every_steps"
            ]
        );
        assert!(p[0].message.contains("only 340 steps (x)"), "{:?}", p[0]);
        assert!(
            p[0].message.ends_with("; make it less than 340 (or 0)"),
            "{:?}",
            p[0]
        );
        assert!(
            p[1].message.ends_with("; make it at most 340 (or null)"),
            "{:?}",
            p[1]
        );
    }

    #[test]
    fn an_interval_as_long_as_the_run_fits_and_one_step_more_does_not() {
        let mut c = gpu_8x_like();
        c.optim.warmup_steps = 0;
        c.train.eval_every = Some(340);
        c.checkpoint.every_steps = Some(341);
        let p = schedule_problems(&c, 340, "x");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "checkpoint.every_steps");
        assert!(p[0].message.starts_with("is 341: no checkpoint"), "{p:?}");
    }

    #[test]
    fn counts_that_fit_pass() {
        let mut c = gpu_8x_like();
        c.optim.warmup_steps = 30;
        c.train.eval_every = Some(340);
        c.checkpoint.every_steps = Some(34);
        assert!(schedule_problems(&c, 340, "x").is_empty());
        c.optim.warmup_steps = 0;
        c.train.eval_every = None;
        c.checkpoint.every_steps = None;
        assert!(schedule_problems(&c, 1, "x").is_empty());
    }

    #[test]
    fn max_steps_bounds_epochs_and_grad_accum_divides() {
        let mut c = gpu_8x_like();
        c.train.max_steps = Some(100);
        assert_eq!(planned_steps(&c, Some(8500)), Some(100));
        c.train.max_steps = None;
        c.train.grad_accum = 4;
        // 34 batches per epoch → 9 steps per epoch (the last one short).
        assert_eq!(planned_steps(&c, Some(8500)), Some(90));
    }

    #[test]
    fn drop_and_pad_follow_the_sampler() {
        assert_eq!(batches_per_epoch(10, 3, 2, UnevenTail::Pad), 2); // 4 per rank
        assert_eq!(batches_per_epoch(10, 3, 2, UnevenTail::Drop), 2); // 3 per rank
        assert_eq!(batches_per_epoch(9, 3, 2, UnevenTail::Drop), 2);
        assert_eq!(batches_per_epoch(7, 1, 8, UnevenTail::Pad), 1);
    }

    #[test]
    fn rows_are_non_blank_lines() {
        let dir = std::env::temp_dir().join(format!("vigil-rows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.jsonl");
        std::fs::write(&f, "{\"a\":1}\n\n{\"a\":2}\n   \n{\"a\":3}").unwrap();
        assert_eq!(count_jsonl_rows(&f), Some(3));
        assert_eq!(count_jsonl_rows(&dir.join("missing.jsonl")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
