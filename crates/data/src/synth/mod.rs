//! `vigil datasets synth`: the generator of the bundled sample and of larger sets
//! for benchmarks.
//!
//! The data follows the Hateful Memes idea of *benign confounders*: label `l` is
//! positive exactly when the text carries `l`'s trigger word **and** the image
//! carries `l`'s visual signal (see `draw.rs`, `words.rs`). Each generated group
//! is one of
//! - a confounder triple: a row positive for at least one label, the *same text*
//!   with a new image lacking that signal, and the *same image* with a new text
//!   lacking that trigger — both negative for it;
//! - a single row with independent text and image signals (half on each);
//! - a text-only row: labels whose trigger is absent are 0, the others unknown;
//! - an image-only row: the same with visual signals.
//!
//! Neither modality alone decides a label, so text-only or image-only models top
//! out well below a fused one. About 6% of the labels of full rows are also
//! unknown (written as `null` or left out, both forms occurring). Groups never
//! straddle train and val, so confounders do not leak between splits.
//!
//! Everything is a function of `(rows, seed, val_fraction, image_px)` through the
//! data layer's own [`SplitMix64`] and integer drawing; PNGs are encoded with
//! fixed settings. `datasets/sample/` is `synth(rows 800, seed 2026)` and a test
//! regenerates it byte for byte.

mod draw;
pub mod words;

use std::io::Write;
use std::path::{Path, PathBuf};

use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use serde::Serialize;
use serde::ser::SerializeMap;

use super::error::DataError;
use super::rng::SplitMix64;

/// Label names of the generated data, in order.
pub const LABELS: [&str; 5] = ["hate", "harassment", "violence", "self_harm", "spam"];
/// Rows of the bundled sample.
pub const SAMPLE_ROWS: usize = 800;
/// Seed of the bundled sample.
pub const SAMPLE_SEED: u64 = 2026;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthOptions {
    /// Total rows (train + val).
    pub rows: usize,
    /// Seed.
    pub seed: u64,
    /// Share of rows in `val.jsonl` (whole groups, so approximate).
    pub val_fraction: f64,
    /// Side of the square PNGs.
    pub image_px: u32,
}

impl Default for SynthOptions {
    fn default() -> Self {
        Self {
            rows: SAMPLE_ROWS,
            seed: SAMPLE_SEED,
            val_fraction: 0.2,
            image_px: 64,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SynthReport {
    /// Output directory.
    pub out: PathBuf,
    /// Rows in `train.jsonl`.
    pub train_rows: usize,
    /// Rows in `val.jsonl`.
    pub val_rows: usize,
    /// PNG files in `img/`.
    pub images: usize,
    /// Bytes written in total.
    pub bytes: u64,
}

struct Row {
    id: String,
    text: Option<String>,
    image: Option<String>,
    /// Per label: value, and whether an unknown is written as `null` (else omitted).
    labels: [(Option<bool>, bool); 5],
}

impl Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Labels<'a>(&'a [(Option<bool>, bool); 5]);
        impl Serialize for Labels<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                for (name, (v, as_null)) in LABELS.iter().zip(self.0) {
                    match v {
                        Some(b) => m.serialize_entry(name, &u8::from(*b))?,
                        None if *as_null => m.serialize_entry(name, &())?,
                        None => {}
                    }
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.id)?;
        if let Some(t) = &self.text {
            m.serialize_entry("text", t)?;
        }
        if let Some(i) = &self.image {
            m.serialize_entry("image", i)?;
        }
        m.serialize_entry("labels", &Labels(&self.labels))?;
        m.end()
    }
}

struct Generator<'a> {
    rng: SplitMix64,
    out: &'a Path,
    px: u32,
    images: usize,
    rows: usize,
    bytes: u64,
}

