//! Cross-field rules of the run config. Every rule runs, so a user sees every
//! problem at once, each with the key path to fix.

use std::collections::HashSet;

use super::RunConfig;
use super::enums::{Backend, Device, ExportWhen, ImageEncoder, TextEncoder};

/// One problem: the key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted key path, e.g. `optim.warmup_steps`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

struct Problems(Vec<Problem>);

impl Problems {
    fn check(&mut self, ok: bool, key: &str, message: impl Into<String>) {
        if !ok {
            self.0.push(Problem {
                key: key.into(),
                message: message.into(),
            });
        }
    }
}

/// Checks every cross-field rule; an empty vector means the config is valid.
pub fn validate(c: &RunConfig) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    run_and_launch(c, &mut p);
    model(c, &mut p);
    data(c, &mut p);
    optim_and_train(c, &mut p);
    checkpoint_and_export(c, &mut p);
    storage_urls(c, &mut p);
    p.0
}

/// Every key that takes a path or a bucket URL must parse as one (an unknown
/// scheme is an error, not a local directory named `s4:`); `run.local_dir` is
/// local by definition.
fn storage_urls(c: &RunConfig, p: &mut Problems) {
    use vigil_store::storage::Location;
    let keys = [
        ("run.output_dir", c.run.output_dir.as_deref()),
        ("export.dir", c.export.dir.as_deref()),
        ("model.init_from", c.model.init_from.as_deref()),
        ("data.train", Some(c.data.train.as_str())),
        ("data.val", c.data.val.as_deref()),
        ("data.image_root", c.data.image_root.as_deref()),
    ];
    for (key, value) in keys {
        if let Some(Err(e)) = value.map(Location::parse) {
            p.check(false, key, e.to_string());
        }
    }
    if let Some(d) = &c.run.local_dir {
        p.check(
            !vigil_store::storage::is_url(d),
            "run.local_dir",
            "must be a local directory, not a URL",
        );
    }
    for (i, d) in c.train.feature_cache_search.iter().enumerate() {
        let key = format!("train.feature_cache_search[{i}]");
        p.check(!d.trim().is_empty(), &key, "must not be empty");
        p.check(
            !vigil_store::storage::is_url(d),
            &key,
            "must be a local directory (another run's feature-cache/), not a URL",
        );
    }
}

fn run_and_launch(c: &RunConfig, p: &mut Problems) {
    let l = &c.launch;
    p.check(
        !c.run.name.trim().is_empty(),
        "run.name",
        "must not be empty",
    );
    p.check(
        !c.run.name.contains(['/', '\\']),
        "run.name",
        "must not contain a path separator",
    );
    p.check(
        l.nproc_per_node >= 1,
        "launch.nproc_per_node",
        "must be at least 1",
    );
    p.check(l.nnodes >= 1, "launch.nnodes", "must be at least 1");
    p.check(
        l.node_rank < l.nnodes.max(1),
        "launch.node_rank",
        format!("must be less than launch.nnodes ({})", l.nnodes),
    );
    p.check(
        l.nnodes <= 1 || l.rdzv_endpoint.is_some(),
        "launch.rdzv_endpoint",
        "is required when launch.nnodes > 1 (HOST:PORT of node 0)",
    );
    if let Some(ep) = &l.rdzv_endpoint {
        let ok = ep
            .rsplit_once(':')
            .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        p.check(
            ok,
            "launch.rdzv_endpoint",
            format!("'{ep}' is not HOST:PORT"),
        );
    }
    for (key, v) in [
        ("launch.grace_s", l.grace_s),
        ("launch.rdzv_timeout_s", l.rdzv_timeout_s),
        ("launch.heartbeat_timeout_s", l.heartbeat_timeout_s),
        ("launch.collective_timeout_s", l.collective_timeout_s),
    ] {
        p.check(
            v.is_finite() && v > 0.0,
            key,
            "must be a positive number of seconds",
        );
    }
    p.check(
        l.backend != Backend::Nccl || l.device == Device::Cuda,
        "launch.backend",
        "nccl needs launch.device: cuda",
    );
    p.check(
        l.backend != Backend::Shm || l.nnodes == 1,
        "launch.backend",
        "shm only connects ranks on one node; use auto or tcp with launch.nnodes > 1",
    );
}

