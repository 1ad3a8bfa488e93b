//! `vigil index build|add|delete|compact|info`: a versioned nearest-neighbour index
//! of a corpus' embeddings, beside the model that embedded it. The logic lives in
//! `vigil_recall` (the bank, its versions) and `index_source.rs` (embedding rows);
//! this file maps flags onto it. Every change publishes the next version whole, so
//! `vigil serve` and `vigil recall` never see a half-changed bank.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use vigil_recall::manifest::{FORMAT, IndexManifest};
use vigil_recall::rows::{read_ids, read_rows};
use vigil_recall::{Bank, HnswParams, IndexRepo, Milvus, RecallError};

use super::index_source::{
    EmbedFlags, SourceArgs, Target, embed, from_record, items_for, score_labels,
};

/// Arguments of `vigil index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    command: IndexCommand,
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Embed a corpus and publish it as a new index version (HNSW, cosine similarity).
    Build(BuildArgs),
    /// Embed more rows into the newest version and publish the next (an id already
    /// indexed gets the new vector).
    Add(AddArgs),
    /// Delete ids (tombstones: never returned again) and publish the next version.
    Delete(DeleteArgs),
    /// Rebuild the newest version without its tombstones and publish the next.
    Compact(CompactArgs),
    /// Print a version's manifest: embedding model, parameters, counts.
    Info(InfoArgs),
}

/// The graph's parameters.
#[derive(Debug, Args, Clone, Copy)]
struct GraphFlags {
    /// Neighbours per node (HNSW `M`; the base layer keeps 2·M).
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// Candidate list while inserting (`efConstruction`).
    #[arg(long, default_value_t = 200)]
    ef_construction: usize,
    /// Candidate list while searching (`efSearch`; readers may override it).
    #[arg(long, default_value_t = 128)]
    ef_search: usize,
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// The corpus: JSONL rows `{"id", "text"?, "image"?, "labels"?}` (image paths
    /// relative to the file). Optional with --embeddings.
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    #[command(flatten)]
    source: SourceArgs,
    /// The index repository: a directory or bucket URL; versions are numbered inside
    /// it. Convention: `<export.dir>/<model>-recall`. Or `milvus://HOST:PORT/COLLECTION`:
    /// a Milvus server's collection.
    #[arg(long, value_name = "DIR|URL")]
    out: Target,
    /// With a Milvus --out: replace an existing collection Vigil made.
    #[arg(long)]
    replace: bool,
    #[command(flatten)]
    graph: GraphFlags,
    #[command(flatten)]
    embed: EmbedFlags,
}

#[derive(Debug, Args)]
struct AddArgs {
    /// The index repository (or `milvus://HOST:PORT/COLLECTION`).
    #[arg(long, value_name = "DIR|URL")]
    index: Target,
    /// Rows to add, embedded by the index's own model.
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Precomputed vectors instead (indexes built from vectors only).
    #[arg(long, value_name = "FILE")]
    embeddings: Option<PathBuf>,
    #[command(flatten)]
    embed: EmbedFlags,
}

