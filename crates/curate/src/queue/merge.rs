//! The budget policy, without I/O: ranked sources merged into one deduplicated queue.
//!
//! **Round robin by each source's own rank.** Sources take turns in a fixed order
//! (issues, uncertain, recall, compare); on its turn a source adds its best candidate
//! that is not queued yet. A candidate already in the queue, by id or by content
//! (same normalised text and same image path), does not use up the turn: its reasons
//! are added to the queued item (a content duplicate's id is listed in the item's
//! `duplicates`) and the source moves on to its next candidate. A source that runs
//! out drops out of the rotation; the queue stops at the budget or when every source
//! is exhausted. Once it stops, the candidates no turn reached still lend their
//! reasons to items already queued, so each item carries every reason any source
//! gives for it.
//!
//! Why round robin rather than one global score: the sources' scores are not on one
//! scale (a rank, a margin, a similarity, a probability difference), and a budget
//! spent entirely on the source with the most candidates would starve the others;
//! with N sources and budget B each gets about B/N of its best rows.

use std::collections::HashMap;

use super::sources::{Candidate, Ranked, Reason};

/// One queued row, before the dataset's fields are joined in.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The row's id.
    pub id: String,
    /// Every reason from every source, in the order they were met.
    pub reasons: Vec<Reason>,
    /// Other ids with the same content, folded into this item.
    pub duplicates: Vec<String>,
}

/// Merges `sources` (each best first) into at most `budget` items, in queue order.
/// `content` gives a row's content key (`None`: compare by id only).
pub fn merge(
    sources: &[Ranked],
    budget: usize,
    content: impl Fn(&str) -> Option<String>,
) -> Vec<Merged> {
    let mut q = Queue::default();
    let mut cursors = vec![0usize; sources.len()];
    'turns: while q.items.len() < budget {
        let mut added = false;
        for (s, source) in sources.iter().enumerate() {
            if q.items.len() >= budget {
                break 'turns;
            }
            while let Some(c) = source.candidates.get(cursors[s]) {
                cursors[s] += 1;
                if q.attach(c, &content) {
                    continue;
                }
                q.push(c, &content);
                added = true;
                break;
            }
        }
        if !added {
            break;
        }
    }
    for (s, source) in sources.iter().enumerate() {
        for c in &source.candidates[cursors[s]..] {
            q.attach(c, &content);
        }
    }
    q.items
}

#[derive(Default)]
struct Queue {
    items: Vec<Merged>,
    by_id: HashMap<String, usize>,
    by_content: HashMap<String, usize>,
}

impl Queue {
    /// Adds `c`'s reasons to the item it belongs to (by id, else by content); false
    /// when it belongs to none.
    fn attach(&mut self, c: &Candidate, content: &impl Fn(&str) -> Option<String>) -> bool {
        let i = match self.by_id.get(&c.id) {
            Some(&i) => i,
            None => {
                let Some(&i) = content(&c.id).and_then(|k| self.by_content.get(&k)) else {
                    return false;
                };
                self.by_id.insert(c.id.clone(), i);
                self.items[i].duplicates.push(c.id.clone());
                i
            }
        };
        self.items[i].reasons.extend(c.reasons.iter().cloned());
        true
    }

    fn push(&mut self, c: &Candidate, content: &impl Fn(&str) -> Option<String>) {
        let i = self.items.len();
        self.by_id.insert(c.id.clone(), i);
        if let Some(key) = content(&c.id) {
            self.by_content.entry(key).or_insert(i);
        }
        self.items.push(Merged {
            id: c.id.clone(),
            reasons: c.reasons.clone(),
            duplicates: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::sources::Source;
    use super::*;

    fn source(source: Source, ids: &[&str]) -> Ranked {
        Ranked {
            source,
            file: "f".into(),
            candidates: ids
                .iter()
                .enumerate()
                .map(|(i, id)| Candidate {
                    id: id.to_string(),
                    line: i + 1,
                    reasons: vec![Reason {
                        source,
                        kind: "k".into(),
                        label: None,
                        detail: format!("{} #{}", source.as_str(), i + 1),
                    }],
                })
                .collect(),
        }
    }

    fn ids(q: &[Merged]) -> Vec<&str> {
        q.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn sources_take_turns_by_their_own_rank_up_to_the_budget() {
        let s = [
            source(Source::Issues, &["i1", "i2", "i3", "i4"]),
            source(Source::Uncertain, &["u1", "u2"]),
            source(Source::Recall, &["r1"]),
        ];
        let q = merge(&s, 5, |_| None);
        assert_eq!(ids(&q), vec!["i1", "u1", "r1", "i2", "u2"]);
        // An exhausted source drops out; the rest fill the budget.
        let q = merge(&s, 100, |_| None);
        assert_eq!(ids(&q), vec!["i1", "u1", "r1", "i2", "u2", "i3", "i4"]);
        assert!(merge(&s, 0, |_| None).is_empty());
    }

    #[test]
    fn a_row_in_two_sources_is_one_item_with_both_reasons_and_costs_no_turn() {
        let s = [
            source(Source::Issues, &["a", "b"]),
            source(Source::Uncertain, &["a", "c"]),
        ];
        let q = merge(&s, 3, |_| None);
        assert_eq!(ids(&q), vec!["a", "c", "b"]);
        let sources: Vec<&str> = q[0].reasons.iter().map(|r| r.source.as_str()).collect();
        assert_eq!(sources, vec!["issues", "uncertain"]);
    }

    #[test]
    fn reasons_beyond_the_budget_still_reach_queued_items() {
        let s = [
            source(Source::Issues, &["a"]),
            source(Source::Recall, &["x", "y", "a"]),
        ];
        let q = merge(&s, 2, |_| None);
        assert_eq!(ids(&q), vec!["a", "x"]);
        assert_eq!(q[0].reasons.len(), 2);
        assert_eq!(q[0].reasons[1].detail, "recall #3");
    }

    #[test]
    fn content_duplicates_fold_into_the_first_item() {
        let s = [
            source(Source::Issues, &["a", "b"]),
            source(Source::Compare, &["a-copy", "d"]),
        ];
        let content = |id: &str| Some(id.trim_end_matches("-copy").to_string());
        let q = merge(&s, 3, content);
        assert_eq!(ids(&q), vec!["a", "d", "b"]);
        assert_eq!(q[0].duplicates, vec!["a-copy".to_string()]);
        assert_eq!(q[0].reasons.len(), 2);
    }
}
