//! The unit the training loop consumes: plain vectors, no tensors.
//!
//! The data layer stays independent of burn (it is tested and benchmarked without
//! a backend); the trainer turns these flat, row-major buffers into tensors with
//! the shapes given on each field.

use super::dataset::Dataset;
use super::error::BadRow;
use super::imaging::ImageSpec;
use super::sampler::Position;

/// A batch of `B` examples with `L` labels and images of side `S`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Where this batch sits in the schedule.
    pub position: Position,
    /// Row ids, `[B]`.
    pub ids: Vec<String>,
    /// Texts, `[B]` (`None` for image-only rows).
    pub texts: Vec<Option<String>>,
    /// Side of the images; 0 when images were not requested (text-only models).
    pub image_size: usize,
    /// Images, `[B, 3, S, S]` channel-major, ImageNet-normalised; zeros where a row
    /// has no image. Empty when `image_size` is 0.
    pub images: Vec<f32>,
    /// Whether row `b` has an image, `[B]`.
    pub image_present: Vec<bool>,
    /// Label targets, `[B, L]`: 1.0 positive, 0.0 negative or unknown.
    pub labels: Vec<f32>,
    /// Whether a target is known, `[B, L]` (unknown ones are masked in the loss and
    /// left out of that label's metrics).
    pub label_known: Vec<bool>,
    /// Example indices into the dataset, `[B]` (padding repeats an index; evaluation
    /// gathers by it to count each example once).
    pub rows: Vec<usize>,
    /// `L`.
    pub num_labels: usize,
}

impl Batch {
    /// Number of examples `B`.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the batch is empty (never, from a loader).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Builds the batch of `rows`, decoding images as `image` says (`None`: skip
    /// images). A decode failure returns the row's line and reason.
    pub fn build(
        dataset: &Dataset,
        rows: &[usize],
        position: Position,
        image: Option<ImageSpec>,
    ) -> Result<Self, (usize, BadRow)> {
        let num_labels = dataset.labels().len();
        let b = rows.len();
        let side = image.map_or(0, |i| i.size as usize);
        let plane = 3 * side * side;
        let mut batch = Batch {
            position,
            ids: Vec::with_capacity(b),
            texts: Vec::with_capacity(b),
            image_size: side,
            images: vec![0.0; b * plane],
            image_present: Vec::with_capacity(b),
            labels: Vec::with_capacity(b * num_labels),
            label_known: Vec::with_capacity(b * num_labels),
            rows: rows.to_vec(),
            num_labels,
        };
        for (slot, &row) in rows.iter().enumerate() {
            let ex = dataset.example(row);
            batch.ids.push(ex.id.clone());
            batch.texts.push(ex.text.clone());
            batch.image_present.push(ex.image.is_some());
            for l in &ex.labels {
                batch.labels.push(if *l == Some(true) { 1.0 } else { 0.0 });
                batch.label_known.push(l.is_some());
            }
            if let (Some(spec), Some(path), Some(rel)) = (&image, &ex.image, &ex.image_rel) {
                let out = &mut batch.images[slot * plane..(slot + 1) * plane];
                spec.load(path, rel, out).map_err(|e| (ex.line, e))?;
            }
        }
        Ok(batch)
    }
}
