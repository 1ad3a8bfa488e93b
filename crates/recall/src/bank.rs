//! A bank: the graph, the item behind each key, and the manifest, as one value
//! that builds, changes (add, delete, compact), searches and turns into the files of
//! a version.
//!
//! Keys are slots `0..n` in insertion order; a deleted item keeps its slot as a
//! tombstone (in `items.jsonl` and in the graph) until [`Bank::compact`] rebuilds
//! the graph from the live vectors. Adding an id that is already live replaces it
//! (an upsert, as Qdrant and Milvus do): the old slot becomes a tombstone.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::ann::{Ann, HnswParams};
use crate::error::RecallError;
use crate::manifest::{EmbeddingSource, FORMAT, IndexManifest};
use crate::vectors::Vectors;

/// The graph file of a version.
pub const GRAPH_FILE: &str = "graph.usearch";
/// The items file of a version (one JSON line per slot).
pub const ITEMS_FILE: &str = "items.jsonl";
/// The manifest of a version.
pub const INDEX_FILE: &str = "index.json";
/// Every file a version must have.
pub const INDEX_FILES: [&str; 3] = [INDEX_FILE, ITEMS_FILE, GRAPH_FILE];

/// What is known about an indexed row besides its vector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemMeta {
    /// The row's id.
    pub id: String,
    /// Labels the row is known to carry (value 1 in its `labels`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The model's probability per label at build time (the manifest's `labels` order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<f32>,
    /// The row's text, cut to [`TEXT_CHARS`] characters, for review pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The row's image path as written in its file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// Characters of text kept per item.
pub const TEXT_CHARS: usize = 280;

/// One slot of `items.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// The slot (the graph's key).
    pub key: u64,
    /// Deleted (a tombstone).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The row.
    #[serde(flatten)]
    pub meta: ItemMeta,
}

/// A search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Found<'a> {
    /// The item.
    pub item: &'a Item,
    /// Cosine similarity to the query.
    pub similarity: f32,
}

/// What [`Bank::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Added {
    /// New ids.
    pub added: usize,
    /// Ids that were live and now have the new vector.
    pub replaced: usize,
}

/// An index in memory.
#[derive(Debug)]
pub struct Bank {
    manifest: IndexManifest,
    items: Vec<Item>,
    live: HashMap<String, u64>,
    ann: Ann,
}

/// Every row has its vector, in the same order, and no id appears twice.
pub(crate) fn check_meta(vectors: &Vectors, meta: &[ItemMeta]) -> Result<(), RecallError> {
    if meta.len() != vectors.len() {
        return Err(RecallError::Usage(format!(
            "{} vectors but {} rows",
            vectors.len(),
            meta.len()
        )));
    }
    let mut seen = HashMap::new();
    for (i, m) in meta.iter().enumerate() {
        if m.id != vectors.ids[i] {
            return Err(RecallError::Usage(format!(
                "row {} has id {:?} but its vector is {:?}'s",
                i + 1,
                m.id,
                vectors.ids[i]
            )));
        }
        if let Some(first) = seen.insert(m.id.as_str(), i) {
            return Err(RecallError::Usage(format!(
                "id {:?} appears twice (rows {} and {})",
                m.id,
                first + 1,
                i + 1
            )));
        }
    }
    Ok(())
}

/// [`check_meta`], and rows that fit `manifest`: its width, and as many scores as
/// it has labels (or none).
pub(crate) fn check_rows(
    vectors: &Vectors,
    meta: &[ItemMeta],
    manifest: &IndexManifest,
) -> Result<(), RecallError> {
    check_meta(vectors, meta)?;
    if !vectors.is_empty() && vectors.dims != manifest.dims {
        return Err(RecallError::Usage(format!(
            "the rows' vectors have {} dimensions, the index {}",
            vectors.dims, manifest.dims
        )));
    }
    let labels = manifest.labels.len();
    if let Some(m) = meta
        .iter()
        .find(|m| !m.scores.is_empty() && m.scores.len() != labels)
    {
        return Err(RecallError::Usage(format!(
            "id {:?} has {} scores, the index has {labels} labels",
            m.id,
            m.scores.len()
        )));
    }
    Ok(())
}

