//! [`Metrics`]: every metric `vigil serve` exposes, in one `prometheus-client`
//! [`Registry`].
//!
//! The names, help texts, label names and buckets are those of the hand-written
//! exposition this replaced (dashboards query them). Counters are registered
//! without `_total`: the encoder appends it. The model-labelled series are created
//! once, in [`Metrics::new`], and their handles kept, so recording one is a single
//! atomic update; only the request counters, labelled per endpoint and status,
//! look their series up (a read lock and a hash of two words, no allocation).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::histogram::AtomicHistogram;

/// Upper bounds of the latency histogram, seconds.
const LATENCY_BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Upper bounds of the batch-size histogram, rows.
const BATCH_BOUNDS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// `vigil_serve_requests_total`'s labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    code: u16,
}

/// `vigil_serve_errors_total`'s label.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

/// The label of the model-wide series.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

/// The server's metrics; shared by the HTTP handlers, the workers and the poller.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<EndpointLabels, Counter>,
    latency: AtomicHistogram,
    batch_rows: AtomicHistogram,
    queue_depth: Gauge,
    version: Gauge<u64, AtomicU64>,
    swaps: Counter,
    load_failures: Counter,
    recall: Option<RecallSeries>,
}

/// The series of the recall model `<model>-recall`: the same families, labelled
/// with its name; its version is the index version.
#[derive(Debug)]
struct RecallSeries {
    latency: AtomicHistogram,
    version: Gauge<u64, AtomicU64>,
    swaps: Counter,
    load_failures: Counter,
}

impl Metrics {
    /// Every family registered, with `model`'s series at zero.
    #[cfg(test)]
    pub fn new(model: &str) -> Self {
        Self::with_recall(model, None)
    }

    /// [`Metrics::new`], and the series of the recall model `recall` (its
    /// latency, index version, swaps and load failures) when it is served.
    pub fn with_recall(model: &str, recall: Option<&str>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<EndpointLabels, Counter>::default();
        let latency: Family<ModelLabels, AtomicHistogram> =
            Family::new_with_constructor(|| AtomicHistogram::new(&LATENCY_BOUNDS));
        let batch_rows: Family<ModelLabels, AtomicHistogram> =
            Family::new_with_constructor(|| AtomicHistogram::new(&BATCH_BOUNDS));
        let queue_depth = Family::<ModelLabels, Gauge>::default();
        let version = Family::<ModelLabels, Gauge<u64, AtomicU64>>::default();
        let swaps = Family::<ModelLabels, Counter>::default();
        let load_failures = Family::<ModelLabels, Counter>::default();

        // The registry appends the full stop to each help text.
        registry.register(
            "vigil_serve_requests",
            "HTTP requests by endpoint and status code",
            requests.clone(),
        );
        registry.register(
            "vigil_serve_errors",
            "HTTP requests answered 4xx or 5xx, by endpoint",
            errors.clone(),
        );
        registry.register(
            "vigil_serve_request_duration_seconds",
            "Latency of inference requests (infer, moderate)",
            latency.clone(),
        );
        registry.register(
            "vigil_serve_batch_rows",
            "Rows per batch the workers ran",
            batch_rows.clone(),
        );
        registry.register(
            "vigil_serve_queue_depth",
            "Requests waiting for a worker",
            queue_depth.clone(),
        );
        registry.register(
            "vigil_serve_model_version",
            "The model version being served",
            version.clone(),
        );
        registry.register(
            "vigil_serve_model_swaps",
            "Times a newer version replaced the served one",
            swaps.clone(),
        );
        registry.register(
            "vigil_serve_model_load_failures",
            "Versions that failed to load",
            load_failures.clone(),
        );

        let m = ModelLabels {
            model: model.to_owned(),
        };
        let recall = recall.map(|name| {
            let r = ModelLabels {
                model: name.to_owned(),
            };
            RecallSeries {
                latency: latency.get_or_create_owned(&r),
                version: version.get_or_create_owned(&r),
                swaps: swaps.get_or_create_owned(&r),
                load_failures: load_failures.get_or_create_owned(&r),
            }
        });
        Self {
            recall,
            registry,
            requests,
            errors,
            latency: latency.get_or_create_owned(&m),
            batch_rows: batch_rows.get_or_create_owned(&m),
            queue_depth: queue_depth.get_or_create_owned(&m),
            version: version.get_or_create_owned(&m),
            swaps: swaps.get_or_create_owned(&m),
            load_failures: load_failures.get_or_create_owned(&m),
        }
    }

