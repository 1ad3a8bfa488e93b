//! Risk recall, free of burn: find more of what is known bad.
//!
//! - [`ann`]: the HNSW graph (usearch) of unit vectors, cosine similarity, deletes.
//! - [`bank`]: a [`Bank`] is the graph plus the item behind each slot (id, known
//!   labels, the model's scores, text and image for review pages) and the
//!   [`manifest`]; it builds, adds (upserts), deletes (tombstones), compacts, searches
//!   and becomes the files of a version.
//! - [`publish`]: versions in a repository of their own, published atomically
//!   through the store like model versions (a directory or a bucket).
//! - [`mod@recall`]: seeds in, the nearest items out with similarity, nearest seed, the
//!   model's score and a rank fusing both.
//! - [`exact`]: brute-force search, the reference for recall@k.
//! - [`kernel`]: the f32 inner product the graph and exact search use.
//! - [`vectors`]: vectors in, from `vigil embed` JSONL or `.npy`; [`rows`]: what an
//!   item keeps of its data row (id, known labels, text, image).
//! - [`milvus`]: the same bank operations against a Milvus server, for banks larger
//!   than one machine's memory.
//!
//! Embedding rows is not done here (it needs the model, which needs burn): the CLI
//! embeds through `vigil_infer` and hands vectors in.

pub mod ann;
pub mod bank;
pub mod error;
pub mod exact;
pub mod kernel;
pub mod manifest;
pub mod milvus;
pub mod publish;
pub mod recall;
pub mod rows;
pub mod vectors;

pub use ann::{Ann, HnswParams, Neighbour};
pub use bank::{Added, Bank, Found, Item, ItemMeta};
pub use error::RecallError;
pub use manifest::{EmbeddingSource, FileRef, IndexManifest, ModelRef, SourceKind};
pub use milvus::{Milvus, MilvusUrl};
pub use publish::{IndexRepo, Loaded};
pub use recall::{Exact, Hit, RecallOptions, Searcher, Seed, recall};
pub use vectors::Vectors;
