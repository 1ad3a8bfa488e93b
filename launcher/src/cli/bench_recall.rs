//! `vigil bench recall`: the graph `vigil index` builds (vigil-recall's [`Ann`]:
//! usearch HNSW with Vigil's f32 inner product) on a `.npy` corpus: build seconds,
//! memory, and queries/s with recall@k per `--ef-search` and `--threads`.
//! `benches/recall_ann.py` runs faiss-cpu's `IndexHNSWFlat` with the same parameters
//! on the same files and truth, in the same run, for the side-by-side ratio.
//!
//! Timing: every (efSearch, threads) cell runs all queries once untimed (its
//! results give recall@k), then `--repeats` timed passes; queries/s is reported as
//! the best pass and the median pass. Threads split the query set into contiguous
//! shares and search one shared graph, as `IndexHNSWFlat::search` splits a batch.
//!
//! `Ann` fixes efSearch when it is made, so the first `--ef-search` value is
//! searched on the built graph and each further one on a copy loaded from the built
//! graph's bytes (as `vigil recall` loads a published version). Listing a value
//! twice (`--ef-search 32,32`) measures the built and a loaded graph side by side.
//!
//! Memory is the graph's own count (`memory_bytes`) and the process's resident set
//! around the build: VmRSS after minus before, and the peak (VmHWM, reset first
//! where the kernel allows) minus the same before. The allocator is left at glibc's
//! defaults here (no `tune_allocator`): with mmap disabled, the `.npy` read buffer
//! freed just before the build would be reused by it and hide part of its growth.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use vigil_recall::exact::{exact_knn, recall_at_k};
use vigil_recall::vectors::read_npy;
use vigil_recall::{Ann, HnswParams, Neighbour};

use crate::cli::BenchUsageError;

/// Arguments of `vigil bench recall`.
#[derive(Debug, Args)]
#[command(
    after_help = "With --json, one JSON object on standard output: {\"n\", \"dims\", \
    \"queries\", \"k\", \"m\", \"ef_construction\", \"build_threads\", \"build_s\", \
    \"index_bytes\", \"rss_delta_bytes\", \"peak_delta_bytes\", \"peak_reset\", \"truth\", \
    \"exact_s\", \"repeats\", \"timing\", \"rows\": [{\"ef_search\", \"threads\", \"graph\" \
    (built|loaded), \"recall\", \"qps_best\", \"qps_median\", \"pass_s\": [..]}]}."
)]
pub struct RecallBenchArgs {
    /// The corpus: a 2-D float32 `.npy` (rows are keys 0..n; L2-normalised on read).
    #[arg(long, value_name = "FILE.npy")]
    base: PathBuf,
    /// The queries: a 2-D float32 `.npy` of the corpus' width.
    #[arg(long, value_name = "FILE.npy")]
    queries: PathBuf,
    /// Exact neighbours: a 2-D int64 `.npy`, one row of corpus row numbers per query
    /// (at least --k columns, most similar first). Default: computed here by exact
    /// search.
    #[arg(long, value_name = "FILE.npy")]
    truth: Option<PathBuf>,
    /// Neighbours per query (recall@k).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Graph degree (`M`).
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// Candidate list while building (`efConstruction`).
    #[arg(long, default_value_t = 200)]
    ef_construction: usize,
    /// Candidate lists while searching (`efSearch`), comma-separated.
    #[arg(long, default_value = "16,32,64,128", value_delimiter = ',')]
    ef_search: Vec<usize>,
    /// Search thread counts, comma-separated.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Threads adding vectors to the graph.
    #[arg(long, default_value_t = 2)]
    build_threads: usize,
    /// Timed passes over all queries per cell (after one untimed pass).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// One (efSearch, threads) cell.
struct Row {
    ef_search: usize,
    threads: usize,
    graph: &'static str,
    recall: f64,
    pass_s: Vec<f64>,
}

impl Row {
    fn qps(&self, nq: usize) -> (f64, f64) {
        let mut s = self.pass_s.clone();
        s.sort_by(f64::total_cmp);
        let best = s.first().copied().unwrap_or(f64::NAN);
        let median = s.get(s.len() / 2).copied().unwrap_or(f64::NAN);
        (nq as f64 / best, nq as f64 / median)
    }
}

fn usage(msg: String) -> anyhow::Error {
    BenchUsageError(msg).into()
}

/// `VmRSS` and `VmHWM` of this process in bytes (`None` where /proc has no such file).
fn rss_and_peak() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Reads a 2-D little-endian int64 C-order `.npy`: (rows, columns, values).
fn read_npy_i64(path: &Path) -> anyhow::Result<(usize, usize, Vec<i64>)> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let bad = |why: &str| {
        usage(format!(
            "{}: not a 2-D little-endian int64 C-order .npy: {why}",
            path.display()
        ))
    };
    if bytes.len() < 12 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("no NumPy magic"));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unknown format version")),
    };
    let header = bytes
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
    if !header.contains("'descr': '<i8'") {
        return Err(bad("dtype is not '<i8'"));
    }
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran order"));
    }
    let shape: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("shape is not integers")))
        .collect::<Result<_, _>>()?;
    let [rows, cols] = shape[..] else {
        return Err(bad("not 2-D"));
    };
    let body = &bytes[start + len..];
    if body.len() != rows * cols * 8 {
        return Err(bad("data size does not match the shape"));
    }
    let values = body
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect();
    Ok((rows, cols, values))
}