impl Generator<'_> {
    fn bits(&mut self) -> [bool; 5] {
        std::array::from_fn(|_| self.rng.chance(0.5))
    }

    fn image(&mut self, signals: [bool; 5]) -> Result<String, DataError> {
        let img = draw::draw(&mut self.rng, signals, self.px);
        let rel = format!("img/{:05}.png", self.images);
        self.images += 1;
        let path = self.out.join(&rel);
        let mut bytes = Vec::new();
        // fdeflate (`Fast`) is pure Rust and part of `png` itself: `Best` goes through
        // flate2, whose backend (miniz_oxide or zlib-rs) depends on what else is in
        // the build, so its bytes would change when an unrelated crate is added.
        PngEncoder::new_with_quality(&mut bytes, CompressionType::Fast, FilterType::Adaptive)
            .write_image(
                img.as_raw(),
                self.px,
                self.px,
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|source| DataError::Encode {
                path: path.clone(),
                source,
            })?;
        write(&path, &bytes)?;
        self.bytes += bytes.len() as u64;
        Ok(rel)
    }

    fn row(
        &mut self,
        text: Option<String>,
        image: Option<String>,
        labels: [Option<bool>; 5],
    ) -> Row {
        self.rows += 1;
        let full = text.is_some() && image.is_some();
        let labels = std::array::from_fn(|l| {
            let v = if full && self.rng.chance(0.06) {
                None
            } else {
                labels[l]
            };
            (v, self.rng.chance(0.5))
        });
        Row {
            id: format!("s{:05}", self.rows),
            text,
            image,
            labels,
        }
    }

    /// One group of rows (see the module docs).
    fn group(&mut self) -> Result<Vec<Row>, DataError> {
        let kind = self.rng.unit();
        let and = |t: [bool; 5], i: [bool; 5]| -> [Option<bool>; 5] {
            std::array::from_fn(|l| Some(t[l] && i[l]))
        };
        if kind < 0.45 {
            let (mut t, mut i) = (self.bits(), self.bits());
            let focus = self.rng.below(5);
            t[focus] = true;
            i[focus] = true;
            let pos: [bool; 5] = std::array::from_fn(|l| t[l] && i[l]);
            let text = words::text(&mut self.rng, t);
            let image = self.image(i)?;
            let base = self.row(Some(text.clone()), Some(image.clone()), and(t, i));
            // Same text, an image without the positive labels' signals.
            let mut i2 = self.bits();
            (0..5).filter(|&l| pos[l]).for_each(|l| i2[l] = false);
            let image2 = self.image(i2)?;
            let same_text = self.row(Some(text), Some(image2), and(t, i2));
            // Same image, a text without the positive labels' triggers.
            let mut t2 = self.bits();
            (0..5).filter(|&l| pos[l]).for_each(|l| t2[l] = false);
            let text2 = words::text(&mut self.rng, t2);
            let same_image = self.row(Some(text2), Some(image), and(t2, i));
            Ok(vec![base, same_text, same_image])
        } else if kind < 0.80 {
            let (t, i) = (self.bits(), self.bits());
            let text = words::text(&mut self.rng, t);
            let image = self.image(i)?;
            Ok(vec![self.row(Some(text), Some(image), and(t, i))])
        } else if kind < 0.90 {
            let t = self.bits();
            let text = words::text(&mut self.rng, t);
            let labels = std::array::from_fn(|l| if t[l] { None } else { Some(false) });
            Ok(vec![self.row(Some(text), None, labels)])
        } else {
            let i = self.bits();
            let image = self.image(i)?;
            let labels = std::array::from_fn(|l| if i[l] { None } else { Some(false) });
            Ok(vec![self.row(None, Some(image), labels)])
        }
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let mut f = std::fs::File::create(path).map_err(|source| DataError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    f.write_all(bytes).map_err(|source| DataError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Generates a dataset into `out`: `train.jsonl`, `val.jsonl`, `img/*.png`,
/// `tokenizer.json` and `manifest.json`. Files already in `out` with these names
/// are overwritten; nothing else is touched.
pub fn synth(out: &Path, opts: &SynthOptions) -> Result<SynthReport, DataError> {
    if opts.rows == 0 {
        return Err(DataError::Settings {
            message: "--rows must be at least 1".into(),
        });
    }
    if !(0.0..1.0).contains(&opts.val_fraction) {
        return Err(DataError::Settings {
            message: "--val-fraction must be in [0, 1)".into(),
        });
    }
    if !(16..=4096).contains(&opts.image_px) {
        return Err(DataError::Settings {
            message: "--image-px must be in 16..=4096".into(),
        });
    }
    let img_dir = out.join("img");
    std::fs::create_dir_all(&img_dir).map_err(|source| DataError::Write {
        path: img_dir.clone(),
        source,
    })?;
    let mut g = Generator {
        rng: SplitMix64::new(opts.seed),
        out,
        px: opts.image_px,
        images: 0,
        rows: 0,
        bytes: 0,
    };
    let (mut train, mut val) = (Vec::new(), Vec::new());
    while train.len() + val.len() < opts.rows {
        let mut group = g.group()?;
        group.truncate(opts.rows - train.len() - val.len());
        // Keep val's share close to val_fraction, whole groups at a time.
        let to_val = (val.len() as f64) < opts.val_fraction * (train.len() + val.len() + 1) as f64;
        if to_val { &mut val } else { &mut train }.extend(group);
    }
    g.rng.shuffle(&mut train);
    g.rng.shuffle(&mut val);
    for (name, rows) in [("train.jsonl", &train), ("val.jsonl", &val)] {
        let mut text = String::new();
        for r in rows {
            text.push_str(&serde_json::to_string(r).expect("a row serializes"));
            text.push('\n');
        }
        write(&out.join(name), text.as_bytes())?;
        g.bytes += text.len() as u64;
    }
    let tokenizer = words::tokenizer_json()?;
    write(&out.join("tokenizer.json"), tokenizer.as_bytes())?;
    let manifest = serde_json::json!({
        "generator": "vigil datasets synth",
        "rows": opts.rows,
        "seed": opts.seed,
        "val_fraction": opts.val_fraction,
        "image_px": opts.image_px,
        "labels": LABELS,
        "train_rows": train.len(),
        "val_rows": val.len(),
        "images": g.images,
    });
    let manifest = format!(
        "{}\n",
        serde_json::to_string_pretty(&manifest).expect("json")
    );
    write(&out.join("manifest.json"), manifest.as_bytes())?;
    g.bytes += (tokenizer.len() + manifest.len()) as u64;
    Ok(SynthReport {
        out: out.to_path_buf(),
        train_rows: train.len(),
        val_rows: val.len(),
        images: g.images,
        bytes: g.bytes,
    })
}
