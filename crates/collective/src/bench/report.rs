//! Benchmark rows: statistics and formatting, pure.

use serde::{Deserialize, Serialize};

/// One size's result (the `--json` line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    /// Buffer size in bytes.
    pub bytes: usize,
    /// Median time of one all-reduce (slowest rank), microseconds.
    pub time_us_median: f64,
    /// 99th percentile time, microseconds.
    pub time_us_p99: f64,
    /// `bytes / median time`, GB/s (1e9).
    pub algbw_gbps: f64,
    /// `algbw · 2(n−1)/n`, GB/s.
    pub busbw_gbps: f64,
    /// Elements that differed from the expected sum, over all ranks and iterations.
    pub wrong: u64,
    /// Transport measured (`tcp`, `shm`, `shm-copy`).
    pub transport: String,
    /// Number of ranks.
    pub nproc: usize,
    /// Single-core memcpy bandwidth measured by the parent, GB/s (the physical reference).
    #[serde(default)]
    pub memcpy_gbps: f64,
}

/// Percentile `q` in [0, 1] of `v` (nearest rank); 0 for an empty slice.
pub fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let idx = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    s[idx]
}

impl BenchRow {
    /// Build a row from per-iteration times in seconds.
    pub fn from_times(
        bytes: usize,
        times_s: &[f64],
        wrong: u64,
        transport: &str,
        nproc: usize,
    ) -> Self {
        let med = percentile(times_s, 0.5);
        let p99 = percentile(times_s, 0.99);
        let algbw = if med > 0.0 {
            bytes as f64 / med / 1e9
        } else {
            0.0
        };
        let factor = if nproc > 1 {
            2.0 * (nproc as f64 - 1.0) / nproc as f64
        } else {
            0.0
        };
        BenchRow {
            bytes,
            time_us_median: med * 1e6,
            time_us_p99: p99 * 1e6,
            algbw_gbps: algbw,
            busbw_gbps: algbw * factor,
            wrong,
            transport: transport.into(),
            nproc,
            memcpy_gbps: 0.0,
        }
    }

    /// Table header matching [`BenchRow::table_line`].
    pub fn table_header() -> String {
        format!(
            "#{:>12} {:>12} {:>12} {:>10} {:>10} {:>8}\n#{:>12} {:>12} {:>12} {:>10} {:>10} {:>8}",
            "size",
            "time med",
            "time p99",
            "algbw",
            "busbw",
            "#wrong",
            "(B)",
            "(us)",
            "(us)",
            "(GB/s)",
            "(GB/s)",
            ""
        )
    }

    /// One table line.
    pub fn table_line(&self) -> String {
        format!(
            " {:>12} {:>12.1} {:>12.1} {:>10.2} {:>10.2} {:>8}",
            self.bytes,
            self.time_us_median,
            self.time_us_p99,
            self.algbw_gbps,
            self.busbw_gbps,
            self.wrong
        )
    }

    /// One JSON line.
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.99), 5.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn bandwidths_follow_nccl_tests() {
        let r = BenchRow::from_times(64_000_000, &[0.016, 0.016, 0.020], 0, "shm", 2);
        assert!((r.algbw_gbps - 4.0).abs() < 1e-9);
        assert!((r.busbw_gbps - 4.0).abs() < 1e-9); // n = 2: busbw = algbw
        let r4 = BenchRow::from_times(64_000_000, &[0.016], 0, "tcp", 4);
        assert!((r4.busbw_gbps - 6.0).abs() < 1e-9);
        let j: serde_json::Value = serde_json::from_str(&r.json_line()).unwrap();
        for k in [
            "bytes",
            "time_us_median",
            "time_us_p99",
            "algbw_gbps",
            "busbw_gbps",
            "wrong",
            "transport",
            "nproc",
        ] {
            assert!(j.get(k).is_some(), "missing {k}");
        }
    }
}
