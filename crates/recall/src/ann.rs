//! The approximate index itself: HNSW over inner products of L2-normalised vectors
//! (so the score is the cosine similarity), kept by `usearch`.
//!
//! Why usearch: it is the maintained Rust-reachable HNSW that deletes (the reason
//! banks outgrow FAISS, whose HNSW cannot), saves and loads from a byte buffer (so a
//! version is verified bytes from the store, local or a bucket), and adds from many
//! threads into one graph. Measured against `faiss-cpu` 1.15.1's `IndexHNSWFlat` with
//! the same `M`, `efConstruction` and `efSearch` on 100,000 × 384 vectors
//! (`benches/recall_ann.py`; the book's recall page has the table): equal recall@10,
//! the same build time, and 0.70–0.82× FAISS's queries/s, once the distance is
//! [`crate::kernel`]'s f32 inner product instead of usearch's own f64-accumulating
//! one (which halved it again). The rest of the gap is memory latency: FAISS
//! computes four distances at once and prefetches neighbours; usearch's binding
//! prefetches nothing. `hnsw_rs`, measured the same way, searched no faster, built
//! slower and has no delete. This file is the only one that names usearch.
//!
//! Keys are `u64` slots assigned by [`crate::Bank`]; deleting a key marks it in the
//! graph (usearch's tombstone, saved with the index) so no search returns it, and a
//! rebuild ([`crate::Bank::compact`]) drops the tombstones for good.

use serde::{Deserialize, Serialize};

use crate::error::RecallError;

/// The graph's parameters, as FAISS names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HnswParams {
    /// Neighbours per node above the base layer (`M`; the base layer keeps 2·M).
    pub m: usize,
    /// Candidate list while inserting (`efConstruction`).
    pub ef_construction: usize,
    /// Candidate list while searching (`efSearch`); a search for more than this many
    /// neighbours widens it to `k`.
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 200,
            ef_search: 128,
        }
    }
}

impl HnswParams {
    /// Every problem with the parameters, for a message naming the flags.
    pub fn validate(&self) -> Result<(), RecallError> {
        let mut bad = Vec::new();
        if !(2..=256).contains(&self.m) {
            bad.push(format!("--m must be in 2..=256 (got {})", self.m));
        }
        if !(1..=4096).contains(&self.ef_construction) {
            bad.push(format!(
                "--ef-construction must be in 1..=4096 (got {})",
                self.ef_construction
            ));
        }
        if !(1..=4096).contains(&self.ef_search) {
            bad.push(format!(
                "--ef-search must be in 1..=4096 (got {})",
                self.ef_search
            ));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(RecallError::Usage(bad.join("; ")))
        }
    }
}

/// One neighbour: the key and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// The slot.
    pub key: u64,
    /// Cosine similarity in [-1, 1].
    pub similarity: f32,
}

/// An HNSW graph of `dims`-dimensional unit vectors.
pub struct Ann {
    index: usearch::Index,
    dims: usize,
    params: HnswParams,
}

impl std::fmt::Debug for Ann {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ann")
            .field("dims", &self.dims)
            .field("params", &self.params)
            .field("live", &self.index.size())
            .finish()
    }
}

/// Sets [`crate::kernel`]'s inner product as the graph's distance. The metric is a
/// function of the process, not of the file: every graph gets it when built and
/// again after loading (a load restores the file's own metric kind). The distance
/// keeps usearch's IP convention, `1 - dot`.
fn install_metric(index: &mut usearch::Index, dims: usize) {
    // One closure per kernel, each calling its kernel directly: the graph walk calls
    // this for every distance, and an indirect call per distance showed in profiles.
    /// # Safety
    /// `a` and `b` point at `dims` f32 values each.
    unsafe fn slices<'a>(a: *const f32, b: *const f32, dims: usize) -> (&'a [f32], &'a [f32]) {
        // SAFETY: the caller's contract.
        unsafe {
            (
                std::slice::from_raw_parts(a, dims),
                std::slice::from_raw_parts(b, dims),
            )
        }
    }
    if crate::kernel::has_avx2() {
        index.change_metric::<f32>(Box::new(move |a: *const f32, b: *const f32| {
            // SAFETY: usearch calls the metric with two vectors of this index's
            // `dims` f32 values (stored vectors and queries of that width).
            let (a, b) = unsafe { slices(a, b, dims) };
            1.0 - crate::kernel::dot_avx2_entry(a, b)
        }));
    } else {
        index.change_metric::<f32>(Box::new(move |a: *const f32, b: *const f32| {
            // SAFETY: as above.
            let (a, b) = unsafe { slices(a, b, dims) };
            1.0 - crate::kernel::dot_portable(a, b)
        }));
    }
}

