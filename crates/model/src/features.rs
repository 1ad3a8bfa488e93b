//! Cached tower features: [`Table`] (one tower's pooled output for every row of a
//! dataset) and [`SplitFeatures`] (the cached towers of one split).
//!
//! They are plain vectors so the feature cache (`train::feature_cache`, which
//! builds, keys and stores them) and [`super::ModelInput::from_batch`] (which
//! feeds them to the model instead of running the tower) share one type without
//! the model importing the training loop.

/// A `[rows, dim]` table of one tower's features over one dataset; rows without
/// the modality hold zeros (the fusion layer swaps in its placeholder for them).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Feature width.
    pub dim: usize,
    /// Row-major values, `rows × dim`.
    pub values: Vec<f32>,
    /// Whether each row has the modality (the rows that were encoded).
    pub present: Vec<bool>,
}

impl Table {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.present.len()
    }

    /// The rows `rows` (dataset indices), concatenated.
    pub fn gather(&self, rows: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len() * self.dim);
        for &r in rows {
            out.extend_from_slice(&self.values[r * self.dim..(r + 1) * self.dim]);
        }
        out
    }
}

/// The cached features of one dataset split.
#[derive(Debug, Clone, Default)]
pub struct SplitFeatures {
    /// Text-tower features, when that tower is cached.
    pub text: Option<Table>,
    /// Image-tower features, when that tower is cached.
    pub image: Option<Table>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_picks_rows_in_order() {
        let t = Table {
            dim: 2,
            values: vec![0.0, 0.1, 1.0, 1.1, 2.0, 2.1],
            present: vec![true; 3],
        };
        assert_eq!(t.rows(), 3);
        assert_eq!(t.gather(&[2, 0, 2]), vec![2.0, 2.1, 0.0, 0.1, 2.0, 2.1]);
    }
}
