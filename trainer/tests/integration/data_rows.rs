//! Bad rows under both policies: `fail` names `FILE:LINE: reason`, `skip` drops,
//! counts and writes `data/rejects.jsonl`. One case per kind of bad row.

use std::path::Path;

use crate::data_common::{good_row, jsonl, labels, png, section};
use vigil_config::{DataFormat, OnBadRow};
use vigil_data::{BadRowKind, DataError, Dataset, Split};

/// A bad row of each kind: (kind, line text, expected reason).
fn cases(dir: &Path, outside: &Path) -> Vec<(BadRowKind, String, &'static str)> {
    png(dir, "img/ok.png", [0, 0, 0]);
    std::fs::write(dir.join("img/garbage.png"), b"definitely not a png").unwrap();
    let secret = png(outside, "secret.png", [1, 2, 3]);
    #[cfg(unix)]
    std::os::unix::fs::symlink(&secret, dir.join("img/link.png")).unwrap();
    vec![
        (
            BadRowKind::MalformedJson,
            r#"{"id": "m", "text": "#.into(),
            "malformed JSON: EOF while parsing a value at line 1 column 20",
        ),
        (
            BadRowKind::MalformedRow,
            r#"{"text": "no id here"}"#.into(),
            "field 'id' is missing",
        ),
        (
            BadRowKind::DuplicateId,
            r#"{"id": "g1", "text": "again"}"#.into(),
            "duplicate id 'g1' (first on line 1)",
        ),
        (
            BadRowKind::NoContent,
            r#"{"id": "n", "labels": {"hate": 1}}"#.into(),
            "neither text nor image",
        ),
        (
            BadRowKind::TextTooLong,
            format!(r#"{{"id": "t", "text": "{}"}}"#, "x".repeat(41)),
            "text has 41 characters, more than data.max_text_chars = 40",
        ),
        (
            BadRowKind::UnknownLabel,
            r#"{"id": "u", "text": "a", "labels": {"hat": 1}}"#.into(),
            "unknown label 'hat' (model.labels: hate, spam)",
        ),
        (
            BadRowKind::WrongLabelType,
            r#"{"id": "w", "text": "a", "labels": {"hate": "yes"}}"#.into(),
            "label 'hate' must be 0, 1 or null, got \"yes\"",
        ),
        (
            BadRowKind::ImageNotFound,
            r#"{"id": "i", "text": "a", "image": "img/3.png"}"#.into(),
            "image 'img/3.png' not found",
        ),
        (
            BadRowKind::CorruptImage,
            r#"{"id": "c", "image": "img/garbage.png"}"#.into(),
            "image 'img/garbage.png' is corrupt: Format error decoding Png: Invalid PNG signature.",
        ),
        (
            BadRowKind::ImagePathEscape,
            r#"{"id": "e", "image": "../x.png"}"#.into(),
            "image path '../x.png' contains '..'",
        ),
        (
            BadRowKind::ImagePathEscape,
            r#"{"id": "a", "image": "/etc/hostname"}"#.into(),
            "image path '/etc/hostname' is absolute; paths are relative to the image root",
        ),
        #[cfg(unix)]
        (
            BadRowKind::ImagePathEscape,
            r#"{"id": "s", "image": "img/link.png"}"#.into(),
            "image path 'img/link.png' leaves the image root through a symlink",
        ),
    ]
}

#[test]
fn fail_names_file_line_and_reason_for_every_kind() {
    for i in 0.. {
        let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let all = cases(dir.path(), outside.path());
        if i >= all.len() {
            break;
        }
        let (kind, bad, reason) = &all[i];
        let rows = vec![
            good_row(dir.path(), "g1", 1),
            good_row(dir.path(), "g2", 0),
            bad.clone(),
            good_row(dir.path(), "g3", 0),
        ];
        let file = jsonl(dir.path(), "train.jsonl", &rows);
        let err = Dataset::load(
            &section(&file, OnBadRow::Fail),
            &labels(),
            Split::Train,
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}:3: {reason}", file.display()),
            "{kind}"
        );
        assert!(matches!(err, DataError::BadRow { line: 3, .. }));
        assert!(err.is_user_error());
    }
}

