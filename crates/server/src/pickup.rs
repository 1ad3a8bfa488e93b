//! Version pickup: which version the server should be serving, given the one
//! it serves and what the repository holds now.
//!
//! The repository is read with `vigil predict`'s rule
//! ([`vigil_store::repo::locate`]: the newest complete version whose manifest
//! verifies; staging directories and damaged versions never count). [`decide`]
//! is the pure part: keep, or load a version; the poller in [`crate::engine`]
//! does the I/O and the swap. A version that verified but failed to load is
//! remembered and not tried again, so a broken export is logged once and the old
//! version keeps serving. A newest version *lower* than the loaded one (the
//! newer was deleted: a rollback) is loaded too — the repository is the truth.

/// What the poller does after reading the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pickup {
    /// Keep serving the loaded version.
    Keep,
    /// Load this version in the background, then swap.
    Load(u64),
}

/// `loaded`: the version served; `pinned`: `--version`; `newest`: the newest
/// complete version now (None: none verifies); `failed`: versions that failed
/// to load before.
pub fn decide(loaded: u64, pinned: Option<u64>, newest: Option<u64>, failed: &[u64]) -> Pickup {
    match (pinned, newest) {
        (Some(_), _) | (None, None) => Pickup::Keep,
        (None, Some(v)) if v == loaded || failed.contains(&v) => Pickup::Keep,
        (None, Some(v)) => Pickup::Load(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_complete_version_is_loaded_once() {
        assert_eq!(decide(1, None, Some(1), &[]), Pickup::Keep);
        assert_eq!(decide(1, None, Some(2), &[]), Pickup::Load(2));
        assert_eq!(
            decide(1, None, Some(2), &[2]),
            Pickup::Keep,
            "failed before"
        );
        assert_eq!(
            decide(1, None, None, &[]),
            Pickup::Keep,
            "nothing verifies now"
        );
    }

    #[test]
    fn a_pin_never_moves_and_a_rollback_is_followed() {
        assert_eq!(decide(3, Some(3), Some(5), &[]), Pickup::Keep);
        assert_eq!(decide(3, None, Some(2), &[]), Pickup::Load(2));
    }
}
