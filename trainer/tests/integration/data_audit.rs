//! The audit finds planted problems with the right counts, and the generator is
//! deterministic.

use crate::data_common::{jsonl, png};
use vigil_data::{AuditOptions, BadRowKind, SynthOptions, audit, synth};

#[test]
fn audit_finds_planted_duplicates_conflicts_leaks_and_corrupt_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    png(d, "img/a.png", [200, 0, 0]);
    png(d, "img/a_copy.png", [200, 0, 0]); // same bytes, other name
    png(d, "img/b.png", [0, 200, 0]);
    png(d, "img/c.png", [0, 0, 200]);
    let good = std::fs::read(d.join("img/c.png")).unwrap();
    std::fs::write(d.join("img/cut.png"), &good[..good.len() - 20]).unwrap();
    std::fs::write(d.join("img/junk.png"), b"junk").unwrap();
    let rows: Vec<String> = [
        // Duplicate group 1 (consistent): same text modulo case/space, same image bytes.
        r#"{"id": "1", "text": "Hello  world", "image": "img/a.png", "labels": {"hate": 1, "spam": 0}}"#,
        r#"{"id": "2", "text": "hello world", "image": "img/a_copy.png", "labels": {"hate": 1, "spam": null}}"#,
        // Duplicate group 2 (conflicting on hate), three rows.
        r#"{"id": "3", "text": "same text", "image": "img/b.png", "labels": {"hate": 1, "spam": 0}}"#,
        r#"{"id": "4", "text": "same text", "image": "img/b.png", "labels": {"hate": 0, "spam": 0}}"#,
        r#"{"id": "5", "text": "same text", "image": "img/b.png", "labels": {"hate": 0}}"#,
        // Same text, different image: not a duplicate.
        r#"{"id": "6", "text": "same text", "image": "img/c.png", "labels": {"hate": 0, "spam": 1}}"#,
        // Leaks (also in other.jsonl): a text-only item and a text+image item.
        r#"{"id": "7", "text": "leaked text", "labels": {"hate": 0, "spam": 1}}"#,
        r#"{"id": "8", "text": "leaked pic", "image": "img/c.png", "labels": {"spam": 0}}"#,
        // Corrupt images: body cut off, and not an image at all.
        r#"{"id": "9", "text": "cut", "image": "img/cut.png", "labels": {"hate": 0}}"#,
        r#"{"id": "10", "text": "junk", "image": "img/junk.png", "labels": {"hate": 0}}"#,
        // Missing image and a malformed line.
        r#"{"id": "11", "text": "gone", "image": "img/gone.png"}"#,
        r#"{"id": "12", "text": "#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let file = jsonl(d, "data.jsonl", &rows);
    let other = jsonl(
        d,
        "other.jsonl",
        &[
            r#"{"id": "x1", "text": "LEAKED text", "labels": {"hate": 0}}"#.into(),
            r#"{"id": "x2", "text": "leaked pic", "image": "img/c.png"}"#.into(),
            r#"{"id": "1", "text": "unrelated", "labels": {"hate": 0}}"#.into(),
        ],
    );
    let r = audit(&file, Some(&other), &AuditOptions::default()).unwrap();
    assert_eq!(r.rows, 12);
    assert_eq!(r.label_names, vec!["hate", "spam"]);
    assert_eq!(r.duplicate_groups, 2);
    assert_eq!(r.duplicate_rows, 3);
    assert_eq!(r.conflicting_groups, 1);
    assert_eq!(r.duplicate_examples[0].ids, vec!["3", "4", "5"]);
    assert_eq!(r.duplicate_examples[0].conflicting_labels, vec!["hate"]);
    assert_eq!(r.corrupt_images, 2);
    assert_eq!(r.missing_images, 1);
    assert_eq!(r.bad_rows.get(&BadRowKind::MalformedJson), Some(&1));
    assert_eq!(r.valid_rows, 8);
    let leak = r.leakage.as_ref().unwrap();
    assert_eq!((leak.shared_items, leak.rows, leak.shared_ids), (2, 2, 1));
    assert_eq!(leak.examples, vec!["7", "8"]);
    // Per-label counts over the rows that load (the cut image row is counted too:
    // its header is valid, so training would only notice when decoding it).
    let hate = &r.labels[0];
    assert_eq!((hate.positive, hate.negative, hate.unknown), (3, 5, 1));
    assert_eq!(r.errors, 4 + 1 + 2);
    assert_eq!(r.warnings, 1);
    let text = r.render();
    assert!(
        text.contains("2 groups (3 extra rows), 1 with conflicting labels"),
        "{text}"
    );
    assert!(text.contains("data.jsonl:12: malformed JSON"), "{text}");
    let clean = jsonl(d, "clean.jsonl", &[r#"{"id": "z", "text": "fine"}"#.into()]);
    let r = audit(&clean, None, &AuditOptions::default()).unwrap();
    assert_eq!((r.errors, r.warnings), (0, 0));
}

#[test]
fn synth_is_deterministic_and_seed_dependent() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let opts = SynthOptions {
        rows: 60,
        seed: 5,
        ..SynthOptions::default()
    };
    let ra = synth(a.path(), &opts).unwrap();
    synth(b.path(), &opts).unwrap();
    synth(
        c.path(),
        &SynthOptions {
            seed: 6,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(ra.train_rows + ra.val_rows, 60);
    for name in [
        "train.jsonl",
        "val.jsonl",
        "tokenizer.json",
        "manifest.json",
        "img/00003.png",
    ] {
        assert_eq!(
            std::fs::read(a.path().join(name)).unwrap(),
            std::fs::read(b.path().join(name)).unwrap(),
            "{name}"
        );
    }
    assert_ne!(
        std::fs::read(a.path().join("train.jsonl")).unwrap(),
        std::fs::read(c.path().join("train.jsonl")).unwrap()
    );
    // The generated data passes its own audit with no errors and no leakage.
    let r = audit(
        &a.path().join("val.jsonl"),
        Some(&a.path().join("train.jsonl")),
        &AuditOptions::default(),
    )
    .unwrap();
    assert_eq!(r.errors, 0, "{}", r.render());
}
