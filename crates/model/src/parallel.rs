//! An ordered thread pool for inference: items in, `work` on `threads` threads,
//! results handed to the caller in input order.
//!
//! Inference commands (`vigil embed`, `predict`, `eval`, the feature-cache build)
//! run the model on one batch at a time, and the Flex backend computes each
//! batch on one thread. Running whole batches side by side on every core is the
//! parallelism that needs no change to the kernels and keeps every batch's
//! arithmetic exactly what it is on one thread (results do not depend on the
//! thread count). Training workers do not use this: a rank keeps one core.
//!
//! The producer (usually the data loader, which need not be `Send`) runs on the
//! calling thread, and so does the consumer: the caller writes results in order
//! without locking. At most `2 × threads` items are in flight, so memory stays
//! bounded for any input size. The first error in input order (from the
//! producer, a worker or the consumer) stops the run and is returned after every
//! earlier item's result has been handed over, as on one thread; results
//! computed after it are dropped.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// The number of threads `--threads` defaults to: every core the process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Runs `work(state, item)` for every item of `items` on one thread per element
/// of `states` (each thread owns its state: a clone of the model, say), and calls
/// `each` with the results in input order. With one state (or none) everything
/// runs on the calling thread, in order, without spawning.
pub fn ordered_map<T, R, S, E>(
    mut states: Vec<S>,
    items: impl IntoIterator<Item = Result<T, E>>,
    work: impl Fn(&mut S, T) -> Result<R, E> + Sync,
    mut each: impl FnMut(R) -> Result<(), E>,
) -> Result<(), E>
where
    T: Send,
    R: Send,
    E: Send,
    S: Send,
{
    let threads = states.len();
    if threads <= 1 {
        let mut state = states.pop();
        for item in items {
            let item = item?;
            let r = match &mut state {
                Some(s) => work(s, item)?,
                None => unreachable!("ordered_map needs at least one state"),
            };
            each(r)?;
        }
        return Ok(());
    }
    let (work_tx, work_rx) = mpsc::channel::<(usize, T)>();
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = mpsc::channel::<(usize, Done<R, E>)>();
    std::thread::scope(|scope| {
        for mut state in states {
            let (rx, tx) = (work_rx.clone(), done_tx.clone());
            let work = &work;
            scope.spawn(move || {
                loop {
                    // The lock is held only to take the next item.
                    let next = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((i, item)) = next else { return };
                    // A panic is handed to the calling thread (which re-raises it)
                    // rather than leaving it waiting for this item forever.
                    let done = catch_unwind(AssertUnwindSafe(|| work(&mut state, item)));
                    if tx.send((i, done)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let result = drive(threads, items, &work_tx, &done_rx, &mut each);
        // Closing the queue ends the workers; the scope joins them.
        drop(work_tx);
        result
    })
}

/// A worker's outcome for one item: its result, or the panic it raised.
type Done<R, E> = std::thread::Result<Result<R, E>>;

/// The calling thread's part: feed the queue, keep `2 × threads` in flight, hand
/// finished results to `each` in order.
fn drive<T, R, E>(
    threads: usize,
    items: impl IntoIterator<Item = Result<T, E>>,
    work_tx: &mpsc::Sender<(usize, T)>,
    done_rx: &mpsc::Receiver<(usize, Done<R, E>)>,
    each: &mut impl FnMut(R) -> Result<(), E>,
) -> Result<(), E> {
    // Results (errors too) wait here until every earlier item has been handed
    // over, so an error stops the run exactly where it does on one thread.
    let mut pending: BTreeMap<usize, Result<R, E>> = BTreeMap::new();
    let (mut sent, mut next) = (0usize, 0usize);
    let mut receive =
        |pending: &mut BTreeMap<usize, Result<R, E>>, next: &mut usize| -> Result<(), E> {
            let (i, r) = done_rx
                .recv()
                .expect("a worker only exits once the queue is closed");
            pending.insert(i, r.unwrap_or_else(|panic| resume_unwind(panic)));
            while let Some(r) = pending.remove(next) {
                *next += 1;
                each(r?)?;
            }
            Ok(())
        };
    for item in items {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                // The items before a producer error are finished first.
                while next < sent {
                    receive(&mut pending, &mut next)?;
                }
                return Err(e);
            }
        };
        if work_tx.send((sent, item)).is_err() {
            unreachable!("workers live until the queue is closed");
        }
        sent += 1;
        while sent - next >= 2 * threads {
            receive(&mut pending, &mut next)?;
        }
    }
    while next < sent {
        receive(&mut pending, &mut next)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn squares(threads: usize, n: usize) -> Vec<usize> {
        let mut out = Vec::new();
        ordered_map::<_, _, _, String>(
            vec![0usize; threads],
            (0..n).map(Ok),
            |calls, i| {
                *calls += 1;
                // Later items finish first, so reordering is exercised.
                std::thread::sleep(std::time::Duration::from_micros(((n - i) % 7) as u64 * 200));
                Ok(i * i)
            },
            |r| {
                out.push(r);
                Ok(())
            },
        )
        .expect("no errors");
        out
    }

    #[test]
    fn results_come_back_in_input_order_for_any_thread_count() {
        let want: Vec<usize> = (0..50).map(|i| i * i).collect();
        for threads in [1, 2, 3, 8] {
            assert_eq!(squares(threads, 50), want, "threads {threads}");
        }
        assert!(squares(4, 0).is_empty());
    }

    #[test]
    fn the_first_error_stops_the_run() {
        for threads in [1, 3] {
            let mut seen = Vec::new();
            let err = ordered_map(
                vec![(); threads],
                (0..100usize).map(Ok),
                |_, i| {
                    if i == 10 {
                        Err(format!("item {i}"))
                    } else {
                        Ok(i)
                    }
                },
                |r| {
                    seen.push(r);
                    Ok(())
                },
            )
            .expect_err("item 10 fails");
            assert_eq!(err, "item 10");
            assert_eq!(seen, (0..10).collect::<Vec<_>>(), "threads {threads}");
            // A producer error too.
            let items = (0..5usize).map(|i| {
                if i == 3 {
                    Err("bad row".to_string())
                } else {
                    Ok(i)
                }
            });
            let mut seen = Vec::new();
            let err = ordered_map(
                vec![(); threads],
                items,
                |_, i| Ok(i),
                |r| {
                    seen.push(r);
                    Ok(())
                },
            );
            assert_eq!(err, Err("bad row".to_string()));
            assert_eq!(seen, vec![0, 1, 2], "threads {threads}");
        }
    }
}
