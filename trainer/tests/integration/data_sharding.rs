//! Sharding and loading: every example once per epoch across ranks (plus the
//! stated padding), epochs differ, runs repeat, and a loader positioned at
//! `(epoch, batch)` continues exactly like an uninterrupted one.

use std::sync::Arc;

use crate::data_common::{good_row, jsonl, labels, section};
use vigil_config::{OnBadRow, UnevenTail};
use vigil_data::{Batch, Dataset, Loader, LoaderOptions, Position, ShardSampler, Split};

fn samplers(len: usize, world: usize, batch: usize, uneven: UnevenTail) -> Vec<ShardSampler> {
    (0..world)
        .map(|r| ShardSampler::new(len, r, world, batch, 42, true, uneven).unwrap())
        .collect()
}

#[test]
fn every_example_once_per_epoch_across_ranks_plus_padding() {
    for world in 1..=4 {
        for len in [4, 7, 10, 33, 64] {
            for batch in [1, 3, 8] {
                for uneven in [UnevenTail::Pad, UnevenTail::Drop] {
                    let ranks = samplers(len, world, batch, uneven);
                    for epoch in 0..3 {
                        let mut seen = vec![0usize; len];
                        let batches: Vec<usize> =
                            ranks.iter().map(|s| s.batches(epoch, 0).len()).collect();
                        assert!(batches.iter().all(|&b| b == ranks[0].batches_per_epoch()));
                        for s in &ranks {
                            for b in s.batches(epoch, 0) {
                                for i in b {
                                    seen[i] += 1;
                                }
                            }
                        }
                        let total: usize = seen.iter().sum();
                        let perm = ranks[0].permutation(epoch);
                        match uneven {
                            UnevenTail::Pad => {
                                let padding = len.div_ceil(world) * world - len;
                                assert_eq!(total, len + padding);
                                // Padding repeats the head of the permutation, once each.
                                for (k, &i) in perm.iter().enumerate() {
                                    let want = if k < padding { 2 } else { 1 };
                                    assert_eq!(seen[i], want, "w{world} n{len} b{batch}");
                                }
                            }
                            UnevenTail::Drop => {
                                let kept = len / world * world;
                                assert_eq!(total, kept);
                                for (k, &i) in perm.iter().enumerate() {
                                    assert_eq!(seen[i], usize::from(k < kept));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn permutation_differs_between_epochs_and_repeats_between_runs() {
    let a = samplers(100, 3, 8, UnevenTail::Pad);
    let b = samplers(100, 3, 8, UnevenTail::Pad);
    for r in 0..3 {
        assert_ne!(a[r].epoch_indices(0), a[r].epoch_indices(1));
        assert_eq!(a[r].epoch_indices(5), b[r].epoch_indices(5));
    }
    assert_eq!(
        a[0].permutation(2),
        a[2].permutation(2),
        "same order on every rank"
    );
    let other = ShardSampler::new(100, 0, 3, 8, 43, true, UnevenTail::Pad).unwrap();
    assert_ne!(other.epoch_indices(0), a[0].epoch_indices(0));
    let eval = ShardSampler::for_eval(10, 1, 2, 4).unwrap();
    assert_eq!(eval.epoch_indices(0), vec![1, 3, 5, 7, 9]);
}

fn dataset(rows: usize) -> (tempfile::TempDir, Arc<Dataset>) {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..rows)
        .map(|i| good_row(dir.path(), &format!("r{i}"), (i % 2) as u8))
        .collect();
    let file = jsonl(dir.path(), "train.jsonl", &lines);
    let (ds, _) = Dataset::load(
        &section(&file, OnBadRow::Fail),
        &labels(),
        Split::Train,
        None,
    )
    .unwrap();
    (dir, Arc::new(ds))
}

fn opts(threads: usize) -> LoaderOptions {
    LoaderOptions {
        image: Some(vigil_data::ImageSpec {
            size: 16,
            transform: Default::default(),
        }),
        threads,
        prefetch: 2,
    }
}

fn collect(ds: &Arc<Dataset>, s: &ShardSampler, epoch: u64, start: usize, t: usize) -> Vec<Batch> {
    Loader::new(ds.clone(), s, epoch, start, opts(t))
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

#[test]
fn loader_positioned_mid_epoch_continues_exactly() {
    let (_dir, ds) = dataset(23);
    for world in 1..=3 {
        for rank in 0..world {
            let s = ShardSampler::new(ds.len(), rank, world, 3, 7, true, UnevenTail::Pad).unwrap();
            // An uninterrupted run over two epochs...
            let full: Vec<Batch> = (0..2).flat_map(|e| collect(&ds, &s, e, 0, 2)).collect();
            assert_eq!(full.len(), 2 * s.batches_per_epoch());
            // ...and runs resumed from every step's position.
            for step in 0..full.len() {
                let pos = s.position_of(step as u64);
                let mut resumed = collect(&ds, &s, pos.epoch, pos.batch as usize, 1);
                resumed.extend(collect(&ds, &s, pos.epoch + 1, 0, 3));
                let tail: Vec<&Batch> = full[step..].iter().collect();
                assert_eq!(resumed.iter().take(tail.len()).collect::<Vec<_>>(), tail);
            }
        }
    }
}

#[test]
fn batches_hold_what_the_trainer_needs() {
    let (_dir, ds) = dataset(5);
    let s = ShardSampler::new(ds.len(), 0, 1, 4, 1, false, UnevenTail::Pad).unwrap();
    let mut loader = Loader::new(ds.clone(), &s, 0, 0, opts(2)).unwrap();
    assert_eq!(loader.remaining(), 2);
    let b = loader.next().unwrap().unwrap();
    assert_eq!(loader.position(), Position { epoch: 0, batch: 1 });
    assert_eq!(b.len(), 4);
    assert_eq!(b.rows, vec![0, 1, 2, 3]);
    assert_eq!(b.ids, vec!["r0", "r1", "r2", "r3"]);
    assert_eq!(b.num_labels, 2);
    assert_eq!(b.labels, vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    assert!(b.label_known.iter().all(|&k| k));
    assert_eq!(b.images.len(), 4 * 3 * 16 * 16);
    // Row r1 is red-ish (200, 30, 30): its R plane is above the mean.
    let plane = 16 * 16;
    let r1_red = b.images[3 * plane];
    assert!((r1_red - (200.0 / 255.0 - 0.485) / 0.229).abs() < 1e-3);
    let last = loader.next().unwrap().unwrap();
    assert_eq!(last.len(), 1);
    assert!(loader.next().is_none());
    // Without images nothing is decoded.
    let no_images = LoaderOptions {
        image: None,
        ..opts(1)
    };
    let b = Loader::new(ds, &s, 0, 0, no_images)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert!(b.images.is_empty() && b.image_size == 0);
    assert!(b.image_present.iter().all(|&p| p));
}

#[test]
fn an_image_broken_after_loading_is_an_error_not_a_panic() {
    let (dir, ds) = dataset(6);
    let bytes = std::fs::read(dir.path().join("img/r4.png")).unwrap();
    std::fs::write(dir.path().join("img/r4.png"), &bytes[..bytes.len() - 20]).unwrap();
    let s = ShardSampler::new(ds.len(), 0, 1, 2, 0, false, UnevenTail::Pad).unwrap();
    let results: Vec<_> = Loader::new(ds, &s, 0, 0, opts(2)).unwrap().collect();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[1].is_ok());
    let err = results[2].as_ref().unwrap_err().to_string();
    assert!(err.contains(":5: image 'img/r4.png' is corrupt"), "{err}");
}

#[test]
fn dropping_a_loader_early_stops_its_threads() {
    let (_dir, ds) = dataset(40);
    let s = ShardSampler::new(ds.len(), 0, 1, 2, 0, true, UnevenTail::Pad).unwrap();
    for _ in 0..20 {
        let mut l = Loader::new(ds.clone(), &s, 0, 0, opts(3)).unwrap();
        l.next().unwrap().unwrap();
    }
}
