//! The inference side: a loaded version ([`Loaded`]), the bounded request queue
//! with its worker threads ([`Engine`]), and the poller that swaps versions.
//!
//! Workers are plain OS threads (`--threads`), each with its own replica of the
//! model, so a forward pass never waits on the async runtime and the runtime's
//! threads never run a model. A request holds an `Arc` of the version it was
//! admitted on: a swap replaces the *current* version, and requests already in
//! the queue or in a batch finish on theirs; the old version is freed when the
//! last of them answers.
//!
//! Rows go through the same preprocessing as `vigil predict`: texts through the
//! export's tokenizer inside [`ModelInput::from_vecs`], images decoded (PNG,
//! JPEG, WebP), resized and normalised by the data layer's functions
//! ([`resize_normalise_chw`]) at the export's
//! `data.image_size`, and scored by the model in inference mode.

use std::collections::VecDeque;
use std::io::Cursor;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use image::ImageReader;
use tokio::sync::oneshot;
use vigil_config::Task;
use vigil_data::{normalise_chw, resize_normalise_chw};
use vigil_eval::decisions;
use vigil_infer::{ServeError, ServedModel};
use vigil_model::backend::CpuBackend;
use vigil_model::{ModelInput, ModerationModel, TextTokenizer};
use vigil_store::checkpoint::{MANIFEST_FILE, StoreError};
use vigil_store::repo::ModelRepo;
use vigil_store::repo::{LocateError, newest_listed};
use vigil_store::storage::Location;

use crate::batcher::{Decision, Overloaded, admit, decide, take};
use crate::metrics::Metrics;
use crate::pickup::{Pickup, decide as pickup};
use crate::protocol::{BadInput, IMAGE, Rows, Towers};
use crate::verified::{Skipped, Stamp, Verdict, VerifyCache};

type B = CpuBackend;

/// One exported version, loaded with one model replica per worker.
#[derive(Debug)]
pub struct Loaded {
    /// Its version number.
    pub version: u64,
    /// Its directory.
    pub dir: PathBuf,
    /// Label names, in output order.
    pub labels: Vec<String>,
    /// Which inputs it takes.
    pub towers: Towers,
    /// Newer versions passed over when it was located, with why (none for an
    /// explicit version): reported at start by [`report_skipped`].
    pub skipped: Skipped,
    replicas: Vec<Mutex<ModerationModel<B>>>,
    tokenizer: Option<TextTokenizer>,
    image_size: u32,
    task: Task,
    thresholds: Vec<f32>,
}

impl Loaded {
    /// Loads `version` (None: the newest complete one) of the model repository
    /// `repo` with `replicas` copies of the model.
    pub fn load(
        repo: &Location,
        version: Option<u64>,
        replicas: usize,
    ) -> Result<Self, ServeError> {
        let device = Default::default();
        let served = ServedModel::<B>::load(repo, version, &device)?;
        let towers = Towers {
            text: served.model.text.is_some(),
            image: served.model.image.is_some(),
        };
        let replicas = (0..replicas.max(1))
            .map(|_| Mutex::new(served.model.clone()))
            .collect();
        Ok(Self {
            version: served.version.version,
            dir: served.version.dir.clone(),
            labels: served.labels().to_vec(),
            towers,
            skipped: served.version.skipped.clone(),
            replicas,
            task: served.task(),
            tokenizer: served.tokenizer,
            image_size: served.data.image_size,
            thresholds: served.thresholds,
        })
    }

    /// Scores rows on `worker`'s replica: probabilities `[n, labels]`.
    fn score(
        &self,
        worker: usize,
        texts: &[Option<String>],
        images: &[f32],
        present: &[bool],
    ) -> Result<Vec<f32>, String> {
        let device = Default::default();
        let replica = &self.replicas[worker % self.replicas.len()];
        let model = replica.lock().unwrap_or_else(|p| p.into_inner());
        let input = ModelInput::<B>::from_vecs(
            self.tokenizer.as_ref(),
            texts,
            images,
            present,
            self.image_size as usize,
            &device,
        )
        .map_err(|e| error_chain(&e))?;
        let probs = model.probabilities(model.forward(&input)).into_data();
        probs
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|_| "the model's probabilities are not f32".to_string())
    }
}

