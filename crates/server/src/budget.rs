//! [`Budget`]: the bytes of request bodies the whole server holds at once
//! (`--max-inflight-bytes`).
//!
//! `--max-body-bytes` bounds one request; without a budget across requests, N
//! clients each sending a maximum body make the server hold N of them (16 × 30 MB
//! was 516 MB of RSS). A request reserves its `Content-Length` before one byte of
//! the body is read (a chunked body reserves each chunk as it arrives); when the
//! reservation does not fit, the request is answered 503 with `Retry-After`
//! instead of buffered. The reservation is given back when the request's handler
//! finishes (the parsed rows live until then), by [`Reservation`]'s `Drop`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The server-wide budget of body bytes held.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    held: AtomicUsize,
}

/// Bytes of a [`Budget`] held by one request; released on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            held: AtomicUsize::new(0),
        })
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The budget's size.
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn take(&self, bytes: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&n| n <= self.limit)
            })
            .is_ok()
    }

    /// Reserves `bytes`, or None when they do not fit beside what is held.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        self.take(bytes).then(|| Reservation {
            budget: self.clone(),
            bytes,
        })
    }
}

impl Reservation {
    /// Grows the reservation to `total` bytes (no-op when it holds that many);
    /// false, holding what it held, when the rest does not fit.
    pub fn grow_to(&mut self, total: usize) -> bool {
        if total <= self.bytes {
            return true;
        }
        if self.budget.take(total - self.bytes) {
            self.bytes = total;
            true
        } else {
            false
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_the_budget_and_are_given_back_on_drop() {
        let b = Budget::new(100);
        let a = b.reserve(60).unwrap();
        assert!(b.reserve(41).is_none(), "60 + 41 > 100");
        let mut c = b.reserve(40).unwrap();
        assert_eq!(b.held(), 100);
        assert!(!c.grow_to(41));
        assert_eq!((c.bytes(), b.held()), (40, 100));
        drop(a);
        assert!(c.grow_to(90));
        assert!(c.grow_to(10), "shrinking is a no-op");
        assert_eq!(b.held(), 90);
        drop(c);
        assert_eq!(b.held(), 0);
        assert!(b.reserve(usize::MAX).is_none(), "no overflow");
        assert!(b.reserve(0).is_some());
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_budget() {
        let b = Budget::new(1000);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..2000 {
                        if let Some(r) = b.reserve(300) {
                            assert!(b.held() <= 1000);
                            drop(r);
                        }
                    }
                });
            }
        });
        assert_eq!(b.held(), 0);
    }
}