fn model(c: &RunConfig, p: &mut Problems) {
    let m = &c.model;
    p.check(
        !m.labels.is_empty(),
        "model.labels",
        "must list at least one label",
    );
    let mut seen = HashSet::new();
    for l in &m.labels {
        p.check(
            !l.trim().is_empty(),
            "model.labels",
            "a label name is empty",
        );
        p.check(
            seen.insert(l.as_str()),
            "model.labels",
            format!("'{l}' appears twice"),
        );
    }
    p.check(
        m.text.is_some() || m.image.is_some(),
        "model",
        "needs a text tower (model.text), an image tower (model.image), or both",
    );
    if let Some(t) = &m.text {
        p.check(
            t.encoder != TextEncoder::Bert || t.path.is_some(),
            "model.text.path",
            "is required for encoder: bert (a Hugging Face model directory)",
        );
        p.check(
            (0.0..1.0).contains(&t.dropout),
            "model.text.dropout",
            "must be in [0, 1)",
        );
        if t.encoder == TextEncoder::Scratch {
            p.check(
                t.hidden >= 1 && t.layers >= 1,
                "model.text",
                "hidden and layers must be >= 1",
            );
            p.check(
                t.heads >= 1 && t.hidden % t.heads.max(1) == 0,
                "model.text.heads",
                format!("must divide model.text.hidden ({})", t.hidden),
            );
        }
    }
    if let Some(i) = &m.image {
        p.check(
            i.encoder != ImageEncoder::EfficientnetB0 || i.path.is_some(),
            "model.image.path",
            "is required for encoder: efficientnet_b0 (a torchvision .pth state_dict)",
        );
        p.check(
            i.channels >= 1,
            "model.image.channels",
            "must be at least 1",
        );
    }
    p.check(m.fusion.dim >= 1, "model.fusion.dim", "must be at least 1");
    p.check(
        m.head.hidden.iter().all(|&h| h >= 1),
        "model.head.hidden",
        "widths must be >= 1",
    );
    p.check(
        (0.0..1.0).contains(&m.head.dropout),
        "model.head.dropout",
        "must be in [0, 1)",
    );
    for (label, w) in &m.head.pos_weight {
        p.check(
            m.labels.contains(label),
            "model.head.pos_weight",
            format!("'{label}' is not one of model.labels"),
        );
        p.check(
            w.is_finite() && *w > 0.0,
            "model.head.pos_weight",
            "weights must be > 0",
        );
    }
}

fn data(c: &RunConfig, p: &mut Problems) {
    let d = &c.data;
    p.check(
        !d.train.trim().is_empty(),
        "data.train",
        "is required (a JSONL file)",
    );
    p.check(
        d.format != super::enums::DataFormat::HatefulMemes
            || d.hateful_memes_label
                .as_ref()
                .is_some_and(|l| c.model.labels.contains(l)),
        "data.hateful_memes_label",
        "must name one of model.labels for format: hateful_memes",
    );
    p.check(
        d.max_text_len >= 2,
        "data.max_text_len",
        "must be at least 2 tokens",
    );
    p.check(
        d.max_text_chars >= 1,
        "data.max_text_chars",
        "must be at least 1",
    );
    p.check(
        (8..=4096).contains(&d.image_size),
        "data.image_size",
        "must be in 8..=4096",
    );
    if let Some(t) = &d.image_transform {
        p.check(
            t.std.iter().all(|s| s.is_finite() && *s > 0.0) && t.mean.iter().all(|m| m.is_finite()),
            "data.image_transform.std",
            "must be positive (and mean finite) for every channel",
        );
        p.check(
            t.shortest_edge
                .is_none_or(|e| e >= d.image_size && e <= 8192),
            "data.image_transform.shortest_edge",
            "must be at least data.image_size (the crop) and at most 8192",
        );
    }
    p.check(
        d.loader_threads >= 1,
        "data.loader_threads",
        "must be at least 1",
    );
    p.check(
        d.prefetch_batches >= 1,
        "data.prefetch_batches",
        "must be at least 1",
    );
}

