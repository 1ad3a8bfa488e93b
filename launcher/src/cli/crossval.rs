//! `vigil crossval CONFIG --folds K`: K models on seeded, grouped folds of the
//! training file, each an ordinary supervised launch, and every training row's
//! out-of-fold scores.
//!
//! The fold assignment and the joining of the folds' scores are `vigil_curate::folds`'
//! (pure); this file reads the training file, writes each fold's two data files,
//! launches the folds one after another through the same supervision as `vigil
//! launch` (workers, restarts, preemption, checkpoints, resume, TensorBoard), and
//! writes `oof.jsonl` and `crossval.json`.
//!
//! Layout under the run directory (`run.output_dir`):
//!
//! ```text
//! folds.json                  the assignment: K, seed, group-by, each row's fold
//! folds/fold-<k>.train.jsonl  the other folds' rows (the training file's lines, verbatim)
//! folds/fold-<k>.val.jsonl    fold k's rows: the held-out split the model scores
//! fold-<k>/                   fold k's run directory (checkpoints, eval, tensorboard, logs)
//! fold-<k>/heldout.scores.jsonl  fold k's last evaluation of its held-out rows, once done
//! oof.jsonl                   every training row's out-of-fold scores, in file order
//! crossval.json               the summary: per-fold and pooled out-of-fold metrics
//! ```
//!
//! A fold's frozen-tower feature cache gathers its rows from the other folds'
//! tables (`train.feature_cache_search`), so with a frozen tower the features are
//! computed once, by fold 0, not once per fold.
//!
//! Running the same command again resumes: finished folds (those with
//! `heldout.scores.jsonl`) are skipped, the interrupted one resumes from its newest
//! checkpoint (`train.resume: auto`), and the outputs are rewritten from the same
//! inputs, so a SIGKILL anywhere ends in the same files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use vigil_config::{RunConfig, Task};
use vigil_curate::CurateError;
use vigil_curate::folds::{self, Folds};
use vigil_data::{Dataset, LoadOptions, Split};
use vigil_eval::EvalReport;
use vigil_eval::scored::ScoredRows;
use vigil_launch::resolve::LaunchArgs;
use vigil_store::atomic::write_atomic;

/// The file a finished fold leaves in its run directory.
const HELDOUT: &str = "heldout.scores.jsonl";

/// Arguments of `vigil crossval`: `vigil launch`'s, plus the folds.
#[derive(Debug, Args)]
#[command(
    after_help = "Writes under run.output_dir: folds.json, folds/fold-<k>.{train,val}.jsonl, \
    fold-<k>/ (each fold's run directory), oof.jsonl (every training row's scores from the \
    fold that held it out, in the evaluation's scored-row format plus \"fold\") and \
    crossval.json (per-fold and pooled out-of-fold metrics). data.val is not used: each \
    fold is validated on its held-out rows. Running the command again resumes. Exit codes: \
    as vigil launch (0, 1, 2, 65, 75)."
)]
#[command(
    mut_arg("config", |a| a.required(true).help("The run config (YAML)")),
    mut_arg("command", |a| a.hide(true)),
    mut_arg("module", |a| a.hide(true))
)]
pub struct CrossvalArgs {
    /// Number of folds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=100))]
    folds: u32,
    /// Keep rows with the same value of this field in one fold (`meta.FIELD`).
    #[arg(long, value_name = "meta.FIELD")]
    group_by: Option<String>,
    /// Seed of the fold assignment (default: run.seed).
    #[arg(long)]
    fold_seed: Option<u64>,
    /// Publish each fold's model into `fold-<k>/export` (by default folds export nothing).
    #[arg(long)]
    export_folds: bool,
    #[command(flatten)]
    launch: LaunchArgs,
}