/// The version served now; replaced whole on a swap.
#[derive(Debug)]
pub struct Current(RwLock<Arc<Loaded>>);

impl Current {
    /// Starts with `loaded`.
    pub fn new(loaded: Loaded) -> Self {
        Self(RwLock::new(Arc::new(loaded)))
    }

    /// The version new requests run on.
    pub fn get(&self) -> Arc<Loaded> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, loaded: Arc<Loaded>) -> Arc<Loaded> {
        std::mem::replace(
            &mut *self.0.write().unwrap_or_else(|p| p.into_inner()),
            loaded,
        )
    }
}

/// What a request gets back: probabilities and decisions, `[n, labels]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Probabilities.
    pub probs: Vec<f32>,
    /// Decisions at the version's thresholds.
    pub decisions: Vec<bool>,
}

/// Why a queued request failed.
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// Its input is bad (an image that does not decode or is too large): 400.
    Bad(BadInput),
    /// The model failed: 500.
    Failed(String),
}

/// A request waiting for a worker.
#[derive(Debug)]
pub struct Job {
    /// Its rows.
    pub rows: Rows,
    /// The version it was admitted on.
    pub model: Arc<Loaded>,
    /// When it was queued.
    pub enqueued: Instant,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<Scored, JobError>>,
}

/// Batching settings (`--max-batch`, `--max-delay-ms`, `--queue-bound`) and the
/// pixel bound the workers check.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// Rows per batch.
    pub max_batch: usize,
    /// The longest a request waits for others.
    pub max_delay: Duration,
    /// Requests that may wait.
    pub queue_bound: usize,
    /// Largest image, pixels.
    pub max_image_pixels: u64,
    /// Most bytes the image decoder may allocate for one image.
    pub max_image_alloc: u64,
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// The bounded queue and its workers.
#[derive(Debug)]
pub struct Engine {
    queue: Mutex<Queue>,
    wake: Condvar,
    settings: BatchSettings,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// A queue with these settings; no workers yet ([`Engine::start_workers`]).
    pub fn new(settings: BatchSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            settings,
            metrics,
        })
    }

    /// Starts `threads` workers; they run until [`Engine::close`] and an empty queue.
    pub fn start_workers(self: &Arc<Self>, threads: usize) -> std::io::Result<Vec<JoinHandle<()>>> {
        (0..threads.max(1))
            .map(|w| {
                let engine = self.clone();
                std::thread::Builder::new()
                    .name(format!("vigil-serve-{w}"))
                    .spawn(move || {
                        while let Some(batch) = engine.next_batch() {
                            engine.run_batch(w, batch);
                        }
                    })
            })
            .collect()
    }

    /// Queues a request, or gives it back when the queue is at its bound.
    pub fn submit(&self, job: Job) -> Result<(), (Overloaded, Job)> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(o) = admit(q.jobs.len(), self.settings.queue_bound) {
            return Err((o, job));
        }
        q.jobs.push_back(job);
        self.metrics.set_queue_depth(q.jobs.len());
        drop(q);
        self.wake.notify_one();
        Ok(())
    }

    /// Lets the workers finish what is queued and exit.
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.wake.notify_all();
    }

    /// Blocks until a batch is due (None: closed and empty).
    fn next_batch(&self) -> Option<Vec<Job>> {
        let s = self.settings;
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let Some(head) = q.jobs.front() else {
                if q.closed {
                    return None;
                }
                q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            let rows: Vec<usize> = q
                .jobs
                .iter()
                .take_while(|j| Arc::ptr_eq(&j.model, &head.model))
                .map(|j| j.rows.len())
                .collect();
            let total: usize = rows.iter().sum();
            let waited = head.enqueued.elapsed();
            let decision = if q.closed {
                Decision::Flush
            } else {
                decide(total, waited, s.max_batch, s.max_delay)
            };
            match decision {
                Decision::Flush => {
                    let k = take(&rows, s.max_batch);
                    let batch: Vec<Job> = q.jobs.drain(..k).collect();
                    self.metrics.set_queue_depth(q.jobs.len());
                    if !q.jobs.is_empty() {
                        self.wake.notify_one();
                    }
                    return Some(batch);
                }
                Decision::Wait(d) => {
                    q = self
                        .wake
                        .wait_timeout(q, d)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }

    /// Decodes the batch's images, scores it, answers every request.
    fn run_batch(&self, worker: usize, jobs: Vec<Job>) {
        let Some(model) = jobs.first().map(|j| j.model.clone()) else {
            return;
        };
        let side = model.image_size as usize;
        let plane = if model.towers.image {
            3 * side * side
        } else {
            0
        };
        let mut live = Vec::with_capacity(jobs.len());
        let (mut texts, mut images, mut present) = (Vec::new(), Vec::new(), Vec::new());
        for job in jobs {
            let n = job.rows.len();
            let start = images.len();
            images.resize(start + n * plane, 0.0);
            let mut bad = None;
            if plane > 0 {
                for (row, img) in job.rows.images.iter().enumerate() {
                    if let Some(bytes) = img {
                        let out = &mut images[start + row * plane..start + (row + 1) * plane];
                        if let Err(message) = decode_image(
                            bytes,
                            model.image_size,
                            self.settings.max_image_pixels,
                            self.settings.max_image_alloc,
                            out,
                        ) {
                            bad = Some(BadInput {
                                input: Some(IMAGE.into()),
                                row: Some(row),
                                message,
                            });
                            break;
                        }
                    }
                }
            }
            if let Some(bad) = bad {
                images.truncate(start);
                let _ = job.reply.send(Err(JobError::Bad(bad)));
                continue;
            }
            texts.extend(job.rows.texts.iter().cloned());
            present.extend(job.rows.images.iter().map(|i| plane > 0 && i.is_some()));
            live.push(job);
        }
        if live.is_empty() {
            return;
        }
        let rows = texts.len();
        self.metrics.batch(rows);
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            model.score(worker, &texts, &images, &present)
        }));
        let probs = match result {
            Ok(Ok(p)) if p.len() == rows * model.labels.len() => p,
            Ok(Ok(p)) => {
                let msg = format!("the model returned {} values for {rows} rows", p.len());
                return fail_all(live, &msg);
            }
            Ok(Err(e)) => return fail_all(live, &e),
            Err(_) => return fail_all(live, "the model panicked on this batch"),
        };
        let l = model.labels.len();
        let mut offset = 0;
        for job in live {
            let n = job.rows.len();
            let p = probs[offset * l..(offset + n) * l].to_vec();
            offset += n;
            let d = p
                .chunks(l.max(1))
                .flat_map(|row| decisions(row, &model.thresholds, model.task))
                .collect();
            let _ = job.reply.send(Ok(Scored {
                probs: p,
                decisions: d,
            }));
        }
    }
}

