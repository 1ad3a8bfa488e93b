//! `vigil recall`: the corpus items nearest to known violations. Seeds are rows
//! (embedded by the index's own model), precomputed vectors, or every indexed item
//! known to carry a label; hits come out as JSONL for a review queue (`vigil queue
//! --recall`) and optionally as an HTML page in the report's style. The logic lives
//! in `vigil_recall::recall`; this file is flags and I/O.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use vigil_recall::vectors::read_jsonl;
use vigil_recall::{
    Bank, Exact, Hit, IndexManifest, IndexRepo, Milvus, RecallError, RecallOptions, Searcher, Seed,
    recall,
};

use super::index_source::{EmbedFlags, Target, embed, from_record};

/// Arguments of `vigil recall`.
#[derive(Debug, Args)]
#[command(
    after_help = "Output: one JSON object per hit, most similar first: {\"id\", \
    \"rank\", \"similarity\" (cosine to the nearest seed), \"seed\" (that seed's id), \
    \"score\" (the model's probability for --score-label at build time), \"combined\" \
    (reciprocal-rank fusion of the similarity and score rankings), \"combined_rank\", \
    \"labels\" (known), \"text\", \"image\"}. Exit codes: 0 done; 2 no such index or \
    version, unknown label, bad seed row, a model that is not the index's; 1 I/O failure."
)]
pub struct RecallArgs {
    /// The index repository (a directory or bucket URL), or `milvus://HOST:PORT/COLLECTION`.
    #[arg(long, value_name = "DIR|URL")]
    index: Target,
    /// The index version (default: the newest complete one).
    #[arg(long, value_name = "V")]
    version: Option<u64>,
    /// Seed rows (known violations): JSONL rows embedded by the index's model, or
    /// `vigil embed` output that already has the index's vector field.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "label",
        conflicts_with = "label"
    )]
    seeds: Option<PathBuf>,
    /// Seed with every indexed item known to carry this label (they are not returned).
    #[arg(long, value_name = "LABEL")]
    label: Option<String>,
    /// Hits to return.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    k: u64,
    /// The label whose model score each hit carries (default: --label, or the only label).
    #[arg(long, value_name = "LABEL")]
    score_label: Option<String>,
    /// Search every vector exactly instead of the graph (the reference; slower).
    #[arg(long)]
    exact: bool,
    /// The graph's search width for this query (default: the index's).
    #[arg(long, value_name = "N")]
    ef_search: Option<usize>,
    /// Output JSONL (default: standard output).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Also write a self-contained HTML page of the hits with thumbnails.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    #[command(flatten)]
    embed: EmbedFlags,
}