impl Bank {
    /// Builds a bank of `vectors` with `meta` per row (same order, same ids).
    pub fn build(
        embedding: EmbeddingSource,
        labels: Vec<String>,
        params: HnswParams,
        vectors: &Vectors,
        meta: Vec<ItemMeta>,
        threads: usize,
    ) -> Result<Self, RecallError> {
        params.validate()?;
        check_meta(vectors, &meta)?;
        if vectors.is_empty() {
            return Err(RecallError::Usage("no rows to index".into()));
        }
        let ann = Ann::new(vectors.dims, params, vectors.len(), threads)?;
        let mut bank = Self {
            manifest: IndexManifest {
                format: FORMAT,
                dims: vectors.dims,
                metric: "cosine".into(),
                hnsw: params,
                embedding,
                labels,
                count: 0,
                tombstones: 0,
                data_dir: None,
            },
            items: Vec::new(),
            live: HashMap::new(),
            ann,
        };
        bank.add(vectors, meta, threads)?;
        Ok(bank)
    }

    /// The manifest (counts up to date).
    pub fn manifest(&self) -> &IndexManifest {
        &self.manifest
    }

    /// Sets the directory that relative image paths resolve against.
    pub fn set_data_dir(&mut self, dir: Option<String>) {
        self.manifest.data_dir = dir;
    }

    /// Every slot, tombstones included, in key order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The live item with `id`.
    pub fn get(&self, id: &str) -> Option<&Item> {
        self.live.get(id).map(|&k| &self.items[k as usize])
    }

    /// Live items.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no item is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Bytes the graph holds in memory.
    pub fn memory_bytes(&self) -> usize {
        self.ann.memory_bytes()
    }

    /// The stored unit vector of the live item `id`.
    pub fn vector(&self, id: &str) -> Result<Vec<f32>, RecallError> {
        let key = self
            .live
            .get(id)
            .ok_or_else(|| RecallError::Usage(format!("id {id:?} is not in the index")))?;
        self.ann.vector(*key)
    }

    fn refresh_counts(&mut self) {
        self.manifest.count = self.live.len();
        self.manifest.tombstones = self.items.len() - self.live.len();
    }

    /// Adds `vectors` (an upsert by id). Nothing changes if any row is bad.
    pub fn add(
        &mut self,
        vectors: &Vectors,
        meta: Vec<ItemMeta>,
        threads: usize,
    ) -> Result<Added, RecallError> {
        check_rows(vectors, &meta, &self.manifest)?;
        let mut done = Added::default();
        let replaced: Vec<u64> = meta
            .iter()
            .filter_map(|m| self.live.get(&m.id).copied())
            .collect();
        for &k in &replaced {
            self.ann.remove(k)?;
            self.items[k as usize].deleted = true;
        }
        done.replaced = replaced.len();
        done.added = meta.len() - replaced.len();
        let first = self.items.len() as u64;
        let keys: Vec<u64> = (first..first + meta.len() as u64).collect();
        self.ann.add(&keys, &vectors.data, threads)?;
        for (key, m) in keys.into_iter().zip(meta) {
            self.live.insert(m.id.clone(), key);
            self.items.push(Item {
                key,
                deleted: false,
                meta: m,
            });
        }
        self.refresh_counts();
        Ok(done)
    }

    /// Deletes `ids` (tombstones). An id that is not live is an error naming it and
    /// nothing is deleted.
    pub fn delete(&mut self, ids: &[String]) -> Result<usize, RecallError> {
        let mut keys = Vec::with_capacity(ids.len());
        for id in ids {
            match self.live.get(id) {
                Some(&k) => keys.push(k),
                None => {
                    return Err(RecallError::Usage(format!(
                        "id {id:?} is not in the index (or is already deleted); nothing was deleted"
                    )));
                }
            }
        }
        keys.sort_unstable();
        keys.dedup();
        for &k in &keys {
            self.ann.remove(k)?;
            let item = &mut self.items[k as usize];
            item.deleted = true;
            self.live.remove(&item.meta.id);
        }
        self.refresh_counts();
        Ok(keys.len())
    }