fn fail_all(jobs: Vec<Job>, message: &str) {
    eprintln!("vigil serve: error: a batch failed: {message}");
    for job in jobs {
        let _ = job.reply.send(Err(JobError::Failed(message.to_string())));
    }
}

/// The pixel count of an encoded image, read from its header only (no pixel is
/// decoded): refused when it is not a PNG, JPEG or WebP file, empty, or more than
/// `max_pixels`. Cheap enough for the HTTP handler to run before queueing.
pub fn check_image_header(bytes: &[u8], max_pixels: u64) -> Result<(u32, u32), String> {
    let r = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read the image: {e}"))?;
    if r.format().is_none() {
        return Err("not a PNG, JPEG or WebP file".into());
    }
    let (w, h) = r
        .into_dimensions()
        .map_err(|e| format!("the image is corrupt: {e}"))?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels == 0 {
        return Err("the image is empty (0 pixels)".into());
    }
    if pixels > max_pixels {
        return Err(format!(
            "{w}×{h} = {pixels} pixels is more than --max-image-pixels {max_pixels}"
        ));
    }
    Ok((w, h))
}

/// Decodes an encoded image, checks its pixel count from the header first, and
/// writes `3·size·size` normalised floats (as the data layer does for files). The
/// decoder may allocate at most `max_alloc` bytes (a PNG whose header is within
/// the pixel bound but whose pixels are wide is refused, not decoded).
pub fn decode_image(
    bytes: &[u8],
    size: u32,
    max_pixels: u64,
    max_alloc: u64,
    out: &mut [f32],
) -> Result<(), String> {
    let (w, h) = check_image_header(bytes, max_pixels)?;
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read the image: {e}"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(max_alloc);
    reader.limits(limits);
    let rgb = reader
        .decode()
        .map_err(|e| match e {
            image::ImageError::Limits(l) => format!(
                "decoding {w}×{h} pixels would allocate more than {max_alloc} bytes \
                 (4 per pixel of --max-image-pixels): {l}"
            ),
            e => format!("the image is corrupt: {e}"),
        })?
        .into_rgb8();
    if rgb.width() == size && rgb.height() == size {
        normalise_chw(&rgb, out);
    } else {
        resize_normalise_chw(&rgb, size, out);
    }
    Ok(())
}

