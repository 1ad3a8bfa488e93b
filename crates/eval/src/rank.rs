//! Decisions and orderings over scored rows, as pure functions.
//!
//! - **Decisions** at the shipped thresholds: multi-label models flag label `l`
//!   when `p_l >= threshold_l` (the same rule the evaluation report and the
//!   F1-tuned thresholds use); multi-class (softmax) models flag exactly the
//!   argmax label — its probabilities sum to one, so per-label thresholds would
//!   flag zero or several classes.
//! - **Review queue** (`--rank-by LABEL`): rows by that label's probability,
//!   highest first, so reviewers see the likeliest violations first.
//! - **Annotation queue** (`--rank-by uncertainty`): rows by their *margin*,
//!   smallest first. Multi-label: `min over labels of |p_l - threshold_l|`, the
//!   distance to the nearest decision boundary (a label an annotator's answer
//!   would most likely flip). Multi-class: `p_top1 - p_top2`, the classic
//!   margin-sampling score.
//!
//! Ties keep input order, so the same input always gives the same queue.

use vigil_config::Task;

/// `--rank-by` names a label the model does not have.
#[derive(Debug, thiserror::Error)]
#[error(
    "--rank-by {given}: the model has no label '{given}' (labels: {}; or 'uncertainty')",
    labels.join(", ")
)]
pub struct UnknownLabel {
    /// The value given.
    pub given: String,
    /// The model's labels.
    pub labels: Vec<String>,
}

/// What `--rank-by` sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankBy {
    /// A label's probability, descending (index into the model's labels).
    Label(usize),
    /// The margin to the decision boundary, ascending.
    Uncertainty,
}

impl RankBy {
    /// Parses `uncertainty` or a label name of `labels`.
    pub fn parse(given: &str, labels: &[String]) -> Result<Self, UnknownLabel> {
        if let Some(i) = labels.iter().position(|l| l == given) {
            return Ok(Self::Label(i));
        }
        if given == "uncertainty" {
            return Ok(Self::Uncertainty);
        }
        Err(UnknownLabel {
            given: given.to_string(),
            labels: labels.to_vec(),
        })
    }
}

/// Decisions of one row's probabilities `probs` (one per label).
pub fn decisions(probs: &[f32], thresholds: &[f32], task: Task) -> Vec<bool> {
    match task {
        Task::MultiLabel => probs.iter().zip(thresholds).map(|(p, t)| p >= t).collect(),
        Task::MultiClass => {
            let top = argmax(probs);
            (0..probs.len()).map(|l| Some(l) == top).collect()
        }
    }
}

/// The uncertainty margin of one row (smaller is less certain).
pub fn margin(probs: &[f32], thresholds: &[f32], task: Task) -> f32 {
    match task {
        Task::MultiLabel => probs
            .iter()
            .zip(thresholds)
            .map(|(p, t)| (p - t).abs())
            .fold(f32::INFINITY, f32::min),
        Task::MultiClass => {
            let mut sorted: Vec<f32> = probs.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            match sorted.as_slice() {
                [a, b, ..] => a - b,
                [a] => *a,
                [] => f32::INFINITY,
            }
        }
    }
}

/// The index of the largest value (the first on ties); `None` when empty.
fn argmax(values: &[f32]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, v) in values.iter().enumerate() {
        if best.is_none_or(|b| *v > values[b]) {
            best = Some(i);
        }
    }
    best
}

