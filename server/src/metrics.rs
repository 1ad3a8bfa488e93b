//! Prometheus metrics, written by hand in the text exposition format (version
//! 0.0.4): a handful of counters, gauges and two histograms do not need a crate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency histogram, seconds.
const LATENCY_BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Upper bounds of the batch-size histogram, rows.
const BATCH_BOUNDS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A cumulative histogram with fixed bounds.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum in micro-units (µs or rows × 10⁶) so it fits an atomic integer.
    sum_micro: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if v <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micro
            .fetch_add((v * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// The server's metrics; shared by the HTTP handlers, the workers and the poller.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Histogram,
    batch_rows: Histogram,
    queue_depth: AtomicU64,
    version: AtomicU64,
    swaps: AtomicU64,
    load_failures: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::new(BTreeMap::new()),
            latency: Histogram::new(&LATENCY_BOUNDS),
            batch_rows: Histogram::new(&BATCH_BOUNDS),
            queue_depth: AtomicU64::new(0),
            version: AtomicU64::new(0),
            swaps: AtomicU64::new(0),
            load_failures: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// One finished HTTP request on `endpoint` with `status`; inference
    /// endpoints also record their latency.
    pub fn request(&self, endpoint: &'static str, status: u16, seconds: Option<f64>) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((endpoint, status))
            .or_default() += 1;
        if let Some(s) = seconds {
            self.latency.observe(s);
        }
    }

    /// One batch of `rows` rows ran.
    pub fn batch(&self, rows: usize) {
        self.batch_rows.observe(rows as f64);
    }

    /// Requests waiting now.
    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth.store(depth as u64, Ordering::Relaxed);
    }

    /// The version now served; `swap`: it replaced another.
    pub fn set_version(&self, version: u64, swap: bool) {
        self.version.store(version, Ordering::Relaxed);
        if swap {
            self.swaps.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A version failed to load.
    pub fn load_failed(&self) {
        self.load_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition of every metric.
    pub fn render(&self, model: &str) -> String {
        let mut out = String::new();
        let m = format!("model=\"{model}\"");
        out.push_str(
            "# HELP vigil_serve_requests_total HTTP requests by endpoint and status code.\n",
        );
        out.push_str("# TYPE vigil_serve_requests_total counter\n");
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for ((endpoint, code), n) in &requests {
            let _ = writeln!(
                out,
                "vigil_serve_requests_total{{endpoint=\"{endpoint}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP vigil_serve_errors_total HTTP requests answered 4xx or 5xx, by endpoint.\n",
        );
        out.push_str("# TYPE vigil_serve_errors_total counter\n");
        let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
        for ((endpoint, code), n) in &requests {
            if *code >= 400 {
                *errors.entry(endpoint).or_default() += n;
            }
        }
        for (endpoint, n) in errors {
            let _ = writeln!(
                out,
                "vigil_serve_errors_total{{endpoint=\"{endpoint}\"}} {n}"
            );
        }
        out.push_str("# HELP vigil_serve_request_duration_seconds Latency of inference requests (infer, moderate).\n");
        out.push_str("# TYPE vigil_serve_request_duration_seconds histogram\n");
        self.latency
            .render(&mut out, "vigil_serve_request_duration_seconds", &m);
        out.push_str("# HELP vigil_serve_batch_rows Rows per batch the workers ran.\n");
        out.push_str("# TYPE vigil_serve_batch_rows histogram\n");
        self.batch_rows
            .render(&mut out, "vigil_serve_batch_rows", &m);
        let gauges = [
            (
                "vigil_serve_queue_depth",
                "Requests waiting for a worker.",
                "gauge",
                &self.queue_depth,
            ),
            (
                "vigil_serve_model_version",
                "The model version being served.",
                "gauge",
                &self.version,
            ),
            (
                "vigil_serve_model_swaps_total",
                "Times a newer version replaced the served one.",
                "counter",
                &self.swaps,
            ),
            (
                "vigil_serve_model_load_failures_total",
                "Versions that failed to load.",
                "counter",
                &self.load_failures,
            ),
        ];
        for (name, help, kind, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let _ = writeln!(out, "{name}{{{m}}} {}", v.load(Ordering::Relaxed));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_holds_every_family() {
        let m = Metrics::default();
        m.request("infer", 200, Some(0.003));
        m.request("infer", 400, Some(0.001));
        m.batch(3);
        m.set_queue_depth(2);
        m.set_version(4, true);
        let text = m.render("tiny");
        for line in [
            "vigil_serve_requests_total{endpoint=\"infer\",code=\"200\"} 1",
            "vigil_serve_errors_total{endpoint=\"infer\"} 1",
            "vigil_serve_request_duration_seconds_bucket{model=\"tiny\",le=\"0.005\"} 2",
            "vigil_serve_request_duration_seconds_bucket{model=\"tiny\",le=\"0.001\"} 1",
            "vigil_serve_request_duration_seconds_count{model=\"tiny\"} 2",
            "vigil_serve_batch_rows_bucket{model=\"tiny\",le=\"2\"} 0",
            "vigil_serve_batch_rows_bucket{model=\"tiny\",le=\"4\"} 1",
            "vigil_serve_queue_depth{model=\"tiny\"} 2",
            "vigil_serve_model_version{model=\"tiny\"} 4",
            "vigil_serve_model_swaps_total{model=\"tiny\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