#[test]
fn skip_drops_counts_and_writes_rejects_for_every_kind() {
    let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let all = cases(dir.path(), outside.path());
    let mut rows = vec![good_row(dir.path(), "g1", 1)];
    rows.extend(all.iter().map(|(_, line, _)| line.clone()));
    rows.push(String::new()); // a blank line is not a row
    rows.push(good_row(dir.path(), "g2", 0));
    let file = jsonl(dir.path(), "train.jsonl", &rows);
    let run = dir.path().join("run");
    let (ds, report) = Dataset::load(
        &section(&file, OnBadRow::Skip),
        &labels(),
        Split::Train,
        Some(&run),
    )
    .unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(report.kept, 2);
    assert_eq!(report.rows_read, all.len() + 2);
    assert_eq!(report.skipped(), all.len());
    let counts = report.skipped_by_kind();
    for (kind, _, _) in &all {
        let want = all.iter().filter(|(k, _, _)| k == kind).count();
        assert_eq!(counts.get(kind), Some(&want), "{kind}");
    }
    let rejects = std::fs::read_to_string(run.join("data/rejects.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), all.len());
    for (n, ((kind, _, reason), got)) in all.iter().zip(&lines).enumerate() {
        assert_eq!(got["line"], n + 2);
        assert_eq!(got["kind"], kind.as_str());
        assert_eq!(got["reason"], *reason);
        assert_eq!(got["split"], "train");
    }
    assert!(report.summary().contains("2 rows kept"));
}

#[test]
fn rejects_file_keeps_the_other_split() {
    let dir = tempfile::tempdir().unwrap();
    let train = jsonl(
        dir.path(),
        "train.jsonl",
        &[good_row(dir.path(), "a", 1), r#"{"id": "x"}"#.into()],
    );
    let val = jsonl(
        dir.path(),
        "val.jsonl",
        &[good_row(dir.path(), "b", 0), "not json".into(), "[]".into()],
    );
    let mut data = section(&train, OnBadRow::Skip);
    data.val = Some(val.display().to_string());
    let run = dir.path().join("run");
    for _ in 0..2 {
        Dataset::load(&data, &labels(), Split::Train, Some(&run)).unwrap();
        Dataset::load(&data, &labels(), Split::Val, Some(&run)).unwrap();
    }
    let text = std::fs::read_to_string(run.join("data/rejects.jsonl")).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains("\"train\"")).count(), 1);
    assert_eq!(text.lines().filter(|l| l.contains("\"val\"")).count(), 2);
}

#[test]
fn missing_file_and_all_bad_are_user_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = section(&dir.path().join("nope.jsonl"), OnBadRow::Skip);
    let err = Dataset::load(&data, &labels(), Split::Train, None).unwrap_err();
    assert!(err.is_user_error(), "{err}");
    assert!(err.to_string().contains("nope.jsonl"));
    let file = jsonl(dir.path(), "t.jsonl", &["{}".into()]);
    let err = Dataset::load(
        &section(&file, OnBadRow::Skip),
        &labels(),
        Split::Train,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, DataError::Empty { skipped: 1, .. }), "{err}");
    let err =
        Dataset::load(&section(&file, OnBadRow::Skip), &labels(), Split::Val, None).unwrap_err();
    assert!(err.to_string().contains("data.val"));
}

#[test]
fn unknown_labels_are_masked_and_hateful_memes_maps_its_label() {
    let dir = tempfile::tempdir().unwrap();
    png(dir.path(), "img/1.png", [9, 9, 9]);
    let file = jsonl(
        dir.path(),
        "hm.jsonl",
        &[
            r#"{"id": 1, "img": "img/1.png", "label": 1, "text": "a"}"#.into(),
            r#"{"id": 2, "img": "img/1.png", "text": "b"}"#.into(),
        ],
    );
    let mut data = section(&file, OnBadRow::Fail);
    data.format = DataFormat::HatefulMemes;
    data.hateful_memes_label = Some("spam".into());
    let (ds, _) = Dataset::load(&data, &labels(), Split::Train, None).unwrap();
    assert_eq!(ds.example(0).labels, vec![None, Some(true)]);
    assert_eq!(ds.example(1).labels, vec![None, None]);
    assert_eq!(ds.example(0).id, "1");
}

#[test]
fn image_root_overrides_the_file_directory() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("elsewhere");
    png(&images, "pics/a.png", [1, 1, 1]);
    let file = jsonl(
        dir.path(),
        "t.jsonl",
        &[r#"{"id": "a", "image": "pics/a.png", "labels": {"hate": 0}}"#.into()],
    );
    let mut data = section(&file, OnBadRow::Fail);
    assert!(Dataset::load(&data, &labels(), Split::Train, None).is_err());
    data.image_root = Some(images.display().to_string());
    let (ds, _) = Dataset::load(&data, &labels(), Split::Train, None).unwrap();
    assert_eq!(ds.len(), 1);
}
