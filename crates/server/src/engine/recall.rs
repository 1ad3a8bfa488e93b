//! [`RecallIndex`]: one version of the recall index repository, loaded for the
//! model version whose fused vectors it holds, and searched row by row; and
//! [`model_identity`], the key that pairs them.
//!
//! An index version names its model by the sha256 of the model version's
//! `MANIFEST.json` (which holds the sha256 of every file: the identity of the
//! weights). After loading, the index's own manifest is checked again — the
//! model's fused `embedding`, this model version, this width — so an index of
//! another model, or of another of its vectors, is refused rather than searched
//! with vectors it does not hold.
//!
//! The graph (usearch) answers at most as many searches at once as it reserved
//! threads for, and refuses more: each index carries a semaphore of that many
//! permits, and searches run on the blocking pool, never on the runtime's threads.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use vigil_recall::manifest::SourceKind;
use vigil_recall::{Bank, IndexRepo, RecallError, Vectors};
use vigil_store::checkpoint::MANIFEST_FILE;
use vigil_store::storage::{Bucket, Location};

use super::Loaded;
use crate::protocol::Neighbour;

/// The vector of `vigil embed` that recall serves: the fused one, the head's input.
pub const FIELD: &str = "embedding";

/// One index version, loaded.
#[derive(Debug)]
pub struct RecallIndex {
    /// Its version number.
    pub version: u64,
    /// Where it was read from.
    pub location: String,
    /// The model version it belongs to.
    pub model_version: u64,
    /// The labels of the items' scores (empty: the index holds none).
    pub labels: Vec<String>,
    bank: Bank,
    permits: Arc<Semaphore>,
}

impl RecallIndex {
    /// Loads `version` of `repo` for `model` (whose identity must be set):
    /// verified files, the manifest checked against the model, the graph ready
    /// for `threads` searches at once with `ef_search` (None: the index's own).
    pub fn load(
        repo: &IndexRepo,
        version: u64,
        model: &Loaded,
        ef_search: Option<usize>,
        threads: usize,
    ) -> Result<Self, RecallError> {
        let threads = threads.max(1);
        let loaded = repo.load(Some(version), ef_search, threads)?;
        let m = loaded.bank.manifest();
        let wrong = |why: String| RecallError::Usage(format!("index {}: {why}", loaded.location));
        let named = m.embedding.model.as_ref();
        if m.embedding.kind != SourceKind::Model || m.embedding.field != FIELD {
            return Err(wrong(format!(
                "holds {:?} vectors of `{}`; `vigil serve` searches with the model's fused \
                 `{FIELD}` (build it with `vigil index build --model`)",
                m.embedding.kind, m.embedding.field
            )));
        }
        if named.map(|n| n.manifest_sha256.as_str()) != model.identity.as_deref() {
            return Err(wrong(format!(
                "was embedded by {}, not by the served model version {}",
                named.map_or("no model".into(), |n| format!(
                    "model {} version {}",
                    n.name, n.version
                )),
                model.version
            )));
        }
        if m.dims != model.embedding_dims {
            return Err(wrong(format!(
                "holds vectors of {} dimensions, the model's are {}",
                m.dims, model.embedding_dims
            )));
        }
        Ok(Self {
            version,
            location: loaded.location,
            model_version: model.version,
            labels: m.labels.clone(),
            bank: loaded.bank,
            permits: Arc::new(Semaphore::new(threads)),
        })
    }

    /// Live items.
    pub fn len(&self) -> usize {
        self.bank.len()
    }

    /// Whether no item is live.
    pub fn is_empty(&self) -> bool {
        self.bank.is_empty()
    }

    /// The `k` nearest items to each row of `vectors` (`[rows, dims]`, the
    /// model's fused vectors, normalised here), most similar first, with the
    /// score of label `label` (an index into [`Self::labels`]).
    pub async fn search(
        self: &Arc<Self>,
        vectors: Vec<f32>,
        k: usize,
        label: Option<usize>,
    ) -> Result<Vec<Vec<Neighbour>>, String> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "the index was closed".to_string())?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            me.search_now(&vectors, k, label)
        })
        .await
        .map_err(|_| "the search panicked".to_string())?
    }

    fn search_now(
        &self,
        vectors: &[f32],
        k: usize,
        label: Option<usize>,
    ) -> Result<Vec<Vec<Neighbour>>, String> {
        let dims = self.bank.manifest().dims;
        let mut out = Vec::with_capacity(vectors.len() / dims.max(1));
        for (row, v) in vectors.chunks(dims.max(1)).enumerate() {
            let mut unit = Vectors::default();
            unit.push(String::new(), v)
                .map_err(|why| format!("row {row}: the model's embedding is {why}"))?;
            let found = self
                .bank
                .search(&unit.data, k)
                .map_err(|e| format!("row {row}: {e}"))?;
            out.push(
                found
                    .into_iter()
                    .map(|f| Neighbour {
                        id: f.item.meta.id.clone(),
                        similarity: f.similarity,
                        score: label.and_then(|l| f.item.meta.scores.get(l).copied()),
                    })
                    .collect(),
            );
        }
        Ok(out)
    }
}

/// sha256 (hex) of model `version`'s `MANIFEST.json` as the repository `repo`
/// holds it (`repo` itself when it is one version's directory): what `vigil
/// index build --model` records. Read again for each version, never cached: a
/// version re-published by hand under the same number is another model.
pub fn model_identity(repo: &Location, version: u64) -> Result<String, String> {
    let bytes = match repo {
        Location::Local(dir) => {
            let single = dir.join(MANIFEST_FILE);
            let path = if single.is_file() {
                single
            } else {
                dir.join(version.to_string()).join(MANIFEST_FILE)
            };
            std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        Location::Remote(url) => {
            let bucket = Bucket::open(url).map_err(|e| e.to_string())?;
            let key = format!("{version}/{MANIFEST_FILE}");
            match bucket.get(&key).map_err(|e| e.to_string())? {
                Some(b) => b.to_vec(),
                None => bucket
                    .get(MANIFEST_FILE)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("{url}: no {key}"))?
                    .to_vec(),
            }
        }
    };
    Ok(hex(&Sha256::digest(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_the_sha256_of_the_manifest_file() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path();
        std::fs::create_dir_all(repo.join("3")).unwrap();
        std::fs::write(repo.join("3").join(MANIFEST_FILE), b"abc").unwrap();
        let loc = Location::Local(repo.to_path_buf());
        assert_eq!(
            model_identity(&loc, 3).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let err = model_identity(&loc, 4).unwrap_err();
        assert!(err.contains("4/MANIFEST.json"), "{err}");
        // One version's own directory.
        let one = Location::Local(repo.join("3"));
        assert_eq!(model_identity(&one, 3), model_identity(&loc, 3));
    }
}
