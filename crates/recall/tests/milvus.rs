//! The Milvus backend against a real server: `scripts/ci/milvus.sh` starts Milvus
//! 2.3.5 standalone and runs these with `VIGIL_MILVUS_URL=http://127.0.0.1:PORT`
//! (`--include-ignored`); without the variable they say so and pass. Each test has a
//! collection of its own, so they run in parallel.
//!
//! The reference is exact search ([`Exact`]) over the embedded [`Bank`] built from
//! the same vectors: Milvus 2.3.5 with its default configuration searches a
//! collection this small exactly (larger ones through its own indexes: see the
//! `milvus` module's docs), and the bank's graph at a search width above the bank's
//! size finds the exact neighbours too, so both must agree with it id for id (and
//! the similarities to float precision).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigil_recall::milvus::{Milvus, MilvusUrl};
use vigil_recall::{
    Bank, EmbeddingSource, Exact, HnswParams, IndexManifest, ItemMeta, ModelRef, RecallError,
    RecallOptions, Searcher, Seed, SourceKind, Vectors, recall,
};

const DIMS: usize = 32;
const ROWS: usize = 2000;

/// `milvus://HOST:PORT/<collection>` on the server in `VIGIL_MILVUS_URL`, the
/// collection dropped first; `None` (and a note) without a server.
fn collection(name: &str) -> Option<MilvusUrl> {
    let Ok(server) = std::env::var("VIGIL_MILVUS_URL") else {
        eprintln!("VIGIL_MILVUS_URL is not set: skipped (scripts/ci/milvus.sh runs this)");
        return None;
    };
    let host = server
        .trim_end_matches('/')
        .strip_prefix("http://")
        .expect("VIGIL_MILVUS_URL is http://HOST:PORT");
    let url = MilvusUrl::parse(&format!("milvus://{host}/vigil_test_{name}")).unwrap();
    Milvus::connect(&url).unwrap().drop_collection().unwrap();
    Some(url)
}

fn random_unit(rng: &mut StdRng) -> Vec<f32> {
    let v: Vec<f32> = (0..DIMS).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// `n` seeded random unit vectors with ids `{prefix}{i}`, and their items.
fn rows(seed: u64, n: usize, prefix: &str) -> (Vectors, Vec<ItemMeta>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut vectors = Vectors::default();
    let mut meta = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}{i}");
        vectors.push(id.clone(), &random_unit(&mut rng)).unwrap();
        meta.push(ItemMeta {
            id,
            labels: if i % 3 == 0 {
                vec!["toxic".into()]
            } else {
                vec![]
            },
            scores: vec![(i % 100) as f32 / 100.0, 0.5],
            text: (i % 2 == 0).then(|| format!("row {i} \"quoted\" ünï")),
            image: (i % 5 == 0).then(|| format!("img/{i}.png")),
        });
    }
    (vectors, meta)
}

fn manifest() -> IndexManifest {
    IndexManifest {
        format: 1,
        dims: DIMS,
        metric: "cosine".into(),
        hnsw: HnswParams::default(),
        embedding: EmbeddingSource {
            kind: SourceKind::Model,
            field: "embedding".into(),
            model: Some(ModelRef {
                name: "tiny".into(),
                version: 3,
                location: "/models/tiny".into(),
                manifest_sha256: "ab".repeat(32),
            }),
            text_encoder: None,
            image_encoder: None,
            max_text_len: Some(128),
            image_size: None,
        },
        labels: vec!["toxic".into(), "spam".into()],
        count: 0,
        tombstones: 0,
        data_dir: Some("/data/corpus".into()),
    }
}

/// A collection holding [`ROWS`] seeded rows, and those rows.
fn filled(name: &str) -> Option<(Milvus, Vectors, Vec<ItemMeta>)> {
    let url = collection(name)?;
    let mut milvus = Milvus::connect(&url).unwrap();
    milvus.create(&manifest(), false).unwrap();
    let (vectors, meta) = rows(7, ROWS, "r");
    let added = milvus.add(&vectors, meta.clone()).unwrap();
    assert_eq!((added.added, added.replaced), (ROWS, 0));
    assert_eq!(milvus.count().unwrap(), ROWS);
    Some((milvus, vectors, meta))
}

fn ids(found: &[(ItemMeta, f32)]) -> Vec<&str> {
    found.iter().map(|(m, _)| m.id.as_str()).collect()
}

#[test]
#[ignore = "needs a Milvus server: scripts/ci/milvus.sh"]
fn self_queries_find_themselves_with_their_items() {
    let Some((milvus, vectors, meta)) = filled("self") else {
        return;
    };
    let reopened = Milvus::open(milvus.url()).unwrap();
    assert_eq!(reopened.dims(), DIMS);
    for i in (0..ROWS).step_by(97) {
        let found = reopened.nearest(vectors.row(i), 5).unwrap();
        assert_eq!(found.len(), 5);
        assert_eq!(found[0].0, meta[i], "row {i}");
        assert!((found[0].1 - 1.0).abs() < 1e-4, "row {i}: {}", found[0].1);
        assert!(found.windows(2).all(|w| w[0].1 >= w[1].1));
    }
    let e = reopened.nearest(&[1.0; DIMS + 1], 5).unwrap_err();
    assert!(e.is_usage(), "{e}");
    assert!(reopened.nearest(vectors.row(0), 0).unwrap().is_empty());
    assert!(
        reopened
            .nearest(vectors.row(0), 20_000)
            .unwrap_err()
            .is_usage()
    );
}

