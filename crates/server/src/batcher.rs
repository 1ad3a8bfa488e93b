//! Dynamic batching, as Triton's `dynamic_batching` does it: requests wait in one
//! bounded queue; a worker takes the waiting requests together once they fill
//! `--max-batch` rows or the oldest has waited `--max-delay-ms`.
//!
//! The decisions are pure functions ([`admit`], [`decide`], [`take`]) tested
//! here; [`crate::engine`] holds the queue (a mutex and a condition variable) and
//! calls them. A request is never split across batches, and a batch never mixes
//! versions: requests keep the version they were admitted on.

use std::time::Duration;

/// The queue is full: answer 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded {
    /// Requests waiting.
    pub queued: usize,
}

/// Whether one more request may wait behind `queued` others.
pub fn admit(queued: usize, bound: usize) -> Result<(), Overloaded> {
    if queued >= bound {
        Err(Overloaded { queued })
    } else {
        Ok(())
    }
}

/// What a free worker does with the queue's front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Take a batch now.
    Flush,
    /// Wait this long for more rows (or until woken by a new request).
    Wait(Duration),
}

/// `rows` rows (of the front request's version) are waiting, the oldest for
/// `waited`: flush when they fill `max_batch` or the delay is spent.
pub fn decide(rows: usize, waited: Duration, max_batch: usize, max_delay: Duration) -> Decision {
    if rows >= max_batch || waited >= max_delay {
        Decision::Flush
    } else {
        Decision::Wait(max_delay - waited)
    }
}

/// How many requests from the front (with `rows[i]` rows each) make one batch:
/// as many as fit in `max_batch` rows, and always at least the first (a request
/// larger than the batch runs alone).
pub fn take(rows: &[usize], max_batch: usize) -> usize {
    let mut total = 0;
    let mut count = 0;
    for &r in rows {
        if count > 0 && total + r > max_batch {
            break;
        }
        total += r;
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_queue_bound_rejects_the_request_past_it() {
        assert_eq!(admit(0, 1), Ok(()));
        assert_eq!(admit(7, 8), Ok(()));
        assert_eq!(admit(8, 8), Err(Overloaded { queued: 8 }));
    }

    #[test]
    fn flush_on_a_full_batch_or_a_spent_delay() {
        assert_eq!(decide(32, Duration::ZERO, 32, 5 * MS), Decision::Flush);
        assert_eq!(decide(3, 5 * MS, 32, 5 * MS), Decision::Flush);
        assert_eq!(decide(3, 2 * MS, 32, 5 * MS), Decision::Wait(3 * MS));
        // Without a delay (no dynamic batching) whatever waits goes at once.
        assert_eq!(
            decide(1, Duration::ZERO, 32, Duration::ZERO),
            Decision::Flush
        );
    }

    #[test]
    fn batches_take_whole_requests_up_to_the_row_bound() {
        assert_eq!(take(&[4, 4, 4], 8), 2);
        assert_eq!(take(&[40, 1], 8), 1, "an oversized request runs alone");
        assert_eq!(take(&[1, 1, 1], 32), 3);
        assert_eq!(take(&[1, 1], 1), 1, "--max-batch 1: one request at a time");
        assert_eq!(take(&[], 8), 0);
    }
}