/// Runs `vigil recall`.
pub fn run(args: RecallArgs) -> anyhow::Result<ExitCode> {
    vigil_model::backend::tune_allocator();
    let threads = args.embed.threads();
    // The embedded index (a loaded version) or a Milvus collection.
    let (bank, milvus, version, location): (Option<Bank>, Option<Milvus>, String, String) =
        match &args.index {
            Target::Store(loc) => {
                let loaded = IndexRepo::open(loc)?.load(args.version, args.ef_search, threads)?;
                (
                    Some(loaded.bank),
                    None,
                    loaded.version.to_string(),
                    loaded.location,
                )
            }
            Target::Milvus(url) => {
                if args.exact || args.label.is_some() {
                    return Err(RecallError::Usage(format!(
                        "{url}: --exact and --label need the embedded index (Milvus searches its own index; seed it with --seeds)"
                    ))
                    .into());
                }
                (
                    None,
                    Some(Milvus::open(url)?),
                    "milvus".into(),
                    url.to_string(),
                )
            }
        };
    let manifest: IndexManifest = match (&bank, &milvus) {
        (Some(b), _) => b.manifest().clone(),
        (None, Some(m)) => m.manifest()?,
        (None, None) => unreachable!("one of the two is loaded"),
    };
    let label_index = |l: &str| manifest.labels.iter().position(|x| x == l);
    let score_label = match (&args.score_label, &args.label) {
        (Some(l), _) => Some(label_index(l).ok_or_else(|| {
            RecallError::Usage(format!(
                "--score-label {l}: the index's scores are for {:?}",
                manifest.labels
            ))
        })?),
        (None, Some(l)) => label_index(l),
        (None, None) if manifest.labels.len() == 1 => Some(0),
        (None, None) => None,
    };
    let mut exclude = HashSet::new();
    let seeds: Vec<Seed> = match (&args.seeds, &args.label) {
        (_, Some(label)) => {
            let bank = bank
                .as_ref()
                .ok_or_else(|| RecallError::Usage("--label needs the embedded index".into()))?;
            let mut seeds = Vec::new();
            for item in bank.items().iter().filter(|i| !i.deleted) {
                if item.meta.labels.iter().any(|l| l == label) {
                    seeds.push(Seed {
                        id: item.meta.id.clone(),
                        vector: bank.vector(&item.meta.id)?,
                    });
                    exclude.insert(item.meta.id.clone());
                }
            }
            if seeds.is_empty() {
                return Err(RecallError::Usage(format!(
                    "no indexed item is known to carry label {label:?} (labels come from the rows' \"labels\" at build time)"
                ))
                .into());
            }
            seeds
        }
        (Some(file), None) => {
            let field = manifest.embedding.field.as_str();
            let pre = read_jsonl(file, field)
                .ok()
                .filter(|f| !f.vectors.is_empty() && f.skipped.is_empty());
            let file = match pre {
                Some(f) => f,
                None => embed(&from_record(&manifest.embedding)?, Some(file), args.embed)?,
            };
            if file.vectors.is_empty() {
                return Err(RecallError::Usage(format!(
                    "{}: no seed has a `{field}` vector",
                    file_name(file_path(&args.seeds))
                ))
                .into());
            }
            exclude.extend(file.vectors.ids.iter().cloned());
            (0..file.vectors.len())
                .map(|i| Seed {
                    id: file.vectors.ids[i].clone(),
                    vector: file.vectors.row(i).to_vec(),
                })
                .collect()
        }
        (None, None) => unreachable!("clap requires --seeds or --label"),
    };
    let opts = RecallOptions {
        k: args.k as usize,
        score_label,
        exclude,
    };
    let started = std::time::Instant::now();
    let exact;
    let searcher: &dyn Searcher = match (&bank, &milvus) {
        (Some(b), _) if args.exact => {
            exact = Exact::new(b, threads)?;
            &exact
        }
        (Some(b), _) => b,
        (None, Some(m)) => m,
        (None, None) => unreachable!("one of the two is loaded"),
    };
    let hits = recall(searcher, &seeds, &opts)?;
    let secs = started.elapsed().as_secs_f64();
    write_hits(&args.out, &hits)?;
    if let Some(path) = &args.html {
        let root = manifest.data_dir.as_deref().map(std::path::Path::new);
        let rows: Vec<serde_json::Value> = hits
            .iter()
            .map(|h| {
                let mut v = serde_json::to_value(h).unwrap_or_default();
                if let (Some(img), Some(root)) = (&h.image, root) {
                    v["image"] = root.join(img).display().to_string().into();
                }
                v
            })
            .collect();
        let title = format!(
            "Recall: {} seeds, top {} of {} items (index version {})",
            seeds.len(),
            hits.len(),
            manifest.count,
            version
        );
        let notes = vec![format!(
            "Index {} ({}), {} search; similarity is the cosine to the nearest seed.",
            location,
            match &manifest.embedding.model {
                Some(m) => format!("model {} version {}", m.name, m.version),
                None => format!(
                    "{:?} `{}`",
                    manifest.embedding.kind, manifest.embedding.field
                ),
            },
            if args.exact { "exact" } else { "HNSW" }
        )];
        let page = vigil_report::render_recall(
            &title,
            &notes,
            score_label.map(|i| manifest.labels[i].as_str()),
            &rows,
        );
        vigil_store::atomic::write_atomic(path, page.as_bytes())?;
    }
    let known = args.label.as_ref().map(|l| {
        hits.iter()
            .filter(|h| h.labels.iter().any(|x| x == l))
            .count()
    });
    eprintln!(
        "vigil recall: {} seeds, {} hits from version {} ({}) in {:.3} s{}",
        seeds.len(),
        hits.len(),
        version,
        if args.exact { "exact" } else { "HNSW" },
        secs,
        known
            .map(|n| format!("; {n} of them already known to carry the label"))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

fn file_path(p: &Option<PathBuf>) -> &std::path::Path {
    p.as_deref().unwrap_or(std::path::Path::new("-"))
}

fn file_name(p: &std::path::Path) -> String {
    p.display().to_string()
}

fn write_hits(out: &Option<PathBuf>, hits: &[Hit]) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    for h in hits {
        serde_json::to_writer(&mut buf, h)?;
        buf.push(b'\n');
    }
    match out {
        Some(path) => vigil_store::atomic::write_atomic(path, &buf)?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&buf)?;
            stdout.flush()?;
        }
    }
    Ok(())
}