#[test]
#[ignore = "needs a Milvus server: scripts/ci/milvus.sh"]
fn the_manifest_round_trips_with_the_live_count() {
    let Some(url) = collection("manifest") else {
        return;
    };
    let mut milvus = Milvus::connect(&url).unwrap();
    let mut m = manifest();
    m.count = 99; // not stored: the server counts
    milvus.create(&m, false).unwrap();
    let (vectors, meta) = rows(1, 10, "m");
    milvus.add(&vectors, meta).unwrap();
    let read = Milvus::open(&url).unwrap().manifest().unwrap();
    assert_eq!(
        read,
        IndexManifest {
            count: 10,
            ..manifest()
        }
    );
}

#[test]
#[ignore = "needs a Milvus server: scripts/ci/milvus.sh"]
fn recall_over_milvus_matches_the_embedded_bank() {
    let Some((milvus, vectors, meta)) = filled("recall") else {
        return;
    };
    let params = HnswParams {
        m: 16,
        ef_construction: 400,
        ef_search: 4096,
    };
    let bank = Bank::build(
        manifest().embedding,
        manifest().labels,
        params,
        &vectors,
        meta,
        2,
    )
    .unwrap();
    let exact = Exact::new(&bank, 2).unwrap();
    for seed in [11, 12, 13, 14] {
        let mut rng = StdRng::seed_from_u64(seed);
        // Fresh vectors and one indexed row (excluded, as `vigil recall` excludes
        // its seeds).
        let mut seeds: Vec<Seed> = (0..4)
            .map(|i| Seed {
                id: format!("s{i}"),
                vector: random_unit(&mut rng),
            })
            .collect();
        let known = rng.random_range(0..ROWS);
        seeds.push(Seed {
            id: format!("r{known}"),
            vector: vectors.row(known).to_vec(),
        });
        let opts = RecallOptions {
            k: 10,
            score_label: Some(0),
            exclude: HashSet::from([format!("r{known}")]),
        };
        let from_milvus = recall(&milvus, &seeds, &opts).unwrap();
        let from_bank = recall(&bank, &seeds, &opts).unwrap();
        let truth = recall(&exact, &seeds, &opts).unwrap();
        assert_eq!(from_milvus.len(), 10);
        for (a, b) in [(&from_milvus, &truth), (&from_bank, &truth)] {
            let got: Vec<&str> = a.iter().map(|h| h.id.as_str()).collect();
            let want: Vec<&str> = b.iter().map(|h| h.id.as_str()).collect();
            assert_eq!(got, want, "seed {seed}");
        }
        for (m, b) in from_milvus.iter().zip(&from_bank) {
            assert!(
                (m.similarity - b.similarity).abs() < 1e-4,
                "seed {seed}: {m:?} {b:?}"
            );
            assert_eq!((&m.seed, m.score, &m.labels), (&b.seed, b.score, &b.labels));
            assert_eq!(
                (m.combined_rank, &m.text, &m.image),
                (b.combined_rank, &b.text, &b.image)
            );
        }
    }
}

#[test]
#[ignore = "needs a Milvus server: scripts/ci/milvus.sh"]
fn adding_an_id_again_replaces_it() {
    let Some((milvus, vectors, _)) = filled("upsert") else {
        return;
    };
    // Rows r0..r9 get new vectors and items, n0..n4 are new.
    let (mut new, mut meta) = rows(99, 10, "r");
    let (more, more_meta) = rows(98, 5, "n");
    for (i, id) in more.ids.iter().enumerate() {
        new.push(id.clone(), more.row(i)).unwrap();
    }
    meta.extend(more_meta);
    for m in &mut meta {
        m.labels = vec!["spam".into()];
    }
    let added = milvus.add(&new, meta.clone()).unwrap();
    assert_eq!((added.added, added.replaced), (5, 10));
    assert_eq!(milvus.count().unwrap(), ROWS + 5);
    for (i, m) in meta.iter().enumerate() {
        let found = milvus.nearest(new.row(i), 3).unwrap();
        assert_eq!(found[0].0, *m, "{}", m.id);
    }
    // The old vector of r0 no longer leads to r0 at similarity 1.
    let found = milvus.nearest(vectors.row(0), 50).unwrap();
    assert!(
        found.iter().all(|(m, s)| m.id != "r0" || *s < 0.99),
        "{:?}",
        ids(&found)
    );
    // Scores that do not fit the labels change nothing.
    let (one, mut bad) = rows(5, 1, "r");
    bad[0].scores = vec![0.1];
    assert!(milvus.add(&one, bad).unwrap_err().is_usage());
    assert_eq!(milvus.count().unwrap(), ROWS + 5);
}

