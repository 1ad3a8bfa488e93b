//! Loader throughput: rows per second through the real [`Loader`] (decode,
//! resize, normalise, batch) for a data file at a given image size and thread
//! count. `vigil datasets bench` prints it; the figure is measured, never asserted.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::dataset::{Dataset, LoadOptions, Split};
use super::error::DataError;
use super::format;
use super::loader::{Loader, LoaderOptions};
use super::sampler::ShardSampler;
use vigil_config::{DataFormat, OnBadRow, UnevenTail};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Image side the loader resizes to.
    pub image_size: u32,
    /// Loader threads.
    pub threads: usize,
    /// Batches prefetched.
    pub prefetch: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Epochs to run (the first one warms the page cache).
    pub epochs: u64,
    /// Label names (Vigil format).
    pub labels: Vec<String>,
}

/// The measured figures.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Rows in the file.
    pub rows: usize,
    /// Image side.
    pub image_size: u32,
    /// Loader threads.
    pub threads: usize,
    /// Seconds to load and validate the file (header checks included).
    pub load_seconds: f64,
    /// Rows per second of each epoch, after the load.
    pub rows_per_second: Vec<f64>,
}

/// Loads `file` and iterates its batches `epochs` times on one rank.
pub fn bench(file: &Path, opts: &BenchOptions) -> Result<BenchReport, DataError> {
    let load = LoadOptions {
        format: format::for_config(DataFormat::Vigil, None)?,
        image_root: None,
        max_text_chars: usize::MAX,
        on_bad_row: OnBadRow::Skip,
        check_images: true,
    };
    let t0 = Instant::now();
    let (dataset, _) = Dataset::load_file(file, &opts.labels, Split::Train, &load)?;
    let load_seconds = t0.elapsed().as_secs_f64();
    let rows = dataset.len();
    let dataset = Arc::new(dataset);
    let sampler = ShardSampler::new(rows, 0, 1, opts.batch_size, 0, true, UnevenTail::Pad)?;
    let mut rows_per_second = Vec::new();
    for epoch in 0..opts.epochs {
        let t = Instant::now();
        let mut n = 0;
        let loader = Loader::new(
            dataset.clone(),
            &sampler,
            epoch,
            0,
            LoaderOptions {
                image: Some(crate::ImageSpec {
                    size: opts.image_size,
                    transform: Default::default(),
                }),
                threads: opts.threads,
                prefetch: opts.prefetch,
            },
        )?;
        for batch in loader {
            n += batch?.len();
        }
        rows_per_second.push(n as f64 / t.elapsed().as_secs_f64());
    }
    Ok(BenchReport {
        rows,
        image_size: opts.image_size,
        threads: opts.threads,
        load_seconds,
        rows_per_second,
    })
}
