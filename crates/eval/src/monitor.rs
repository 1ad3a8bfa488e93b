//! The one rule for "is this metric value better": early stopping, the best
//! checkpoints kept by retention, and `export.when: best` all ask it, so a
//! `mode: min` metric or a NaN means the same thing everywhere.
//!
//! - A value that is not finite (NaN, ±inf) or absent never improves anything and
//!   is never ranked.
//! - The first finite value improves on nothing.
//! - Otherwise a value improves on the best by more than `min_delta` in the
//!   direction of `mode` (strictly: a tie is not an improvement).

use vigil_config::MonitorMode;

/// Whether `value` improves on `best` (see the module docs).
pub fn improves(mode: MonitorMode, value: Option<f64>, best: Option<f64>, min_delta: f64) -> bool {
    let Some(v) = value.filter(|v| v.is_finite()) else {
        return false;
    };
    match best.filter(|b| b.is_finite()) {
        None => true,
        Some(b) => match mode {
            MonitorMode::Max => v > b + min_delta,
            MonitorMode::Min => v < b - min_delta,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_finite_value_improves_and_nan_never_does() {
        assert!(improves(MonitorMode::Max, Some(0.1), None, 0.0));
        assert!(!improves(MonitorMode::Max, Some(f64::NAN), None, 0.0));
        assert!(!improves(MonitorMode::Min, None, Some(1.0), 0.0));
        assert!(improves(MonitorMode::Max, Some(0.1), Some(f64::NAN), 0.0));
    }

    #[test]
    fn improvement_is_strict_and_beyond_min_delta() {
        assert!(!improves(MonitorMode::Max, Some(0.5), Some(0.5), 0.0));
        assert!(improves(MonitorMode::Max, Some(0.52), Some(0.5), 0.01));
        assert!(!improves(MonitorMode::Max, Some(0.505), Some(0.5), 0.01));
        assert!(improves(MonitorMode::Min, Some(0.4), Some(0.5), 0.0));
        assert!(!improves(MonitorMode::Min, Some(0.6), Some(0.5), 0.0));
    }
}