/// The truth file's first `k` columns as neighbour lists (similarities unused).
fn read_truth(path: &Path, nq: usize, n: usize, k: usize) -> anyhow::Result<Vec<Vec<Neighbour>>> {
    let (rows, cols, values) = read_npy_i64(path)?;
    if rows != nq || cols < k {
        return Err(usage(format!(
            "--truth {}: {rows} x {cols}, but there are {nq} queries and --k is {k}",
            path.display()
        )));
    }
    values
        .chunks_exact(cols)
        .map(|row| {
            row[..k]
                .iter()
                .map(|&key| match usize::try_from(key) {
                    Ok(i) if i < n => Ok(Neighbour {
                        key: i as u64,
                        similarity: f32::NAN,
                    }),
                    _ => Err(usage(format!(
                        "--truth {}: row number {key} is not in the corpus (0..{n})",
                        path.display()
                    ))),
                })
                .collect()
        })
        .collect()
}

/// Searches every query once, `threads` contiguous shares on one shared graph.
fn search_all(
    ann: &Ann,
    queries: &[f32],
    dims: usize,
    k: usize,
    threads: usize,
) -> anyhow::Result<Vec<Vec<Neighbour>>> {
    let nq = queries.len() / dims;
    let mut out: Vec<Vec<Neighbour>> = vec![Vec::new(); nq];
    let per = nq.div_ceil(threads.max(1)).max(1);
    let results: Vec<Result<(), vigil_recall::RecallError>> = std::thread::scope(|s| {
        let handles: Vec<_> = out
            .chunks_mut(per)
            .zip(queries.chunks(per * dims))
            .map(|(found, qs)| {
                s.spawn(move || {
                    for (slot, q) in found.iter_mut().zip(qs.chunks_exact(dims)) {
                        *slot = ann.search(q, k)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(vigil_recall::RecallError::Ann("search panicked".into()))
                })
            })
            .collect()
    });
    for r in results {
        r?;
    }
    Ok(out)
}

/// Runs the benchmark.
pub fn run(a: RecallBenchArgs) -> anyhow::Result<ExitCode> {
    let mut bad = Vec::new();
    if a.k == 0 {
        bad.push("--k must be at least 1".to_string());
    }
    if a.ef_search.is_empty() || a.threads.is_empty() {
        bad.push("--ef-search and --threads need at least one value".to_string());
    }
    if a.threads.iter().chain([&a.build_threads]).any(|&t| t == 0) {
        bad.push("thread counts must be at least 1".to_string());
    }
    if a.repeats == 0 {
        bad.push("--repeats must be at least 1".to_string());
    }
    for &ef in &a.ef_search {
        let p = HnswParams {
            m: a.m,
            ef_construction: a.ef_construction,
            ef_search: ef,
        };
        if let Err(e) = p.validate() {
            bad.push(e.to_string());
        }
    }
    bad.dedup();
    if !bad.is_empty() {
        return Err(usage(bad.join("; ")));
    }
    let base = read_npy(&a.base)?;
    let queries = read_npy(&a.queries)?;
    let (n, dims, nq) = (base.len(), base.dims, queries.len());
    if n == 0 || nq == 0 || queries.dims != dims {
        return Err(usage(format!(
            "--base is {n} x {dims} and --queries {nq} x {}: both need rows, of one width",
            queries.dims
        )));
    }
    if a.k > n {
        return Err(usage(format!(
            "--k {} is more than the corpus' {n} rows",
            a.k
        )));
    }
    let max_threads = a.threads.iter().copied().max().unwrap_or(1);
    let params = HnswParams {
        m: a.m,
        ef_construction: a.ef_construction,
        ef_search: a.ef_search[0],
    };

    // Build, with the resident set read on either side.
    let before = rss_and_peak();
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let t = Instant::now();
    let built = Ann::new(dims, params, n, a.build_threads.max(max_threads))?;
    let keys: Vec<u64> = (0..n as u64).collect();
    built.add(&keys, &base.data, a.build_threads)?;
    let build_s = t.elapsed().as_secs_f64();
    let after = rss_and_peak();
    let index_bytes = built.memory_bytes();
    let (rss_delta, peak_delta) = match (before, after) {
        (Some((r0, _)), Some((r1, p1))) => (
            Some(r1 as i64 - r0 as i64),
            Some(p1.saturating_sub(r0) as i64),
        ),
        _ => (None, None),
    };

    // The reference.
    let (truth, truth_source, exact_s) = match &a.truth {
        Some(p) => (read_truth(p, nq, n, a.k)?, p.display().to_string(), None),
        None => {
            let t = Instant::now();
            let found = exact_knn(&base.data, dims, &queries.data, a.k, max_threads, &|_| {
                false
            });
            let s = t.elapsed().as_secs_f64();
            (found, "exact search".to_string(), Some(s))
        }
    };

    let bytes = if a.ef_search.len() > 1 {
        built.to_bytes()?
    } else {
        Vec::new()
    };
    let mut rows = Vec::new();
    for (i, &ef) in a.ef_search.iter().enumerate() {
        let loaded;
        let (ann, graph) = if i == 0 {
            (&built, "built")
        } else {
            let p = HnswParams {
                ef_search: ef,
                ..params
            };
            loaded = Ann::from_bytes(&bytes, dims, p, max_threads)?;
            (&loaded, "loaded")
        };
        for &threads in &a.threads {
            let found = search_all(ann, &queries.data, dims, a.k, threads)?;
            let recall = recall_at_k(&found, &truth);
            drop(found);
            let mut pass_s = Vec::with_capacity(a.repeats);
            for _ in 0..a.repeats {
                let t = Instant::now();
                let found = search_all(ann, &queries.data, dims, a.k, threads)?;
                pass_s.push(t.elapsed().as_secs_f64());
                drop(found);
            }
            rows.push(Row {
                ef_search: ef,
                threads,
                graph,
                recall,
                pass_s,
            });
        }
    }

    let timing = format!(
        "queries/s over all {nq} queries: best and median of {} timed passes after 1 untimed pass",
        a.repeats
    );
    if a.json {
        let json_rows: Vec<_> = rows
            .iter()
            .map(|r| {
                let (best, median) = r.qps(nq);
                serde_json::json!({
                    "ef_search": r.ef_search,
                    "threads": r.threads,
                    "graph": r.graph,
                    "recall": r.recall,
                    "qps_best": best,
                    "qps_median": median,
                    "pass_s": r.pass_s,
                })
            })
            .collect();
        let out = serde_json::json!({
            "engine": "vigil (usearch HNSW, Vigil f32 inner product)",
            "base": a.base.display().to_string(),
            "queries_file": a.queries.display().to_string(),
            "n": n,
            "dims": dims,
            "queries": nq,
            "k": a.k,
            "m": a.m,
            "ef_construction": a.ef_construction,
            "build_threads": a.build_threads,
            "build_s": build_s,
            "index_bytes": index_bytes,
            "rss_delta_bytes": rss_delta,
            "peak_delta_bytes": peak_delta,
            "peak_reset": peak_reset,
            "truth": truth_source,
            "exact_s": exact_s,
            "repeats": a.repeats,
            "timing": timing,
            "rows": json_rows,
        });
        println!("{out}");
        return Ok(ExitCode::SUCCESS);
    }

    let mb = |b: i64| b as f64 / (1u64 << 20) as f64;
    println!(
        "vigil bench recall: {n} x {dims} corpus ({}), {nq} queries, k {}, M {}, \
         efConstruction {}; truth: {truth_source}{}",
        a.base.display(),
        a.k,
        a.m,
        a.ef_construction,
        exact_s.map_or(String::new(), |s| format!(
            " ({s:.1} s on {max_threads} threads)"
        )),
    );
    println!(
        "build: {build_s:.2} s on {} threads; graph {:.1} MiB (memory_bytes); {}",
        a.build_threads,
        mb(index_bytes as i64),
        match (rss_delta, peak_delta) {
            (Some(r), Some(p)) => format!(
                "RSS +{:.1} MiB, peak +{:.1} MiB{}",
                mb(r),
                mb(p),
                if peak_reset {
                    ""
                } else {
                    " (peak since process start)"
                }
            ),
            _ => "RSS not available".to_string(),
        }
    );
    println!("{timing}; the first efSearch on the built graph, others on loaded copies");
    println!(
        "{:>8} {:>7} {:>6} {:>9} {:>10} {:>10}",
        "efSearch", "threads", "graph", "recall@k", "qps best", "qps median"
    );
    for r in &rows {
        let (best, median) = r.qps(nq);
        println!(
            "{:>8} {:>7} {:>6} {:>9.4} {:>10.0} {:>10.0}",
            r.ef_search, r.threads, r.graph, r.recall, best, median
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((h.len() as u16).to_le_bytes());
        bytes.extend(h.as_bytes());
        bytes.extend(body);
        bytes
    }

    #[test]
    fn truth_rows_keep_the_first_k_columns_and_reject_strangers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npy");
        let body: Vec<u8> = [2i64, 0, 1, 1, 2, 0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        std::fs::write(&p, npy("<i8", "(2, 3)", &body)).unwrap();
        let t = read_truth(&p, 2, 3, 2).unwrap();
        let keys: Vec<Vec<u64>> = t
            .iter()
            .map(|r| r.iter().map(|n| n.key).collect())
            .collect();
        assert_eq!(keys, vec![vec![2, 0], vec![1, 2]]);
        assert!(
            read_truth(&p, 2, 2, 2).is_err(),
            "row 2 is outside a 2-row corpus"
        );
        assert!(read_truth(&p, 3, 3, 2).is_err(), "3 queries, 2 rows");
        std::fs::write(&p, npy("<f4", "(1, 2)", &[0; 8])).unwrap();
        assert!(read_npy_i64(&p).is_err());
    }

    #[test]
    fn every_query_is_searched_once_whatever_the_thread_count() {
        let dims = 4;
        let n = 64;
        let base: Vec<f32> = (0..n * dims)
            .map(|i| ((i * 7919 % 101) as f32 - 50.0) / 50.0 + 0.01)
            .collect();
        let mut v = vigil_recall::Vectors::default();
        for (i, row) in base.chunks_exact(dims).enumerate() {
            v.push(i.to_string(), row).unwrap();
        }
        let ann = Ann::new(dims, HnswParams::default(), n, 2).unwrap();
        let keys: Vec<u64> = (0..n as u64).collect();
        ann.add(&keys, &v.data, 2).unwrap();
        let queries = &v.data[..5 * dims];
        let truth = exact_knn(&v.data, dims, queries, 3, 1, &|_| false);
        for threads in [1, 2, 7] {
            let found = search_all(&ann, queries, dims, 3, threads).unwrap();
            assert_eq!(found.len(), 5);
            assert_eq!(recall_at_k(&found, &truth), 1.0, "{threads} threads");
        }
    }
}