#[derive(Debug, Args)]
struct DeleteArgs {
    /// The index repository (or `milvus://HOST:PORT/COLLECTION`).
    #[arg(long, value_name = "DIR|URL")]
    index: Target,
    /// An id to delete (repeatable).
    #[arg(long = "id", value_name = "ID")]
    ids: Vec<String>,
    /// A file of ids: one per line, bare or as JSON objects with an "id".
    #[arg(long, value_name = "FILE")]
    ids_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CompactArgs {
    /// The index repository (or `milvus://HOST:PORT/COLLECTION`).
    #[arg(long, value_name = "DIR|URL")]
    index: Target,
    /// Threads for the rebuild.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
}

#[derive(Debug, Args)]
struct InfoArgs {
    /// The index repository (or `milvus://HOST:PORT/COLLECTION`).
    #[arg(long, value_name = "DIR|URL")]
    index: Target,
    /// The version (default: the newest complete one).
    #[arg(long, value_name = "V")]
    version: Option<u64>,
}

/// Runs `vigil index`.
pub fn run(args: IndexArgs) -> anyhow::Result<ExitCode> {
    vigil_model::backend::tune_allocator();
    match args.command {
        IndexCommand::Build(a) => build(a),
        IndexCommand::Add(a) => add(a),
        IndexCommand::Delete(a) => delete(a),
        IndexCommand::Compact(a) => compact(a),
        IndexCommand::Info(a) => info(a),
    }
}

/// The index repository of a target that must be one (compaction and versions are
/// the embedded index's; Milvus compacts on its own).
fn open_repo(target: &Target) -> Result<IndexRepo, RecallError> {
    match target {
        Target::Store(location) => IndexRepo::open(location),
        Target::Milvus(url) => Err(RecallError::Usage(format!(
            "{url}: a Milvus collection has no versions to compact or list (Milvus compacts deleted rows itself)"
        ))),
    }
}

fn data_dir(data: &std::path::Path) -> Option<String> {
    std::fs::canonicalize(data)
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
}

fn published(what: &str, version: u64, location: &str, bank: &Bank) {
    let m = bank.manifest();
    eprintln!(
        "vigil index {what}: version {version} at {location}: {} live, {} tombstones, {} dimensions",
        m.count, m.tombstones, m.dims
    );
}

fn build(a: BuildArgs) -> anyhow::Result<ExitCode> {
    let params = HnswParams {
        m: a.graph.m,
        ef_construction: a.graph.ef_construction,
        ef_search: a.graph.ef_search,
    };
    params.validate()?;
    let source = a.source.resolve()?;
    if source.file.is_none() && a.data.is_none() {
        return Err(RecallError::Usage("give the corpus with --data FILE".into()).into());
    }
    let started = std::time::Instant::now();
    let file = embed(&source, a.data.as_deref(), a.embed)?;
    let embedded_s = started.elapsed().as_secs_f64();
    let rows = match &a.data {
        Some(d) => read_rows(d)?,
        None => Vec::new(),
    };
    let labels = score_labels(&file);
    let items = items_for(&file, &rows, &labels)?;
    let out = match &a.out {
        Target::Store(location) => location,
        Target::Milvus(url) => {
            let manifest = IndexManifest {
                format: FORMAT,
                dims: file.vectors.dims,
                metric: "cosine".into(),
                hnsw: params,
                embedding: source.record.clone(),
                labels,
                count: file.vectors.len(),
                tombstones: 0,
                data_dir: a.data.as_deref().and_then(data_dir),
            };
            let mut milvus = Milvus::connect(url)?;
            milvus.create(&manifest, a.replace)?;
            let done = milvus.add(&file.vectors, items)?;
            eprintln!(
                "vigil index build: {} rows in {url} (embedded in {embedded_s:.1} s)",
                done.added
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    let started = std::time::Instant::now();
    let mut bank = Bank::build(
        source.record.clone(),
        labels,
        params,
        &file.vectors,
        items,
        a.embed.threads(),
    )?;
    let built_s = started.elapsed().as_secs_f64();
    bank.set_data_dir(a.data.as_deref().and_then(data_dir));
    let (version, location) = IndexRepo::create(out)?.publish(&bank)?;
    if !file.skipped.is_empty() {
        eprintln!(
            "vigil index build: {} rows have no `{}` and were not indexed (first: {})",
            file.skipped.len(),
            source.record.field,
            file.skipped[0]
        );
    }
    eprintln!(
        "vigil index build: embedded in {embedded_s:.1} s, graph built in {built_s:.1} s ({:.1} MB)",
        bank.memory_bytes() as f64 / 1e6
    );
    published("build", version, &location, &bank);
    Ok(ExitCode::SUCCESS)
}

fn add(a: AddArgs) -> anyhow::Result<ExitCode> {
    if let Target::Milvus(url) = &a.index {
        let milvus = Milvus::open(url)?;
        let manifest = milvus.manifest()?;
        let mut source = from_record(&manifest.embedding)?;
        if let Some(file) = &a.embeddings {
            source.file = Some(file.clone());
        }
        let file = embed(&source, a.data.as_deref(), a.embed)?;
        let rows = match &a.data {
            Some(d) => read_rows(d)?,
            None => Vec::new(),
        };
        let items = items_for(&file, &rows, &manifest.labels)?;
        let done = milvus.add(&file.vectors, items)?;
        eprintln!(
            "vigil index add: {} added, {} replaced in {url} ({} live)",
            done.added,
            done.replaced,
            milvus.count()?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let repo = open_repo(&a.index)?;
    let mut loaded = repo.load(None, None, a.embed.threads())?;
    let manifest = loaded.bank.manifest().clone();
    let mut source = from_record(&manifest.embedding)?;
    if let Some(file) = &a.embeddings {
        source.file = Some(file.clone());
    } else if a.data.is_none() {
        return Err(RecallError::Usage("give the rows with --data FILE".into()).into());
    }
    let file = embed(&source, a.data.as_deref(), a.embed)?;
    let rows = match &a.data {
        Some(d) => read_rows(d)?,
        None => Vec::new(),
    };
    let items = items_for(&file, &rows, &manifest.labels)?;
    let done = loaded.bank.add(&file.vectors, items, a.embed.threads())?;
    let (version, location) = repo.publish(&loaded.bank)?;
    eprintln!(
        "vigil index add: {} added, {} replaced (from version {})",
        done.added, done.replaced, loaded.version
    );
    published("add", version, &location, &loaded.bank);
    Ok(ExitCode::SUCCESS)
}

fn delete(a: DeleteArgs) -> anyhow::Result<ExitCode> {
    let mut ids = a.ids.clone();
    if let Some(f) = &a.ids_file {
        ids.extend(read_ids(f)?);
    }
    if ids.is_empty() {
        return Err(RecallError::Usage("give ids with --id ID or --ids-file FILE".into()).into());
    }
    if let Target::Milvus(url) = &a.index {
        let milvus = Milvus::open(url)?;
        let n = milvus.delete(&ids)?;
        eprintln!(
            "vigil index delete: {n} deleted in {url} ({} live)",
            milvus.count()?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let repo = open_repo(&a.index)?;
    let mut loaded = repo.load(None, None, vigil_model::parallel::default_threads())?;
    let n = loaded.bank.delete(&ids)?;
    let (version, location) = repo.publish(&loaded.bank)?;
    eprintln!(
        "vigil index delete: {n} deleted (from version {})",
        loaded.version
    );
    published("delete", version, &location, &loaded.bank);
    Ok(ExitCode::SUCCESS)
}

fn compact(a: CompactArgs) -> anyhow::Result<ExitCode> {
    let threads = a
        .threads
        .map_or_else(vigil_model::parallel::default_threads, |t| t as usize);
    let repo = open_repo(&a.index)?;
    let loaded = repo.load(None, None, threads)?;
    let bank = loaded.bank.compact(threads)?;
    let (version, location) = repo.publish(&bank)?;
    eprintln!(
        "vigil index compact: {} tombstones dropped (from version {})",
        loaded.bank.manifest().tombstones,
        loaded.version
    );
    published("compact", version, &location, &bank);
    Ok(ExitCode::SUCCESS)
}

fn info(a: InfoArgs) -> anyhow::Result<ExitCode> {
    if let Target::Milvus(url) = &a.index {
        let milvus = Milvus::open(url)?;
        let out = serde_json::json!({
            "location": url.to_string(),
            "count": milvus.count()?,
            "manifest": milvus.manifest()?,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let repo = open_repo(&a.index)?;
    let loaded = repo.load(a.version, None, 1)?;
    let out = serde_json::json!({
        "version": loaded.version,
        "location": loaded.location,
        "versions": repo.versions()?,
        "memory_bytes": loaded.bank.memory_bytes(),
        "manifest": loaded.bank.manifest(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
