//! What a run logged besides its evaluations: `train/loss` in its TensorBoard
//! event files (`tensorboard/`) and the rows data loading skipped
//! (`data/rejects.jsonl`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{malformed, read};
use crate::error::ReportError;
use vigil_eval::tags;
use vigil_tensorboard::proto::event::What;
use vigil_tensorboard::proto::summary::value::Value as SummaryValue;
use vigil_tensorboard::proto::{SessionStatus, event};
use vigil_tensorboard::{event_files, read_event_file};

/// `train/loss` over steps from a run's event files, honouring `SessionLog
/// START` markers the way TensorBoard does: a restart at step S drops the points
/// at or after S that an earlier attempt logged. No directory: no points.
pub fn train_loss(tb_dir: &Path) -> Result<Vec<(u64, f64)>, ReportError> {
    if !tb_dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut points: BTreeMap<u64, f64> = BTreeMap::new();
    for file in event_files(tb_dir)? {
        for ev in read_event_file(&file)? {
            let step = u64::try_from(ev.step).unwrap_or(0);
            match ev.what {
                Some(What::SessionLog(s)) if s.status == SessionStatus::Start as i32 => {
                    points.retain(|&k, _| k < step);
                }
                Some(event::What::Summary(summary)) => {
                    for v in summary.value {
                        if v.tag == tags::TRAIN_LOSS
                            && let Some(SummaryValue::SimpleValue(x)) = v.value
                        {
                            points.insert(step, f64::from(x));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(points.into_iter().collect())
}

/// Skipped rows by `(split, kind)` from a run's `data/rejects.jsonl`; no file: none.
pub fn skipped_rows(path: &Path) -> Result<BTreeMap<(String, String), usize>, ReportError> {
    let mut counts = BTreeMap::new();
    if !path.exists() {
        return Ok(counts);
    }
    for (i, line) in read(path)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| malformed(path, format!("line {}: {e}", i + 1)))?;
        let field = |k: &str| v[k].as_str().unwrap_or("?").to_string();
        *counts.entry((field("split"), field("kind"))).or_insert(0) += 1;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_tensorboard::{MetricLogger, TensorBoardLogger, WriterOptions};

    #[test]
    fn train_loss_drops_what_a_crashed_attempt_logged_past_the_resume() {
        let dir = tempfile::tempdir().unwrap();
        let tb = dir.path().join("tensorboard");
        {
            let mut first = TensorBoardLogger::open(&tb, WriterOptions::default()).unwrap();
            first.session_start(0).unwrap();
            for (s, l) in [(5, 0.9), (10, 0.8), (15, 0.7)] {
                first
                    .scalars(s, &[(tags::TRAIN_LOSS, l), ("train/lr", 1.0)])
                    .unwrap();
            }
            first.flush().unwrap();
        }
        {
            // Resumed from the step-10 checkpoint: step 15 is logged again.
            let mut second = TensorBoardLogger::open(&tb, WriterOptions::default()).unwrap();
            second.session_start(11).unwrap();
            for (s, l) in [(15, 0.6), (20, 0.5)] {
                second.scalars(s, &[(tags::TRAIN_LOSS, l)]).unwrap();
            }
            second.flush().unwrap();
        }
        let pts: Vec<(u64, f32)> = train_loss(&tb)
            .unwrap()
            .into_iter()
            .map(|(s, l)| (s, l as f32))
            .collect();
        assert_eq!(pts, vec![(5, 0.9), (10, 0.8), (15, 0.6), (20, 0.5)]);
        assert!(train_loss(&dir.path().join("none")).unwrap().is_empty());
    }

    #[test]
    fn skipped_rows_are_counted_by_split_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rejects.jsonl");
        std::fs::write(
            &path,
            "{\"split\":\"train\",\"kind\":\"no_content\"}\n\n{\"split\":\"train\",\"kind\":\"no_content\"}\n{\"split\":\"val\",\"kind\":\"malformed_json\"}\n",
        )
        .unwrap();
        let counts = skipped_rows(&path).unwrap();
        assert_eq!(counts[&("train".to_string(), "no_content".to_string())], 2);
        assert_eq!(
            counts[&("val".to_string(), "malformed_json".to_string())],
            1
        );
        assert!(skipped_rows(&dir.path().join("absent")).unwrap().is_empty());
        std::fs::write(&path, "not json\n").unwrap();
        assert!(
            skipped_rows(&path)
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
    }
}