/// Runs every fold not yet done, then joins the out-of-fold scores.
pub fn run(args: CrossvalArgs) -> anyhow::Result<ExitCode> {
    super::launch::init_tracing();
    let config_path = match args.launch.config_file() {
        Some(p) if !args.launch.runs_a_command() => p.to_path_buf(),
        _ => {
            return Err(CurateError::Usage {
                message: "vigil crossval trains a run config: give CONFIG, and no command \
                          after `--`"
                    .into(),
            }
            .into());
        }
    };
    let overrides = args.launch.config_overrides();
    let config = RunConfig::load(&config_path, &overrides)?;
    if config.output_url().is_some() {
        return Err(CurateError::Usage {
            message: "vigil crossval writes fold files beside its run directory: \
                      run.output_dir must be a local directory"
                .into(),
        }
        .into());
    }
    let root = absolute(&config.output_dir())?;
    std::fs::create_dir_all(root.join("folds"))
        .with_context(|| format!("creating {}", root.display()))?;
    let data = vigil_data::localize(&config.data, &root.join("data-cache"))?.0;
    let labels = config.model.labels.clone();
    let train_file = absolute(Path::new(&data.train))?;
    let load = LoadOptions::from_section(&data)?;
    let (ds, report) = Dataset::load_file(&train_file, &labels, Split::Train, &load)?;
    if report.skipped() > 0 {
        eprintln!("vigil crossval: {}", report.summary());
    }
    let group_field = match &args.group_by {
        None => None,
        Some(g) => Some(g.strip_prefix("meta.").ok_or_else(|| CurateError::Usage {
            message: format!("--group-by '{g}': expected meta.FIELD"),
        })?),
    };
    let rows = folds::fold_rows(&ds, group_field)?;
    let k = args.folds as usize;
    let seed = args.fold_seed.unwrap_or(config.run.seed);
    let assignment = folds::assign(&rows, k, seed)?;
    eprintln!(
        "vigil crossval: {} rows in {} groups -> {k} folds of {:?} rows (seed {seed})",
        rows.len(),
        assignment.groups,
        assignment.rows
    );
    write_assignment(&root, &ds, &assignment, seed, args.group_by.as_deref())?;
    let text = std::fs::read_to_string(&train_file)
        .with_context(|| format!("reading {}", train_file.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let image_root = absolute(ds.image_root())?;
    for f in 0..k {
        let fold_dir = root.join(format!("fold-{f}"));
        if fold_dir.join(HELDOUT).is_file() {
            eprintln!("vigil crossval: fold {f}: done");
            continue;
        }
        let (train, val) = write_fold_files(&root, f, &ds, &assignment, &lines)?;
        eprintln!("vigil crossval: fold {f}: training on {} rows", {
            ds.len() - assignment.rows[f]
        });
        let mut extra = vec![
            format!("data.train={}", train.display()),
            format!("data.val={}", val.display()),
            format!("data.image_root={}", image_root.display()),
            format!("run.output_dir={}", fold_dir.display()),
        ];
        extra.push(feature_cache_search(&config, &root, k, f)?);
        if args.export_folds {
            extra.push(format!("export.dir={}", fold_dir.join("export").display()));
        } else {
            extra.push("export.dir=null".into());
        }
        let code = super::launch::supervised(&args.launch.with_overrides(extra))?;
        if code != 0 {
            eprintln!("vigil crossval: fold {f} ended with exit code {code}; run again to resume");
            return Ok(ExitCode::from(code));
        }
        let scores = last_scores(&fold_dir)?;
        std::fs::copy(&scores, fold_dir.join(".heldout.tmp"))
            .and_then(|_| std::fs::rename(fold_dir.join(".heldout.tmp"), fold_dir.join(HELDOUT)))
            .with_context(|| format!("recording fold {f} as done in {}", fold_dir.display()))?;
    }
    let per_fold = (0..k)
        .map(|f| {
            let path = root.join(format!("fold-{f}")).join(HELDOUT);
            ScoredRows::read(&path, &labels).with_context(|| format!("reading {}", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ids: Vec<String> = ds.examples().iter().map(|e| e.id.clone()).collect();
    let (labels, mut oof) = folds::join_out_of_fold(&ids, &assignment, &per_fold)?;
    // The held-out files number their own lines; the scores name the training file's.
    for (r, e) in oof.iter_mut().zip(ds.examples()) {
        r.row.line = e.line;
    }
    let oof_path = root.join("oof.jsonl");
    write_atomic(&oof_path, folds::oof_jsonl(&labels, &oof).as_bytes())
        .with_context(|| format!("writing {}", oof_path.display()))?;
    let pooled = EvalReport::compute(
        &ScoredRows {
            labels: labels.clone(),
            rows: oof.iter().map(|r| r.row.clone()).collect(),
        }
        .scores(),
    );
    let fold_reports: Vec<EvalReport> = per_fold
        .iter()
        .map(|s| EvalReport::compute(&s.scores()))
        .collect();
    let summary = summary_json(&config, &assignment, seed, &args, &pooled, &fold_reports);
    let summary_path = root.join("crossval.json");
    write_atomic(
        &summary_path,
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )
    .with_context(|| format!("writing {}", summary_path.display()))?;
    print!("{}", summary_table(&fold_reports, &pooled));
    write_tensorboard(&root, &fold_reports, &pooled)?;
    eprintln!(
        "vigil crossval: out-of-fold scores of {} rows -> {}",
        oof.len(),
        oof_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `train.feature_cache_search` for fold `f`: the config's own directories, then
/// every other fold's `feature-cache/`. A frozen tower's features depend on the
/// tower and the row only, and fold 0's two tables hold every row, so the later
/// folds gather theirs instead of computing them (a JSON list: valid YAML for
/// any path).
fn feature_cache_search(
    config: &RunConfig,
    root: &Path,
    k: usize,
    f: usize,
) -> anyhow::Result<String> {
    let mut dirs = config.train.feature_cache_search.clone();
    dirs.extend((0..k).filter(|&g| g != f).map(|g| {
        root.join(format!("fold-{g}"))
            .join("feature-cache")
            .display()
            .to_string()
    }));
    Ok(format!(
        "train.feature_cache_search={}",
        serde_json::to_string(&dirs)?
    ))
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
}

/// `folds.json`: which fold each row went to, for reviewers and for tests.
fn write_assignment(
    root: &Path,
    ds: &Dataset,
    a: &Folds,
    seed: u64,
    group_by: Option<&str>,
) -> anyhow::Result<()> {
    let labels = ds.labels();
    let folds: Vec<serde_json::Value> = (0..a.k)
        .map(|f| {
            json!({
                "fold": f,
                "rows": a.rows[f],
                "positives": labels.iter().zip(&a.positives[f]).map(|(l, n)| (l.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    let rows: Vec<serde_json::Value> = ds
        .examples()
        .iter()
        .zip(&a.fold_of)
        .map(|(e, f)| json!({"id": e.id, "fold": f}))
        .collect();
    let v = json!({
        "k": a.k,
        "seed": seed,
        "group_by": group_by,
        "train": ds.file(),
        "groups": a.groups,
        "folds": folds,
        "rows": rows,
    });
    let path = root.join("folds.json");
    write_atomic(&path, serde_json::to_string_pretty(&v)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes fold `f`'s training and held-out files (unchanged when already equal).
fn write_fold_files(
    root: &Path,
    f: usize,
    ds: &Dataset,
    a: &Folds,
    lines: &[&str],
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut train = String::new();
    let mut val = String::new();
    for (e, &fold) in ds.examples().iter().zip(&a.fold_of) {
        let out = if fold == f { &mut val } else { &mut train };
        out.push_str(lines[e.line - 1]);
        out.push('\n');
    }
    let dir = root.join("folds");
    let mut paths = Vec::new();
    for (split, text) in [("train", train), ("val", val)] {
        let path = dir.join(format!("fold-{f}.{split}.jsonl"));
        if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
            write_atomic(&path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        paths.push(path);
    }
    let val = paths.pop().expect("two paths");
    Ok((paths.pop().expect("two paths"), val))
}

/// The scores of a fold's last evaluation: `eval/step-<S>.scores.jsonl` with the
/// largest S.
fn last_scores(fold_dir: &Path) -> anyhow::Result<PathBuf> {
    let eval = fold_dir.join("eval");
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(&eval).with_context(|| format!("reading {}", eval.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let step = name
            .strip_prefix("step-")
            .and_then(|s| s.strip_suffix(".scores.jsonl"))
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(step) = step
            && best.as_ref().is_none_or(|(b, _)| step > *b)
        {
            best = Some((step, path));
        }
    }
    best.map(|(_, p)| p).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: the fold finished without an evaluation of its held-out rows",
            eval.display()
        )
    })
}

fn summary_json(
    config: &RunConfig,
    a: &Folds,
    seed: u64,
    args: &CrossvalArgs,
    pooled: &EvalReport,
    folds: &[EvalReport],
) -> serde_json::Value {
    let stat = |name: &str| {
        let v: Vec<f64> = folds.iter().filter_map(|r| r.metric(name)).collect();
        if v.is_empty() {
            return serde_json::Value::Null;
        }
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        json!({"mean": mean, "std": var.sqrt(), "folds": v})
    };
    json!({
        "k": a.k,
        "seed": seed,
        "group_by": args.group_by,
        "labels": config.model.labels,
        "multi_class": config.model.task == Task::MultiClass,
        "rows": a.fold_of.len(),
        "groups": a.groups,
        "oof": "oof.jsonl",
        "folds": folds.iter().enumerate().map(|(f, r)| json!({
            "fold": f,
            "rows": a.rows[f],
            "run_dir": format!("fold-{f}"),
            "heldout": r,
        })).collect::<Vec<_>>(),
        "across_folds": {
            "val/macro_auroc": stat("val/macro_auroc"),
            "val/macro_f1": stat("val/macro_f1"),
            "val/macro_auprc": stat("val/macro_auprc"),
        },
        "pooled_out_of_fold": pooled,
    })
}

/// The per-fold and pooled table the command prints and TensorBoard shows.
fn summary_table(folds: &[EvalReport], pooled: &EvalReport) -> String {
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let line = |name: &str, r: &EvalReport| {
        format!(
            "{name:>4} {:>6}  {:>11}  {:>8}  {:>11}\n",
            r.rows,
            fmt(r.metric("val/macro_auroc")),
            fmt(r.metric("val/macro_f1")),
            fmt(r.metric("val/macro_auprc"))
        )
    };
    let mut out = String::from("fold   rows  macro_auroc  macro_f1  macro_auprc\n");
    for (f, r) in folds.iter().enumerate() {
        out.push_str(&line(&f.to_string(), r));
    }
    out.push_str(&line("oof", pooled));
    out
}

/// The summary as TensorBoard events in `<root>/tensorboard`, beside the folds' own
/// runs (`tensorboard --logdir <root>` shows them together): each fold's held-out
/// metrics as `crossval/<metric>` at step = the fold, the pooled out-of-fold ones as
/// `crossval_oof/<metric>` at step 0, and the table as text. A rerun supersedes the
/// earlier events (a session start at step 0).
fn write_tensorboard(root: &Path, folds: &[EvalReport], pooled: &EvalReport) -> anyhow::Result<()> {
    use vigil_tensorboard::{MetricLogger, TensorBoardLogger, WriterOptions};
    let dir = root.join("tensorboard");
    let mut tb = TensorBoardLogger::open(&dir, WriterOptions::default())
        .with_context(|| format!("opening {}", dir.display()))?;
    tb.session_start(0)?;
    for (f, r) in folds.iter().enumerate() {
        let tags: Vec<(String, f64)> = r
            .scalars()
            .into_iter()
            .map(|(name, v)| (format!("crossval/{}", name.trim_start_matches("val/")), v))
            .collect();
        let values: Vec<(&str, f64)> = tags.iter().map(|(t, v)| (t.as_str(), *v)).collect();
        tb.scalars(f as u64, &values)?;
    }
    let tags: Vec<(String, f64)> = pooled
        .scalars()
        .into_iter()
        .map(|(name, v)| {
            (
                format!("crossval_oof/{}", name.trim_start_matches("val/")),
                v,
            )
        })
        .collect();
    let values: Vec<(&str, f64)> = tags.iter().map(|(t, v)| (t.as_str(), *v)).collect();
    tb.scalars(0, &values)?;
    tb.text(
        "crossval/summary",
        0,
        &vigil_tensorboard::code_block("text", &summary_table(folds, pooled)),
    )?;
    tb.flush()?;
    Ok(())
}
