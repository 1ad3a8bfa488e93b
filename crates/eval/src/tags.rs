//! The tag names of a Vigil run, in one place so the training loop, the tests and
//! `scripts/check_tensorboard.py` agree (the checker's defaults repeat this list;
//! the book's `docs/src/reference/tensorboard.md` documents it).
//!
//! Tags group by their first path component in TensorBoard's sidebar: `train/`,
//! `time/`, `val/`, `data/`, `weights/`, `grads/`, `pr_curve/`, `config/`.

/// Training loss (mean over the ranks' micro-batches of the step).
pub const TRAIN_LOSS: &str = "train/loss";
/// Learning rate of the encoders (`optim.lr` after the schedule).
pub const TRAIN_LR: &str = "train/lr";
/// Learning rate of fusion and head (`optim.head_lr` after the schedule).
pub const TRAIN_LR_HEAD: &str = "train/lr_head";
/// Global gradient norm before clipping.
pub const TRAIN_GRAD_NORM: &str = "train/grad_norm";
/// Examples per second over all ranks.
pub const TRAIN_SAMPLES_PER_SEC: &str = "train/samples_per_sec";
/// Epoch, fractional.
pub const TRAIN_EPOCH: &str = "train/epoch";

/// Time waiting for the next batch, ms per step.
pub const TIME_DATA_WAIT_MS: &str = "time/data_wait_ms";
/// Forward pass, ms per step.
pub const TIME_FORWARD_MS: &str = "time/forward_ms";
/// Backward pass, ms per step.
pub const TIME_BACKWARD_MS: &str = "time/backward_ms";
/// Gradient all-reduce, ms per step.
pub const TIME_ALLREDUCE_MS: &str = "time/allreduce_ms";
/// Optimizer update, ms per step.
pub const TIME_OPTIMIZER_MS: &str = "time/optimizer_ms";
/// Whole step, ms.
pub const TIME_STEP_MS: &str = "time/step_ms";

/// Scalars logged every `logging.interval` steps, in this order.
pub const TRAIN_SCALARS: [&str; 12] = [
    TRAIN_LOSS,
    TRAIN_LR,
    TRAIN_LR_HEAD,
    TRAIN_GRAD_NORM,
    TRAIN_SAMPLES_PER_SEC,
    TRAIN_EPOCH,
    TIME_DATA_WAIT_MS,
    TIME_FORWARD_MS,
    TIME_BACKWARD_MS,
    TIME_ALLREDUCE_MS,
    TIME_OPTIMIZER_MS,
    TIME_STEP_MS,
];

/// The resolved config (YAML in a code block), at step 0.
pub const CONFIG_TEXT: &str = "config/resolved";

/// Validation loss.
pub const VAL_LOSS: &str = "val/loss";

/// A macro-averaged validation metric: `val/macro_<metric>` (e.g. `val/macro_auroc`).
pub fn val_macro(metric: &str) -> String {
    format!("val/macro_{metric}")
}

/// A per-label validation metric: `val/<label>/<metric>` (e.g. `val/hate/f1`).
pub fn val_label(label: &str, metric: &str) -> String {
    format!("val/{label}/{metric}")
}

/// The PR curve of one label at each evaluation: `pr_curve/<label>`.
pub fn pr_curve(label: &str) -> String {
    format!("pr_curve/{label}")
}

/// The grid of one label's top false positives and negatives at each
/// evaluation (images dashboard): `errors/<label>`.
pub fn error_grid(label: &str) -> String {
    format!("errors/{label}")
}

/// Weight histogram of a parameter: `weights/<param path>`.
pub fn weights(param: &str) -> String {
    format!("weights/{param}")
}

/// Gradient histogram of a parameter: `grads/<param path>`.
pub fn grads(param: &str) -> String {
    format!("grads/{param}")
}

/// Rows skipped so far for one reason (cumulative): `data/skipped_rows/<reason>`.
pub fn skipped_rows(reason: &str) -> String {
    format!("data/skipped_rows/{reason}")
}