fn ann_err(e: impl std::fmt::Display) -> RecallError {
    RecallError::Ann(e.to_string())
}

impl Ann {
    /// An empty graph with room for `capacity` vectors added from `threads` threads.
    pub fn new(
        dims: usize,
        params: HnswParams,
        capacity: usize,
        threads: usize,
    ) -> Result<Self, RecallError> {
        if dims == 0 {
            return Err(RecallError::Usage("vectors have no dimensions".into()));
        }
        let options = usearch::IndexOptions {
            dimensions: dims,
            metric: usearch::MetricKind::IP,
            quantization: usearch::ScalarKind::F32,
            connectivity: params.m,
            expansion_add: params.ef_construction,
            expansion_search: params.ef_search,
            multi: false,
        };
        let mut index = usearch::Index::new(&options).map_err(ann_err)?;
        install_metric(&mut index, dims);
        index
            .reserve_capacity_and_threads(capacity.max(1), threads.max(1))
            .map_err(ann_err)?;
        Ok(Self {
            index,
            dims,
            params,
        })
    }

    /// Reads a graph saved by [`Self::to_bytes`].
    pub fn from_bytes(
        bytes: &[u8],
        dims: usize,
        params: HnswParams,
        threads: usize,
    ) -> Result<Self, RecallError> {
        let mut ann = Self::new(dims, params, 1, threads)?;
        ann.index.load_from_buffer(bytes).map_err(ann_err)?;
        install_metric(&mut ann.index, dims);
        if ann.index.dimensions() != dims {
            return Err(RecallError::Ann(format!(
                "the graph has {} dimensions, its manifest says {dims}",
                ann.index.dimensions()
            )));
        }
        // The search width is a setting of the reader, not of the file.
        ann.index.change_expansion_search(params.ef_search);
        ann.index
            .reserve_capacity_and_threads(ann.index.size().max(1), threads.max(1))
            .map_err(ann_err)?;
        Ok(ann)
    }

    /// The graph as bytes (tombstones included).
    pub fn to_bytes(&self) -> Result<Vec<u8>, RecallError> {
        let mut buf = vec![0u8; self.index.serialized_length()];
        self.index.save_to_buffer(&mut buf).map_err(ann_err)?;
        Ok(buf)
    }

    /// Dimensions of the vectors.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Live (not deleted) vectors.
    pub fn len(&self) -> usize {
        self.index.size()
    }

    /// Whether no vector is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the graph and its vectors hold in memory.
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_usage()
    }

    /// Adds unit vectors `rows` (row-major, `keys.len() × dims`) under `keys`, from
    /// up to `threads` threads into the one graph.
    pub fn add(&self, keys: &[u64], rows: &[f32], threads: usize) -> Result<(), RecallError> {
        debug_assert_eq!(rows.len(), keys.len() * self.dims);
        let need = self.index.size() + keys.len();
        if need > self.index.capacity() {
            self.index
                .reserve_capacity_and_threads(need.next_power_of_two(), threads.max(1))
                .map_err(ann_err)?;
        }
        let threads = threads.clamp(1, keys.len().max(1));
        let chunk = keys.len().div_ceil(threads).max(1);
        let results: Vec<Result<(), RecallError>> = std::thread::scope(|s| {
            let handles: Vec<_> = keys
                .chunks(chunk)
                .zip(rows.chunks(chunk * self.dims))
                .map(|(ks, vs)| {
                    s.spawn(move || {
                        for (k, v) in ks.iter().zip(vs.chunks_exact(self.dims)) {
                            self.index.add(*k, v).map_err(ann_err)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(ann_err("add panicked"))))
                .collect()
        });
        results.into_iter().collect()
    }

    /// Marks `key` deleted: no search returns it again.
    pub fn remove(&self, key: u64) -> Result<(), RecallError> {
        self.index.remove(key).map(|_| ()).map_err(ann_err)
    }

    /// The stored vector of `key`.
    pub fn vector(&self, key: u64) -> Result<Vec<f32>, RecallError> {
        let mut v = vec![0f32; self.dims];
        let n = self.index.get(key, &mut v).map_err(ann_err)?;
        if n == 0 {
            return Err(RecallError::Ann(format!("no vector under key {key}")));
        }
        Ok(v)
    }

    /// The `k` nearest live vectors to the unit vector `query`, most similar first.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbour>, RecallError> {
        if k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let m = self.index.search(query, k).map_err(ann_err)?;
        Ok(m.keys
            .into_iter()
            .zip(m.distances)
            .map(|(key, d)| Neighbour {
                key,
                similarity: 1.0 - d,
            })
            .collect())
    }
}