/// Row order for `by` over row-major probabilities `[rows, labels]`: indices of
/// the rows, ranked, truncated to `top`. Without `by`, input order.
pub fn order(
    probs: &[f32],
    labels: usize,
    thresholds: &[f32],
    task: Task,
    by: Option<RankBy>,
    top: Option<usize>,
) -> Vec<usize> {
    let labels = labels.max(1);
    let rows = probs.len() / labels;
    let row = |r: usize| &probs[r * labels..(r + 1) * labels];
    let mut idx: Vec<usize> = (0..rows).collect();
    match by {
        None => {}
        Some(RankBy::Label(l)) => {
            // Highest first; a NaN (never from a healthy model) goes last.
            let key = |r: usize| {
                let p = row(r)[l];
                if p.is_nan() { f32::NEG_INFINITY } else { p }
            };
            idx.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
        }
        Some(RankBy::Uncertainty) => {
            let key = |r: usize| {
                let m = margin(row(r), thresholds, task);
                if m.is_nan() { f32::INFINITY } else { m }
            };
            idx.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
        }
    }
    if let Some(k) = top {
        idx.truncate(k);
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["hate".into(), "spam".into()]
    }

    #[test]
    fn rank_by_parses_labels_and_uncertainty_and_lists_labels_otherwise() {
        assert_eq!(RankBy::parse("spam", &labels()).unwrap(), RankBy::Label(1));
        assert_eq!(
            RankBy::parse("uncertainty", &labels()).unwrap(),
            RankBy::Uncertainty
        );
        let err = RankBy::parse("spma", &labels()).unwrap_err();
        assert!(err.to_string().contains("labels: hate, spam"), "{err}");
    }

    #[test]
    fn multi_label_decisions_use_each_threshold_inclusively() {
        let d = decisions(&[0.3, 0.3], &[0.3, 0.31], Task::MultiLabel);
        assert_eq!(d, vec![true, false]);
    }

    #[test]
    fn multi_class_decisions_are_the_argmax_whatever_the_thresholds() {
        let d = decisions(&[0.2, 0.5, 0.3], &[0.9, 0.9, 0.9], Task::MultiClass);
        assert_eq!(d, vec![false, true, false]);
        // Ties go to the first label.
        let d = decisions(&[0.5, 0.5], &[0.5, 0.5], Task::MultiClass);
        assert_eq!(d, vec![true, false]);
    }

    #[test]
    fn margins() {
        let m = margin(&[0.9, 0.35], &[0.5, 0.3], Task::MultiLabel);
        assert!((m - 0.05).abs() < 1e-6);
        let m = margin(&[0.6, 0.1, 0.3], &[0.5; 3], Task::MultiClass);
        assert!((m - 0.3).abs() < 1e-6);
    }

    #[test]
    fn review_queue_is_by_label_probability_descending_ties_in_input_order() {
        // rows: (hate, spam)
        let probs = [0.1, 0.9, 0.8, 0.2, 0.5, 0.5, 0.8, 0.0];
        let o = order(
            &probs,
            2,
            &[0.5, 0.5],
            Task::MultiLabel,
            Some(RankBy::Label(0)),
            None,
        );
        assert_eq!(o, vec![1, 3, 2, 0]);
        let o = order(
            &probs,
            2,
            &[0.5, 0.5],
            Task::MultiLabel,
            Some(RankBy::Label(1)),
            Some(2),
        );
        assert_eq!(o, vec![0, 2]);
    }

    #[test]
    fn annotation_queue_is_by_distance_to_the_nearest_threshold() {
        let t = [0.4, 0.6];
        // margins: row0 min(|0.1-0.4|, |0.9-0.6|) = 0.3; row1 min(0.05, 0.5) = 0.05;
        // row2 min(0.4, 0.01) = 0.01; row3 min(0.2, 0.2) = 0.2.
        let probs = [0.1, 0.9, 0.45, 0.1, 0.8, 0.59, 0.2, 0.4];
        let o = order(
            &probs,
            2,
            &t,
            Task::MultiLabel,
            Some(RankBy::Uncertainty),
            None,
        );
        assert_eq!(o, vec![2, 1, 3, 0]);
        let o = order(
            &probs,
            2,
            &t,
            Task::MultiLabel,
            Some(RankBy::Uncertainty),
            Some(1),
        );
        assert_eq!(o, vec![2]);
    }

    #[test]
    fn without_ranking_top_keeps_the_first_rows_in_input_order() {
        let probs = [0.1, 0.9, 0.8];
        assert_eq!(
            order(&probs, 1, &[0.5], Task::MultiLabel, None, None),
            vec![0, 1, 2]
        );
        assert_eq!(
            order(&probs, 1, &[0.5], Task::MultiLabel, None, Some(2)),
            vec![0, 1]
        );
        assert_eq!(
            order(&probs, 1, &[0.5], Task::MultiLabel, None, Some(9)).len(),
            3
        );
    }

    #[test]
    fn nan_scores_go_last() {
        let probs = [f32::NAN, 0.2, 0.9];
        let o = order(
            &probs,
            1,
            &[0.5],
            Task::MultiLabel,
            Some(RankBy::Label(0)),
            None,
        );
        assert_eq!(o, vec![2, 1, 0]);
        let o = order(
            &probs,
            1,
            &[0.5],
            Task::MultiLabel,
            Some(RankBy::Uncertainty),
            None,
        );
        assert_eq!(o, vec![1, 2, 0]);
    }
}
