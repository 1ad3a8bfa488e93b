//! Nearest known bad: seeds (vectors of confirmed violations) in, the corpus items
//! nearest to any seed out, each with its similarity, the seed it is nearest to, the
//! model's score and a combined rank.
//!
//! An item's similarity is its maximum over the seeds (the distance to the nearest
//! known bad, as hash-and-embedding banks match). Each seed asks the index for
//! `k + excluded` neighbours, so excluding the seeds themselves never shortens the
//! list. The combined rank fuses the similarity ranking and the model's score
//! ranking of the same hits by reciprocal rank fusion (Cormack et al., 2009:
//! `1/(60 + rank_sim) + 1/(60 + rank_score)`), the usual way to merge two rankings
//! whose scales do not compare; without scores it is the similarity rank.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::ann::Neighbour;
use crate::bank::{Bank, Item, ItemMeta};
use crate::error::RecallError;
use crate::exact::exact_knn;

/// Reciprocal rank fusion's constant.
pub const RRF_K: f64 = 60.0;

/// A seed: an id (for the report) and its unit vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Seed {
    /// The seed's id.
    pub id: String,
    /// Its unit vector.
    pub vector: Vec<f32>,
}

/// How to search.
#[derive(Debug, Clone, Default)]
pub struct RecallOptions {
    /// Hits to return.
    pub k: usize,
    /// The label whose model score each hit carries (an index into the manifest's
    /// labels).
    pub score_label: Option<usize>,
    /// Ids never returned (the seeds themselves).
    pub exclude: HashSet<String>,
}

/// One hit, as `vigil recall` writes it (and `vigil queue --recall` reads it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The item's id.
    pub id: String,
    /// 1-based rank by similarity.
    pub rank: usize,
    /// Cosine similarity to the nearest seed.
    pub similarity: f32,
    /// That seed's id.
    pub seed: String,
    /// The model's probability for the chosen label at build time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Reciprocal-rank fusion of the similarity and score rankings.
    pub combined: f64,
    /// 1-based rank by `combined`.
    pub combined_rank: usize,
    /// Labels the item is known to carry.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The item's text (cut).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The item's image path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// What recall searches: the embedded [`Bank`] (its graph), [`Exact`] search over a
/// bank's live vectors, or a Milvus collection.
pub trait Searcher {
    /// Vector width.
    fn dims(&self) -> usize;
    /// The `k` live items most similar to the unit vector `query`, most similar
    /// first.
    fn nearest(&self, query: &[f32], k: usize) -> Result<Vec<(ItemMeta, f32)>, RecallError>;
}

impl Searcher for Bank {
    fn dims(&self) -> usize {
        self.manifest().dims
    }

    fn nearest(&self, query: &[f32], k: usize) -> Result<Vec<(ItemMeta, f32)>, RecallError> {
        Ok(self
            .search(query, k)?
            .into_iter()
            .map(|f| (f.item.meta.clone(), f.similarity))
            .collect())
    }
}

/// Brute-force search over a bank's live vectors (the reference for the graph).
#[derive(Debug)]
pub struct Exact<'a> {
    live: Vec<&'a Item>,
    data: Vec<f32>,
    dims: usize,
    threads: usize,
}

impl<'a> Exact<'a> {
    /// Copies out the live vectors of `bank`.
    pub fn new(bank: &'a Bank, threads: usize) -> Result<Self, RecallError> {
        let live: Vec<&Item> = bank.items().iter().filter(|i| !i.deleted).collect();
        let mut data = Vec::with_capacity(live.len() * bank.manifest().dims);
        for item in &live {
            data.extend(bank.vector(&item.meta.id)?);
        }
        Ok(Self {
            live,
            data,
            dims: bank.manifest().dims,
            threads,
        })
    }
}

impl Searcher for Exact<'_> {
    fn dims(&self) -> usize {
        self.dims
    }

    fn nearest(&self, query: &[f32], k: usize) -> Result<Vec<(ItemMeta, f32)>, RecallError> {
        Ok(
            exact_knn(&self.data, self.dims, query, k, self.threads, &|_| false)
                .into_iter()
                .flatten()
                .map(|n: Neighbour| (self.live[n.key as usize].meta.clone(), n.similarity))
                .collect(),
        )
    }
}

/// The `opts.k` items nearest to any seed.
pub fn recall(
    index: &dyn Searcher,
    seeds: &[Seed],
    opts: &RecallOptions,
) -> Result<Vec<Hit>, RecallError> {
    if seeds.is_empty() {
        return Err(RecallError::Usage("no seeds to recall from".into()));
    }
    let dims = index.dims();
    if let Some(s) = seeds.iter().find(|s| s.vector.len() != dims) {
        return Err(RecallError::Usage(format!(
            "seed {:?} has {} dimensions, the index {dims}",
            s.id,
            s.vector.len()
        )));
    }
    let want = opts.k + opts.exclude.len();
    let per_seed: Vec<Vec<(ItemMeta, f32)>> = seeds
        .iter()
        .map(|s| index.nearest(&s.vector, want))
        .collect::<Result<_, _>>()?;
    let mut best: HashMap<String, (ItemMeta, f32, usize)> = HashMap::new();
    for (si, found) in per_seed.into_iter().enumerate() {
        for (meta, sim) in found {
            if opts.exclude.contains(&meta.id) {
                continue;
            }
            match best.get_mut(&meta.id) {
                Some(e) if sim > e.1 => *e = (meta, sim, si),
                Some(_) => {}
                None => {
                    best.insert(meta.id.clone(), (meta, sim, si));
                }
            }
        }
    }
    let mut hits: Vec<(ItemMeta, f32, usize)> = best.into_values().collect();
    // Most similar first; ties by id so the order is a function of the index.
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.id.cmp(&b.0.id)));
    hits.truncate(opts.k);
    let score = |item: &ItemMeta| opts.score_label.and_then(|l| item.scores.get(l).copied());
    let mut by_score: Vec<usize> = (0..hits.len()).collect();
    by_score.sort_by(|&a, &b| {
        let (sa, sb) = (score(&hits[a].0), score(&hits[b].0));
        sb.unwrap_or(f32::NEG_INFINITY)
            .total_cmp(&sa.unwrap_or(f32::NEG_INFINITY))
            .then(a.cmp(&b))
    });
    let mut score_rank = vec![0usize; hits.len()];
    for (r, &i) in by_score.iter().enumerate() {
        score_rank[i] = r + 1;
    }
    let mut out: Vec<Hit> = hits
        .into_iter()
        .enumerate()
        .map(|(i, (item, sim, si))| {
            let s = score(&item);
            let combined = 1.0 / (RRF_K + (i + 1) as f64)
                + if s.is_some() {
                    1.0 / (RRF_K + score_rank[i] as f64)
                } else {
                    0.0
                };
            Hit {
                id: item.id,
                rank: i + 1,
                similarity: sim,
                seed: seeds[si].id.clone(),
                score: s,
                combined,
                combined_rank: 0,
                labels: item.labels,
                text: item.text,
                image: item.image,
            }
        })
        .collect();
    let mut by_combined: Vec<usize> = (0..out.len()).collect();
    by_combined.sort_by(|&a, &b| out[b].combined.total_cmp(&out[a].combined).then(a.cmp(&b)));
    for (r, i) in by_combined.into_iter().enumerate() {
        out[i].combined_rank = r + 1;
    }
    Ok(out)
}
