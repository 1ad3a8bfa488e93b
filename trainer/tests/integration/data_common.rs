//! Helpers shared by the data integration tests: scratch datasets with images.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use vigil_config::{DataSection, OnBadRow};

/// Labels the test datasets use.
pub fn labels() -> Vec<String> {
    vec!["hate".into(), "spam".into()]
}

/// Writes a small solid-colour PNG at `dir/rel`.
pub fn png(dir: &Path, rel: &str, rgb: [u8; 3]) -> PathBuf {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(12, 12, image::Rgb(rgb))
        .save(&path)
        .unwrap();
    path
}

/// Writes `lines` as `dir/name` and returns its path.
pub fn jsonl(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// A `data` section reading `train` with `policy`.
pub fn section(train: &Path, policy: OnBadRow) -> DataSection {
    DataSection {
        train: train.display().to_string(),
        on_bad_row: policy,
        image_size: 16,
        max_text_chars: 40,
        ..DataSection::default()
    }
}

/// A good row with text and image `img/<id>.png` (which it creates).
pub fn good_row(dir: &Path, id: &str, hate: u8) -> String {
    png(dir, &format!("img/{id}.png"), [hate * 200, 30, 30]);
    format!(
        r#"{{"id": "{id}", "text": "row {id}", "image": "img/{id}.png", "labels": {{"hate": {hate}, "spam": 0}}}}"#
    )
}
