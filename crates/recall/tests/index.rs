//! The embedded index against exact search on a corpus of 100,000 vectors, and
//! what a bank must keep across save/load, deletes, upserts and compaction.

use std::collections::{BTreeMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigil_recall::exact::{exact_knn, recall_at_k};
use vigil_recall::{
    Bank, EmbeddingSource, Exact, HnswParams, IndexRepo, ItemMeta, RecallOptions, Seed, SourceKind,
    Vectors, recall,
};
use vigil_store::storage::Location;

/// `n` unit vectors of `dims` around `n / 50` random centres (clustered like real
/// embeddings, where near neighbours exist), deterministic in `seed`.
fn clustered(n: usize, dims: usize, seed: u64, prefix: &str) -> Vectors {
    let mut rng = StdRng::seed_from_u64(7);
    let centres: Vec<Vec<f32>> = (0..(n / 50).max(1))
        .map(|_| (0..dims).map(|_| normal(&mut rng)).collect())
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut v = Vectors::default();
    for i in 0..n {
        let c = &centres[rng.random_range(0..centres.len())];
        let x: Vec<f32> = c.iter().map(|m| m + 0.6 * normal(&mut rng)).collect();
        v.push(format!("{prefix}{i}"), &x).unwrap();
    }
    v
}

fn normal(rng: &mut StdRng) -> f32 {
    // Box-Muller.
    let (u1, u2): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn source() -> EmbeddingSource {
    EmbeddingSource {
        kind: SourceKind::Vectors,
        field: "embedding".into(),
        model: None,
        text_encoder: None,
        image_encoder: None,
        max_text_len: None,
        image_size: None,
    }
}

fn metas(v: &Vectors) -> Vec<ItemMeta> {
    v.ids
        .iter()
        .map(|id| ItemMeta {
            id: id.clone(),
            ..ItemMeta::default()
        })
        .collect()
}

fn ids_of(bank: &Bank, q: &[f32], k: usize) -> Vec<String> {
    bank.search(q, k)
        .unwrap()
        .into_iter()
        .map(|f| f.item.meta.id.clone())
        .collect()
}

/// The graph's parameters the book states for recall@10 ≥ 0.99 at 100k vectors.
const PARAMS: HnswParams = HnswParams {
    m: 16,
    ef_construction: 100,
    ef_search: 64,
};

#[test]
fn recall_at_10_against_exact_search_on_100k_vectors_is_at_least_0_99() {
    let dims = 64;
    let corpus = clustered(100_000, dims, 1, "c");
    let queries = clustered(500, dims, 2, "q");
    let bank = Bank::build(source(), vec![], PARAMS, &corpus, metas(&corpus), 2).unwrap();
    assert_eq!(bank.len(), 100_000);
    let truth = exact_knn(&corpus.data, dims, &queries.data, 10, 2, &|_| false);
    let found: Vec<Vec<vigil_recall::Neighbour>> = (0..queries.len())
        .map(|i| {
            bank.search(queries.row(i), 10)
                .unwrap()
                .into_iter()
                .map(|f| vigil_recall::Neighbour {
                    key: f.item.key,
                    similarity: f.similarity,
                })
                .collect()
        })
        .collect();
    let r = recall_at_k(&found, &truth);
    println!("recall@10 = {r:.4} (100,000 × {dims}, M=16, efConstruction=100, efSearch=64)");
    assert!(r >= 0.99, "recall@10 {r}");
}

#[test]
fn save_load_keeps_every_answer_and_deleted_ids_never_come_back() {
    let dims = 32;
    let corpus = clustered(5_000, dims, 3, "c");
    let queries = clustered(200, dims, 4, "q");
    let mut bank = Bank::build(source(), vec![], PARAMS, &corpus, metas(&corpus), 2).unwrap();

    // Delete the nearest neighbour of every query, and a block of ids.
    let mut deleted: HashSet<String> = (0..queries.len())
        .map(|i| ids_of(&bank, queries.row(i), 1)[0].clone())
        .collect();
    deleted.extend((0..300).map(|i| format!("c{i}")));
    let deleted_list: Vec<String> = deleted.iter().cloned().collect();
    assert_eq!(bank.delete(&deleted_list).unwrap(), deleted.len());
    assert_eq!(bank.len(), 5_000 - deleted.len());
    assert_eq!(bank.manifest().tombstones, deleted.len());

    let dir = tempfile::tempdir().unwrap();
    let loc = Location::Local(dir.path().join("bank-recall"));
    let repo = IndexRepo::create(&loc).unwrap();
    let (v, _) = repo.publish(&bank).unwrap();
    assert_eq!(v, 1);
    let loaded = IndexRepo::open(&loc).unwrap().load(None, None, 2).unwrap();
    assert_eq!(loaded.version, 1);
    let back = loaded.bank;
    assert_eq!(back.manifest(), bank.manifest());
    assert_eq!(back.items(), bank.items());
    for i in 0..queries.len() {
        let before = bank.search(queries.row(i), 20).unwrap();
        let after = back.search(queries.row(i), 20).unwrap();
        assert_eq!(before, after, "query {i}");
        for f in &after {
            assert!(
                !deleted.contains(&f.item.meta.id),
                "{} was deleted",
                f.item.meta.id
            );
        }
    }
    // Exact search over the loaded bank never sees tombstones either.
    let exact = Exact::new(&back, 2).unwrap();
    let seeds: Vec<Seed> = (0..20)
        .map(|i| Seed {
            id: format!("q{i}"),
            vector: queries.row(i).to_vec(),
        })
        .collect();
    let opts = RecallOptions {
        k: 100,
        ..RecallOptions::default()
    };
    for hit in recall(&exact, &seeds, &opts).unwrap() {
        assert!(!deleted.contains(&hit.id));
    }
    // A deleted id cannot be deleted again, and nothing else is touched.
    let mut again = back;
    let err = again
        .delete(&["c5".to_string(), deleted_list[0].clone()])
        .unwrap_err();
    assert!(err.is_usage(), "{err}");
    assert!(again.get("c5").is_none());
    assert_eq!(again.len(), 5_000 - deleted.len());

    // Compaction drops the tombstones and keeps the answers.
    let compact = bank.compact(2).unwrap();
    assert_eq!(compact.manifest().tombstones, 0);
    assert_eq!(compact.items().len(), compact.len());
    let truth = Exact::new(&bank, 2).unwrap();
    let exact_after = Exact::new(&compact, 2).unwrap();
    let a = recall(&truth, &seeds, &opts).unwrap();
    let b = recall(&exact_after, &seeds, &opts).unwrap();
    assert_eq!(
        a.iter().map(|h| &h.id).collect::<Vec<_>>(),
        b.iter().map(|h| &h.id).collect::<Vec<_>>()
    );
}

#[test]
fn adding_an_existing_id_replaces_its_vector() {
    let corpus = clustered(1_000, 16, 5, "c");
    let mut bank = Bank::build(source(), vec![], PARAMS, &corpus, metas(&corpus), 1).unwrap();
    // c1 takes c0's vector: both are now nearest to it.
    let mut upsert = Vectors::default();
    upsert.push("c1".into(), corpus.row(0)).unwrap();
    upsert.push("n1".into(), corpus.row(2)).unwrap();
    let added = bank.add(&upsert, metas(&upsert), 1).unwrap();
    assert_eq!((added.added, added.replaced), (1, 1));
    assert_eq!(bank.len(), 1_001);
    let top: HashSet<String> = ids_of(&bank, corpus.row(0), 2).into_iter().collect();
    assert_eq!(top, HashSet::from(["c0".to_string(), "c1".to_string()]));
    // A duplicate id within one input is refused, naming it; nothing changes.
    let mut dup = Vectors::default();
    dup.push("z".into(), corpus.row(3)).unwrap();
    dup.push("z".into(), corpus.row(4)).unwrap();
    let err = bank.add(&dup, metas(&dup), 1).unwrap_err();
    assert!(err.to_string().contains("\"z\" appears twice"), "{err}");
    assert_eq!(bank.len(), 1_001);
    // A vector of another width is refused.
    let mut wide = Vectors::default();
    wide.push("w".into(), &[1.0; 17]).unwrap();
    assert!(bank.add(&wide, metas(&wide), 1).unwrap_err().is_usage());
}

#[test]
fn a_damaged_version_is_refused_naming_it() {
    let corpus = clustered(200, 8, 6, "c");
    let bank = Bank::build(source(), vec![], PARAMS, &corpus, metas(&corpus), 1).unwrap();
    let mut files: BTreeMap<String, Vec<u8>> = bank.to_files().unwrap().into_iter().collect();
    files.insert("items.jsonl".into(), b"{\"key\":3,\"id\":\"x\"}\n".to_vec());
    let err = Bank::from_files(&files, "here/1", None, 1).unwrap_err();
    assert!(err.to_string().contains("here/1"), "{err}");
    assert!(err.to_string().contains("items.jsonl:1"), "{err}");
}
