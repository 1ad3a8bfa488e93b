//! [`BenchOptions`] and size parsing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::group::TransportKind;

/// Environment variable through which the parent hands the options to its ranks.
pub const OPTS_ENV: &str = "VIGIL_BENCH_OPTS";

/// What to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchOptions {
    /// Number of rank processes.
    pub nproc: usize,
    /// `tcp`, `shm` or `auto`.
    pub transport: String,
    /// Buffer sizes in bytes.
    pub sizes: Vec<usize>,
    /// Timed iterations per size.
    pub iters: usize,
    /// Untimed warm-up iterations per size.
    pub warmup: usize,
    /// Print JSON lines instead of the table.
    pub json: bool,
    /// Under shm, copy through staging instead of reducing shared buffers in place.
    pub copy: bool,
    /// Per-operation timeout in milliseconds.
    pub timeout_ms: u64,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            nproc: 2,
            transport: "auto".into(),
            sizes: vec![1 << 20, 16 << 20, 64 << 20],
            iters: 20,
            warmup: 3,
            json: false,
            copy: false,
            timeout_ms: 60_000,
        }
    }
}

impl BenchOptions {
    /// Check the options; every problem at once.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        if self.nproc == 0 {
            problems.push("--nproc must be at least 1".to_string());
        }
        if let Err(e) = self.transport_kind() {
            problems.push(e.to_string());
        }
        if self.sizes.is_empty() {
            problems.push("--sizes must name at least one size".into());
        }
        if self.iters == 0 {
            problems.push("--iters must be at least 1".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Config {
                reason: problems.join("; "),
            })
        }
    }

    /// The transport as a [`TransportKind`] (`nccl` is not benchmarked here).
    pub fn transport_kind(&self) -> Result<TransportKind> {
        match self.transport.parse()? {
            TransportKind::Nccl => Err(Error::Config {
                reason: "the CPU benchmark supports --transport tcp, shm or auto".into(),
            }),
            k => Ok(k),
        }
    }

    /// The per-operation timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    /// Serialize for [`OPTS_ENV`].
    pub fn to_env(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read from [`OPTS_ENV`].
    pub fn from_env() -> Result<Self> {
        let raw = std::env::var(OPTS_ENV).map_err(|_| Error::Env {
            var: OPTS_ENV.into(),
            reason: "is not set (ranks are started by the benchmark parent)".into(),
        })?;
        serde_json::from_str(&raw).map_err(|e| Error::Env {
            var: OPTS_ENV.into(),
            reason: e.to_string(),
        })
    }
}

/// Parse `64M`, `1K`, `2G`, `1000` (binary multiples, like nccl-tests).
pub fn parse_size(s: &str) -> Result<usize> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1usize << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'B' => 1,
                _ => return Err(bad_size(s)),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: usize = num.trim().parse().map_err(|_| bad_size(s))?;
    n.checked_mul(mult).ok_or_else(|| bad_size(s))
}

/// Parse a comma-separated size list (`1M,16M,64M`).
pub fn parse_sizes(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(parse_size)
        .collect()
}

fn bad_size(s: &str) -> Error {
    Error::Config {
        reason: format!("{s:?} is not a size like 64M, 512K or 1000"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(
            parse_sizes("1M,16M, 64M").unwrap(),
            vec![1 << 20, 16 << 20, 64 << 20]
        );
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("4k").unwrap(), 4096);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("M").is_err());
    }

    #[test]
    fn options_round_trip_and_validate() {
        let o = BenchOptions::default();
        let back: BenchOptions = serde_json::from_str(&o.to_env()).unwrap();
        assert_eq!(o, back);
        let bad = BenchOptions {
            nproc: 0,
            iters: 0,
            transport: "x".into(),
            ..o
        };
        let msg = bad.validate().unwrap_err().to_string();
        assert!(msg.contains("--nproc") && msg.contains("--iters") && msg.contains("transport"));
    }
}