#[test]
#[ignore = "needs a Milvus server: scripts/ci/milvus.sh"]
fn deleted_ids_are_never_returned_and_unknown_ids_delete_nothing() {
    let Some((milvus, vectors, _)) = filled("delete") else {
        return;
    };
    let gone: Vec<String> = (0..ROWS).step_by(20).map(|i| format!("r{i}")).collect();
    assert_eq!(milvus.delete(&gone).unwrap(), gone.len());
    assert_eq!(milvus.count().unwrap(), ROWS - gone.len());
    let gone_set: HashSet<&str> = gone.iter().map(String::as_str).collect();
    for i in (0..ROWS).step_by(20) {
        let found = milvus.nearest(vectors.row(i), 20).unwrap();
        assert!(
            ids(&found).iter().all(|id| !gone_set.contains(id)),
            "row {i}: {:?}",
            ids(&found)
        );
    }
    let e = milvus
        .delete(&["r1".to_string(), "no-such-row".to_string()])
        .unwrap_err();
    assert!(e.is_usage());
    assert!(e.to_string().contains("\"no-such-row\""), "{e}");
    let e = milvus.delete(&["r0".to_string()]).unwrap_err();
    assert!(e.to_string().contains("\"r0\""), "{e}");
    assert_eq!(milvus.count().unwrap(), ROWS - gone.len());
    assert_eq!(milvus.nearest(vectors.row(1), 1).unwrap()[0].0.id, "r1");
}

#[test]
#[ignore = "needs a Milvus server: scripts/ci/milvus.sh"]
fn creating_twice_is_refused_unless_replaced() {
    let Some(url) = collection("twice") else {
        return;
    };
    let mut milvus = Milvus::connect(&url).unwrap();
    milvus.create(&manifest(), false).unwrap();
    let (vectors, meta) = rows(3, 20, "t");
    milvus.add(&vectors, meta).unwrap();
    let e = Milvus::connect(&url)
        .unwrap()
        .create(&manifest(), false)
        .unwrap_err();
    assert!(e.is_usage(), "{e}");
    assert!(e.to_string().contains(&url.to_string()), "{e}");
    assert_eq!(milvus.count().unwrap(), 20);
    let mut wider = manifest();
    wider.dims = 8;
    milvus.create(&wider, true).unwrap();
    assert_eq!(milvus.manifest().unwrap().count, 0);
    assert_eq!(Milvus::open(&url).unwrap().dims(), 8);
    assert!(
        milvus
            .add(&vectors, rows(3, 20, "t").1)
            .unwrap_err()
            .is_usage()
    );
}

/// POSTs `body` to the server's REST API with std alone; the reply's body.
fn raw_post(server: &str, path: &str, body: &str) -> String {
    let host = server.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).unwrap();
    write!(
        stream,
        "POST /v1/vector/{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
#[ignore = "needs a Milvus server: scripts/ci/milvus.sh"]
fn a_collection_vigil_did_not_make_is_neither_read_nor_replaced() {
    let Some(url) = collection("foreign") else {
        return;
    };
    let server = std::env::var("VIGIL_MILVUS_URL").unwrap();
    let reply = raw_post(
        &server,
        "collections/create",
        &format!(
            r#"{{"collectionName":"{}","dimension":4,"metricType":"L2","description":"someone else's"}}"#,
            url.collection()
        ),
    );
    assert!(reply.contains(r#""code":200"#), "{reply}");
    let e = Milvus::open(&url).unwrap_err();
    assert!(matches!(e, RecallError::Damaged { .. }), "{e}");
    assert!(e.to_string().contains("not a vigil index manifest"), "{e}");
    let e = Milvus::connect(&url)
        .unwrap()
        .create(&manifest(), true)
        .unwrap_err();
    assert!(
        e.is_usage() && e.to_string().contains("not replacing it"),
        "{e}"
    );
    let mut missing = Milvus::connect(&url).unwrap();
    assert!(missing.drop_collection().unwrap());
    let e = Milvus::open(&url).unwrap_err();
    assert!(
        e.is_usage() && e.to_string().contains("no collection"),
        "{e}"
    );
}

/// No server needed: a port nobody listens on gives an Engine error naming it.
#[test]
fn a_server_that_is_not_there_is_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = MilvusUrl::parse(&format!("milvus://127.0.0.1:{port}/bank")).unwrap();
    let e = Milvus::connect(&url).unwrap_err();
    assert!(matches!(e, RecallError::Engine { .. }), "{e}");
    assert!(!e.is_usage());
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("http://127.0.0.1:{port}/v1/vector/collections: ")),
        "{msg}"
    );
    assert!(msg.contains("cannot connect"), "{msg}");
}