    /// One finished HTTP request on `endpoint` with `status`; inference
    /// endpoints also record their latency.
    pub fn request(&self, endpoint: &'static str, status: u16, seconds: Option<f64>) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                code: status,
            })
            .inc();
        if status >= 400 {
            self.errors
                .get_or_create(&EndpointLabels { endpoint })
                .inc();
        }
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
        self.queue_depth.set(depth.try_into().unwrap_or(i64::MAX));
    }

    /// The version now served; `swap`: it replaced another.
    pub fn set_version(&self, version: u64, swap: bool) {
        self.version.set(version);
        if swap {
            self.swaps.inc();
        }
    }

    /// A version failed to load.
    pub fn load_failed(&self) {
        self.load_failures.inc();
    }

    /// One recall request's latency (the request itself is counted by [`Metrics::request`]).
    pub fn recall_latency(&self, seconds: f64) {
        if let Some(r) = &self.recall {
            r.latency.observe(seconds);
        }
    }

    /// The recall index version now served; `swap`: it replaced another.
    pub fn set_recall_version(&self, version: u64, swap: bool) {
        if let Some(r) = &self.recall {
            r.version.set(version);
            if swap {
                r.swaps.inc();
            }
        }
    }

    /// A recall index version failed to load.
    pub fn recall_load_failed(&self) {
        if let Some(r) = &self.recall {
            r.load_failures.inc();
        }
    }

    /// The text exposition (format 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Only the sink can fail, and a `String` never does.
        prometheus_text::encode(&mut out, &self.registry)
            .expect("encoding metrics into a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One sample line of an exposition, its label values unescaped.
    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    /// Parses a text exposition (format 0.0.4) strictly enough to catch what
    /// breaks a scrape: a `# HELP`/`# TYPE` line per family, names of
    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`, label values in quotes with only `\\`, `\"`
    /// and `\n` escaped, a number after them, and nothing else on a line.
    fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
        fn name(s: &str) -> Result<(&str, &str), String> {
            let end = s
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(s.len());
            match s[..end].chars().next() {
                Some(c) if !c.is_ascii_digit() => Ok((&s[..end], &s[end..])),
                _ => Err(format!("no name at {s:?}")),
            }
        }
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                name(rest)?;
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (_, kind) = name(rest)?;
                let kinds = [" counter", " gauge", " histogram", " summary", " untyped"];
                if !kinds.contains(&kind) {
                    return Err(format!("bad TYPE line {line:?}"));
                }
                continue;
            }
            let (metric, mut rest) = name(line)?;
            let mut labels = Vec::new();
            if let Some(mut r) = rest.strip_prefix('{') {
                while !r.starts_with('}') {
                    let (key, after) = name(r)?;
                    let mut chars = after
                        .strip_prefix("=\"")
                        .ok_or(format!("no =\" after label {key} in {line:?}"))?
                        .char_indices();
                    let mut value = String::new();
                    let end = loop {
                        match chars.next() {
                            Some((i, '"')) => break i + 1,
                            Some((_, '\\')) => match chars.next() {
                                Some((_, '\\')) => value.push('\\'),
                                Some((_, '"')) => value.push('"'),
                                Some((_, 'n')) => value.push('\n'),
                                other => return Err(format!("bad escape {other:?} in {line:?}")),
                            },
                            Some((_, c)) => value.push(c),
                            None => return Err(format!("unterminated label value in {line:?}")),
                        }
                    };
                    labels.push((key.to_owned(), value));
                    r = &after[2 + end..];
                    r = r.strip_prefix(',').unwrap_or(r);
                }
                rest = &r[1..];
            }
            let value = rest
                .strip_prefix(' ')
                .ok_or(format!("no value in {line:?}"))?;
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().map_err(|_| format!("bad value in {line:?}"))?,
            };
            samples.push(Sample {
                name: metric.to_owned(),
                labels,
                value,
            });
        }
        Ok(samples)
    }

    #[test]
    fn the_exposition_holds_every_family() {
        let m = Metrics::new("tiny");
        m.request("infer", 200, Some(0.003));
        m.request("infer", 400, Some(0.001));
        m.batch(3);
        m.set_queue_depth(2);
        m.set_version(4, true);
        let text = m.render();
        for line in [
            "# HELP vigil_serve_requests_total HTTP requests by endpoint and status code.",
            "# TYPE vigil_serve_requests_total counter",
            "vigil_serve_requests_total{endpoint=\"infer\",code=\"200\"} 1",
            "# TYPE vigil_serve_errors_total counter",
            "vigil_serve_errors_total{endpoint=\"infer\"} 1",
            "# HELP vigil_serve_request_duration_seconds Latency of inference requests (infer, moderate).",
            "# TYPE vigil_serve_request_duration_seconds histogram",
            "vigil_serve_request_duration_seconds_bucket{model=\"tiny\",le=\"0.005\"} 2",
            "vigil_serve_request_duration_seconds_bucket{model=\"tiny\",le=\"0.001\"} 1",
            "vigil_serve_request_duration_seconds_bucket{model=\"tiny\",le=\"10\"} 2",
            "vigil_serve_request_duration_seconds_bucket{model=\"tiny\",le=\"+Inf\"} 2",
            "vigil_serve_request_duration_seconds_count{model=\"tiny\"} 2",
            "vigil_serve_batch_rows_bucket{model=\"tiny\",le=\"2\"} 0",
            "vigil_serve_batch_rows_bucket{model=\"tiny\",le=\"4\"} 1",
            "vigil_serve_batch_rows_bucket{model=\"tiny\",le=\"256\"} 1",
            "vigil_serve_batch_rows_count{model=\"tiny\"} 1",
            "# TYPE vigil_serve_queue_depth gauge",
            "vigil_serve_queue_depth{model=\"tiny\"} 2",
            "# TYPE vigil_serve_model_version gauge",
            "vigil_serve_model_version{model=\"tiny\"} 4",
            "# TYPE vigil_serve_model_swaps_total counter",
            "vigil_serve_model_swaps_total{model=\"tiny\"} 1",
            "# TYPE vigil_serve_model_load_failures_total counter",
            "vigil_serve_model_load_failures_total{model=\"tiny\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
        let samples = parse_exposition(&text).unwrap();
        let sum = samples
            .iter()
            .find(|s| s.name == "vigil_serve_request_duration_seconds_sum")
            .unwrap();
        assert!((sum.value - 0.004).abs() < 1e-12, "{text}");
    }

    #[test]
    fn the_recall_model_has_its_own_series_only_when_served() {
        let m = Metrics::with_recall("tiny", Some("tiny-recall"));
        m.recall_latency(0.002);
        m.set_recall_version(3, false);
        m.set_recall_version(4, true);
        m.recall_load_failed();
        let text = m.render();
        for line in [
            "vigil_serve_request_duration_seconds_count{model=\"tiny-recall\"} 1",
            "vigil_serve_request_duration_seconds_count{model=\"tiny\"} 0",
            "vigil_serve_model_version{model=\"tiny-recall\"} 4",
            "vigil_serve_model_swaps_total{model=\"tiny-recall\"} 1",
            "vigil_serve_model_load_failures_total{model=\"tiny-recall\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        parse_exposition(&text).unwrap();
        let plain = Metrics::new("tiny");
        plain.recall_latency(0.002);
        plain.set_recall_version(4, true);
        assert!(!plain.render().contains("tiny-recall"));
    }

    #[test]
    fn every_bucket_of_the_current_exposition_is_kept() {
        let text = Metrics::new("tiny").render();
        let les = |metric: &str| -> Vec<String> {
            parse_exposition(&text)
                .unwrap()
                .into_iter()
                .filter(|s| s.name == metric)
                .map(|s| s.labels.into_iter().find(|(k, _)| k == "le").unwrap().1)
                .collect()
        };
        assert_eq!(
            les("vigil_serve_request_duration_seconds_bucket"),
            [
                "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
                "2.5", "10", "+Inf"
            ]
        );
        assert_eq!(
            les("vigil_serve_batch_rows_bucket"),
            ["1", "2", "4", "8", "16", "32", "64", "128", "256", "+Inf"]
        );
    }

    /// Regression: the hand-written exposition put label values between quotes
    /// as they were, so a model name holding `"`, `\` or a newline broke the page.
    #[test]
    fn a_model_name_with_quotes_backslashes_and_newlines_is_escaped() {
        let model = "ti\"ny\\v2\nx";
        let m = Metrics::new(model);
        m.request("infer", 200, Some(0.01));
        m.batch(1);
        let text = m.render();
        assert!(
            text.lines()
                .any(|l| l == "vigil_serve_model_version{model=\"ti\\\"ny\\\\v2\\nx\"} 0"),
            "{text}"
        );
        let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        let models: Vec<&str> = samples
            .iter()
            .flat_map(|s| &s.labels)
            .filter(|(k, _)| k == "model")
            .map(|(_, v)| v.as_str())
            .collect();
        // Both histograms (13 and 10 bucket lines, each with its sum and count),
        // the two gauges and the two counters.
        assert_eq!(models.len(), (13 + 2) + (10 + 2) + 4, "{text}");
        assert!(models.iter().all(|v| *v == model), "{models:?}");
    }

    #[test]
    fn the_checker_rejects_an_unescaped_label_value() {
        for bad in [
            "m{model=\"a\"b\"} 1",
            "m{model=\"a\\x\"} 1",
            "m{model=\"a} 1",
            "m{model=\"a\"}",
            "1m 1",
        ] {
            assert!(parse_exposition(bad).is_err(), "{bad}");
        }
        assert!(parse_exposition("m{a=\"\\\"\",b=\"\\n\"} 1\nn 2.5").is_ok());
    }
}