    /// The same live items in a fresh graph without tombstones (slots renumbered in
    /// their old order).
    pub fn compact(&self, threads: usize) -> Result<Self, RecallError> {
        let mut vectors = Vectors {
            dims: self.manifest.dims,
            ..Vectors::default()
        };
        let mut meta = Vec::with_capacity(self.live.len());
        for item in self.items.iter().filter(|i| !i.deleted) {
            vectors.ids.push(item.meta.id.clone());
            vectors.data.extend(self.ann.vector(item.key)?);
            meta.push(item.meta.clone());
        }
        let ann = Ann::new(
            self.manifest.dims,
            self.manifest.hnsw,
            vectors.len(),
            threads,
        )?;
        let mut bank = Self {
            manifest: self.manifest.clone(),
            items: Vec::new(),
            live: HashMap::new(),
            ann,
        };
        bank.add(&vectors, meta, threads)?;
        Ok(bank)
    }

    /// The `k` live items most similar to the unit vector `query`, most similar
    /// first.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Found<'_>>, RecallError> {
        if query.len() != self.manifest.dims {
            return Err(RecallError::Usage(format!(
                "a query of {} dimensions against an index of {}",
                query.len(),
                self.manifest.dims
            )));
        }
        Ok(self
            .ann
            .search(query, k)?
            .into_iter()
            .filter_map(|n| {
                let item = self.items.get(n.key as usize)?;
                (!item.deleted).then_some(Found {
                    item,
                    similarity: n.similarity,
                })
            })
            .collect())
    }

    /// The version's files: manifest, items and graph.
    pub fn to_files(&self) -> Result<Vec<(String, Vec<u8>)>, RecallError> {
        let mut items = Vec::new();
        for item in &self.items {
            serde_json::to_writer(&mut items, item)
                .map_err(|e| RecallError::Ann(format!("items: {e}")))?;
            items.push(b'\n');
        }
        let manifest = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| RecallError::Ann(format!("manifest: {e}")))?;
        Ok(vec![
            (INDEX_FILE.into(), manifest),
            (ITEMS_FILE.into(), items),
            (GRAPH_FILE.into(), self.ann.to_bytes()?),
        ])
    }

    /// Reads a version's verified files. `ef_search` overrides the manifest's
    /// search width (a reader's setting).
    pub fn from_files(
        files: &BTreeMap<String, Vec<u8>>,
        location: &str,
        ef_search: Option<usize>,
        threads: usize,
    ) -> Result<Self, RecallError> {
        let damaged = |reason: String| RecallError::Damaged {
            location: location.to_string(),
            reason,
        };
        let file = |name: &str| {
            files
                .get(name)
                .ok_or_else(|| damaged(format!("no {name} (not an index version?)")))
        };
        let mut manifest: IndexManifest = serde_json::from_slice(file(INDEX_FILE)?)
            .map_err(|e| damaged(format!("{INDEX_FILE}: {e}")))?;
        if manifest.format != FORMAT {
            return Err(damaged(format!(
                "{INDEX_FILE}: format {} (this vigil reads {FORMAT})",
                manifest.format
            )));
        }
        if let Some(ef) = ef_search {
            manifest.hnsw.ef_search = ef;
        }
        manifest.hnsw.validate()?;
        let mut items = Vec::new();
        let mut live = HashMap::new();
        for (i, line) in file(ITEMS_FILE)?.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let item: Item = serde_json::from_slice(line)
                .map_err(|e| damaged(format!("{ITEMS_FILE}:{}: {e}", i + 1)))?;
            if item.key != items.len() as u64 {
                return Err(damaged(format!(
                    "{ITEMS_FILE}:{}: key {} out of order",
                    i + 1,
                    item.key
                )));
            }
            if !item.deleted && live.insert(item.meta.id.clone(), item.key).is_some() {
                return Err(damaged(format!(
                    "{ITEMS_FILE}:{}: id {:?} is live twice",
                    i + 1,
                    item.meta.id
                )));
            }
            items.push(item);
        }
        let ann = Ann::from_bytes(file(GRAPH_FILE)?, manifest.dims, manifest.hnsw, threads)
            .map_err(|e| damaged(format!("{GRAPH_FILE}: {e}")))?;
        if ann.len() != live.len() {
            return Err(damaged(format!(
                "{GRAPH_FILE} holds {} live vectors, {ITEMS_FILE} {}",
                ann.len(),
                live.len()
            )));
        }
        Ok(Self {
            manifest,
            items,
            live,
            ann,
        })
    }
}
