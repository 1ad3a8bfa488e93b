//! `vigil serve`'s Prometheus metrics, kept in a `prometheus-client` registry and
//! encoded in the Prometheus text format (version 0.0.4) for `GET /metrics`.
//!
//! # Layout
//! - `registry.rs`: [`Metrics`] — the families, their names, help and labels, the
//!   calls the handlers, workers and poller make, and the encoding.
//! - `histogram.rs`: [`AtomicHistogram`](histogram::AtomicHistogram), a histogram
//!   observed with atomics only.
//!
//! Why a crate for a few counters: the exposition used to be written by hand and
//! did not escape label values, so a model name holding `"`, `\` or a newline made
//! the whole page unparseable; the client's encoder escapes them.

mod histogram;
mod registry;

pub use registry::Metrics;