fn optim_and_train(c: &RunConfig, p: &mut Problems) {
    let (o, t) = (&c.optim, &c.train);
    p.check(o.lr.is_finite() && o.lr > 0.0, "optim.lr", "must be > 0");
    p.check(
        o.head_lr.is_finite() && o.head_lr > 0.0,
        "optim.head_lr",
        "must be > 0",
    );
    p.check(o.weight_decay >= 0.0, "optim.weight_decay", "must be >= 0");
    p.check(
        o.betas.iter().all(|b| (0.0..1.0).contains(b)),
        "optim.betas",
        "both must be in [0, 1)",
    );
    p.check(o.eps > 0.0, "optim.eps", "must be > 0");
    if let Some(g) = o.grad_clip {
        p.check(
            g.is_finite() && g > 0.0,
            "optim.grad_clip",
            "must be > 0 (or null)",
        );
    }
    p.check(t.batch_size >= 1, "train.batch_size", "must be at least 1");
    p.check(t.grad_accum >= 1, "train.grad_accum", "must be at least 1");
    p.check(
        t.epochs.is_some() || t.max_steps.is_some(),
        "train",
        "set train.epochs or train.max_steps",
    );
    p.check(t.epochs != Some(0), "train.epochs", "must be at least 1");
    p.check(
        t.max_steps != Some(0),
        "train.max_steps",
        "must be at least 1",
    );
    if let Some(max) = t.max_steps {
        p.check(
            o.warmup_steps < max,
            "optim.warmup_steps",
            format!("must be < train.max_steps ({max})"),
        );
    }
    p.check(
        t.eval_every != Some(0),
        "train.eval_every",
        "must be at least 1",
    );
    if let Some(es) = &t.early_stopping {
        p.check(
            c.data.val.is_some(),
            "train.early_stopping",
            "needs data.val to evaluate on",
        );
        p.check(
            metric_name_ok(&es.monitor),
            "train.early_stopping.monitor",
            bad_metric(),
        );
        p.check(
            es.patience >= 1,
            "train.early_stopping.patience",
            "must be at least 1",
        );
        p.check(
            es.min_delta >= 0.0,
            "train.early_stopping.min_delta",
            "must be >= 0",
        );
    }
}

fn checkpoint_and_export(c: &RunConfig, p: &mut Problems) {
    let (ck, ex) = (&c.checkpoint, &c.export);
    p.check(
        ck.every_steps != Some(0),
        "checkpoint.every_steps",
        "must be at least 1",
    );
    p.check(
        ck.keep_last >= 1,
        "checkpoint.keep_last",
        "must be at least 1 (resume needs one)",
    );
    p.check(
        ck.keep_best == 0 || ck.monitor.is_some(),
        "checkpoint.keep_best",
        "needs checkpoint.monitor to rank checkpoints",
    );
    if let Some(m) = &ck.monitor {
        p.check(
            metric_name_ok(&m.metric),
            "checkpoint.monitor.metric",
            bad_metric(),
        );
        p.check(
            c.data.val.is_some(),
            "checkpoint.monitor",
            "needs data.val to evaluate on",
        );
    }
    p.check(
        !ex.model_name.trim().is_empty(),
        "export.model_name",
        "must not be empty",
    );
    p.check(
        !ex.model_name.contains(['/', '\\']),
        "export.model_name",
        "must not contain a path separator",
    );
    p.check(
        ex.keep_versions >= 1,
        "export.keep_versions",
        "must be at least 1",
    );
    p.check(
        ex.when != ExportWhen::Best || ck.monitor.is_some() || ex.gate.is_some(),
        "export.when",
        "best needs checkpoint.monitor (or export.gate) to know what best means",
    );
    p.check(
        ex.when == ExportWhen::End || c.data.val.is_some(),
        "export.when",
        "best and every export after evaluations, which need data.val",
    );
    if let Some(g) = &ex.gate {
        p.check(ex.dir.is_some(), "export.gate", "needs export.dir");
        p.check(
            c.data.val.is_some(),
            "export.gate",
            "needs data.val to score both models",
        );
        p.check(
            metric_name_ok(&g.metric),
            "export.gate.metric",
            bad_metric(),
        );
        p.check(g.min_delta >= 0.0, "export.gate.min_delta", "must be >= 0");
    }
}

/// Monitored metrics are evaluation metrics: `val/<name>` or `val/<label>/<name>`.
fn metric_name_ok(m: &str) -> bool {
    m.strip_prefix("val/")
        .is_some_and(|rest| !rest.is_empty() && !rest.ends_with('/'))
}

fn bad_metric() -> &'static str {
    "must name an evaluation metric such as val/macro_auroc or val/<label>/f1"
}