/// An error and its sources, `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

/// A stop signal for the poller thread.
#[derive(Debug, Default)]
pub struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    /// Asks the poller to stop.
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Sleeps `d` or until stopped; true when stopped.
    fn sleep(&self, d: Duration) -> bool {
        let g = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = self
            .wake
            .wait_timeout_while(g, d, |s| !*s)
            .unwrap_or_else(|p| p.into_inner());
        *g
    }
}

/// The newest version the repository offers now, and the newer ones skipped as
/// damaged. A directory is listed and each version verified once
/// ([`VerifyCache`]: the manifest and every file's sha256, again only when the
/// manifest changes), the rule of `vigil predict` without re-hashing the same
/// files every poll. A single version directory has nothing newer to offer. A
/// bucket URL is only listed ([`newest_listed`]: the newest with a manifest, not
/// failed before), so a poll downloads nothing; the files are read and verified
/// once, when [`Loaded::load`] loads that version.
fn poll_newest(
    repo: &Location,
    failed: &[u64],
    cache: &mut VerifyCache,
) -> Result<(Option<u64>, Skipped), ServeError> {
    let repo = match repo {
        Location::Remote(url) => return Ok((newest_listed(url, failed)?, Vec::new())),
        Location::Local(dir) => dir.as_path(),
    };
    if repo.join(MANIFEST_FILE).is_file() {
        return Ok((None, Vec::new()));
    }
    let repo_err = |source| {
        ServeError::from(LocateError::Repo {
            dir: repo.to_path_buf(),
            source: Box::new(source),
        })
    };
    let store = ModelRepo::open(repo).map_err(repo_err)?;
    let versions = store.versions().map_err(repo_err)?;
    let stamp = |v: u64| {
        let meta = std::fs::metadata(repo.join(v.to_string()).join(MANIFEST_FILE)).ok()?;
        Some(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    };
    // A manifest naming an invalid file (`../x`) is as permanent as a hash
    // mismatch: remembered, not re-hashed every poll. Other errors (I/O) may pass.
    let verify = |v: u64| match store.version(v) {
        Ok(_) => Verdict::Complete,
        Err(e @ (StoreError::Corrupt { .. } | StoreError::InvalidName { .. })) => {
            Verdict::Damaged(e.to_string())
        }
        Err(e) => Verdict::Unreadable(e.to_string()),
    };
    Ok(cache.newest(&versions, stamp, verify))
}

/// Logs each version of `skipped` not in `reported` yet, once, and remembers it:
/// the start-up load and every poll report through this, so a version passed
/// over is named once for the life of the server.
pub fn report_skipped(skipped: &[(u64, String)], reported: &mut Vec<u64>) {
    for (v, why) in skipped {
        if !reported.contains(v) {
            reported.push(*v);
            eprintln!("vigil serve: ignoring damaged version {v}: {why}");
        }
    }
}

/// Polls `repo` every `every`, loads a newer complete version in the background
/// and swaps it in; logs every swap, failed load and damaged version once
/// (`reported`: the versions the start-up load already named).
pub fn start_poller(
    repo: Location,
    every: Duration,
    replicas: usize,
    current: Arc<Current>,
    metrics: Arc<Metrics>,
    stop: Arc<Stop>,
    mut reported: Vec<u64>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("vigil-serve-poll".into())
        .spawn(move || {
            let mut failed: Vec<u64> = Vec::new();
            let mut last_error = String::new();
            let mut cache = VerifyCache::default();
            while !stop.sleep(every) {
                let newest = match poll_newest(&repo, &failed, &mut cache) {
                    Ok((newest, skipped)) => {
                        last_error.clear();
                        report_skipped(&skipped, &mut reported);
                        newest
                    }
                    Err(e) => {
                        let msg = error_chain(&e);
                        if msg != last_error {
                            eprintln!("vigil serve: warning: {msg}; keeping the loaded version");
                            last_error = msg;
                        }
                        None
                    }
                };
                let loaded = current.get().version;
                let Pickup::Load(v) = pickup(loaded, None, newest, &failed) else {
                    continue;
                };
                eprintln!("vigil serve: loading version {v}");
                match Loaded::load(&repo, Some(v), replicas) {
                    Ok(new) => {
                        current.set(Arc::new(new));
                        metrics.set_version(v, true);
                        eprintln!("vigil serve: swapped: serving version {v} (was {loaded})");
                    }
                    Err(e) => {
                        failed.push(v);
                        metrics.load_failed();
                        eprintln!(
                            "vigil serve: error: version {v} failed to load, still serving {loaded}: {}",
                            error_chain(&e)
                        );
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 10, 30]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    /// A baseline JPEG of `w`×`h` in 172 bytes: quantisation and Huffman tables,
    /// the frame header, a scan header and almost no data — the shape of a
    /// decompression bomb (hundreds of bytes declaring millions of pixels).
    fn jpeg_bomb(w: u16, h: u16) -> Vec<u8> {
        let mut j = vec![0xff, 0xd8, 0xff, 0xdb, 0x00, 0x43, 0x00];
        j.extend_from_slice(&[1u8; 64]);
        j.extend_from_slice(&[0xff, 0xc0, 0x00, 0x0b, 0x08]);
        j.extend_from_slice(&h.to_be_bytes());
        j.extend_from_slice(&w.to_be_bytes());
        j.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
        for class in [0x00, 0x10] {
            j.extend_from_slice(&[0xff, 0xc4, 0x00, 0x14, class, 1]);
            j.extend_from_slice(&[0u8; 15]);
            j.push(0x00);
        }
        j.extend_from_slice(&[0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00]);
        j.extend_from_slice(&[0u8; 32]);
        j.extend_from_slice(&[0xff, 0xd9]);
        j
    }

    #[test]
    fn a_bomb_is_refused_from_its_header_in_milliseconds() {
        let bomb = jpeg_bomb(5000, 5000);
        let started = Instant::now();
        let err = check_image_header(&bomb, crate::Limits::default().max_image_pixels).unwrap_err();
        assert!(err.contains("5000×5000 = 25000000 pixels"), "{err}");
        let mut out = vec![0.0; 3 * 8 * 8];
        let l = crate::Limits::default();
        let err = decode_image(&bomb, 8, l.max_image_pixels, l.max_image_alloc(), &mut out);
        assert!(err.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // The same bytes within the bound are a JPEG that decodes (to black).
        assert!(check_image_header(&jpeg_bomb(64, 48), 1000).is_err());
        assert_eq!(check_image_header(&jpeg_bomb(64, 48), 10_000), Ok((64, 48)));
    }

    #[test]
    fn images_decode_like_files_and_bad_ones_are_refused() {
        let mut out = vec![0.0; 3 * 8 * 8];
        decode_image(&png(16, 12), 8, 1000, 4000, &mut out).unwrap();
        let expect = (200.0 / 255.0 - vigil_data::IMAGENET_MEAN[0]) / vigil_data::IMAGENET_STD[0];
        assert!((out[0] - expect).abs() < 1e-4);
        let err = decode_image(&png(40, 30), 8, 1000, 4000, &mut out).unwrap_err();
        assert!(err.contains("--max-image-pixels 1000"), "{err}");
        let err = decode_image(b"not an image", 8, 1000, 4000, &mut out).unwrap_err();
        assert!(err.contains("not a PNG"), "{err}");
        let mut broken = png(16, 12);
        broken.truncate(broken.len() / 2);
        assert!(decode_image(&broken, 8, 1000, 4000, &mut out).is_err());
        // Within the pixel bound, but the decoder may not allocate its pixels.
        let err = decode_image(&png(16, 12), 8, 1000, 100, &mut out).unwrap_err();
        assert!(err.contains("allocate more than 100 bytes"), "{err}");
    }
}
