//! Naming the rank that really failed, from what every survivor saw.
//!
//! In a ring only the neighbours of a dead or stalled rank see it directly; everybody else
//! sees a cascade (its own neighbour tearing the ring down), or times out at about the same
//! moment. So on failure each rank publishes what it saw under `fault/<rank>` in the
//! store *before* tearing its links down, waits a short grace period, and reads every
//! report. The culprit is a rank that somebody blames and that filed no report itself — a
//! dead or stopped process cannot write one. Because reports precede teardown, a cascade
//! victim always finds the report of the rank that caused its cascade. Reports are keyed by
//! rank, not by operation: neighbours may fail in different operations (a fast rank can
//! already be in the next one), and a group fails only once per restart generation (it is
//! poisoned afterwards; the store prefix carries the generation). This function is the
//! pure part: reports in, verdict out.

/// What one rank observed about one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The peer's connection closed or its process is gone.
    Lost(usize),
    /// The peer did not respond in time.
    Stalled(usize),
}

impl Observation {
    /// The peer observed.
    pub fn rank(self) -> usize {
        match self {
            Observation::Lost(r) | Observation::Stalled(r) => r,
        }
    }

    /// Encode for the store.
    pub fn encode(self) -> String {
        match self {
            Observation::Lost(r) => format!("lost {r}"),
            Observation::Stalled(r) => format!("stalled {r}"),
        }
    }

    /// Decode from the store; `None` for anything unexpected.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(b).ok()?;
        let (kind, rank) = s.split_once(' ')?;
        let rank = rank.parse().ok()?;
        match kind {
            "lost" => Some(Observation::Lost(rank)),
            "stalled" => Some(Observation::Stalled(rank)),
            _ => None,
        }
    }
}

/// Pick the culprit from `reports[rank]` (`None`: that rank filed nothing). Falls back to
/// `mine` when the reports do not single anybody out.
pub fn culprit(reports: &[Option<Observation>], mine: Observation) -> Observation {
    let silent_and_blamed = |o: &Observation| {
        let r = o.rank();
        r < reports.len() && reports[r].is_none()
    };
    let blamed: Vec<Observation> = reports
        .iter()
        .flatten()
        .copied()
        .filter(silent_and_blamed)
        .collect();
    if blamed.is_empty() {
        return mine;
    }
    // Prefer the rank blamed most; among equals the lowest rank, so all survivors agree.
    // A "lost" verdict beats "stalled" for the same rank (it is the stronger evidence).
    let mut best: Option<(usize, usize)> = None; // (count, rank)
    for o in &blamed {
        let count = blamed.iter().filter(|b| b.rank() == o.rank()).count();
        let better = match best {
            None => true,
            Some((c, r)) => count > c || (count == c && o.rank() < r),
        };
        if better {
            best = Some((count, o.rank()));
        }
    }
    let Some((_, rank)) = best else { return mine };
    if blamed.contains(&Observation::Lost(rank)) {
        Observation::Lost(rank)
    } else {
        Observation::Stalled(rank)
    }
}

#[cfg(test)]
mod tests {
    use super::Observation::{Lost, Stalled};
    use super::*;

    #[test]
    fn dead_rank_is_named_by_cascade_victims_too() {
        // Ring of 4, rank 2 died: rank 3 saw EOF from 2, rank 1 a broken pipe to 2, rank 0 the
        // cascade from 3.
        let reports = [Some(Lost(3)), Some(Lost(2)), None, Some(Lost(2))];
        assert_eq!(culprit(&reports, Lost(3)), Lost(2));
    }

    #[test]
    fn stopped_rank_is_found_even_if_others_time_out_on_their_neighbours() {
        let reports = [Some(Stalled(3)), Some(Stalled(0)), None, Some(Stalled(2))];
        assert_eq!(culprit(&reports, Stalled(3)), Stalled(2));
    }

    #[test]
    fn falls_back_to_own_observation() {
        let reports = [Some(Stalled(1)), Some(Stalled(0))];
        assert_eq!(culprit(&reports, Stalled(1)), Stalled(1));
        assert_eq!(culprit(&[], Lost(1)), Lost(1));
    }

    #[test]
    fn encoding_round_trips() {
        for o in [Lost(0), Stalled(17)] {
            assert_eq!(Observation::decode(o.encode().as_bytes()), Some(o));
        }
        assert_eq!(Observation::decode(b"gone 1"), None);
    }
}
