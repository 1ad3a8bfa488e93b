//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use vigil_collective::store::BackgroundStore;

/// Token used by test stores.
pub const TOKEN: &str = "test-token-0123456789";

/// A store on 127.0.0.1 with a random port.
pub fn store() -> BackgroundStore {
    BackgroundStore::start(SocketAddr::from(([127, 0, 0, 1], 0)), TOKEN).expect("start store")
}

/// Short timeout used by tests that expect a failure.
pub const SHORT: Duration = Duration::from_millis(1500);
/// Generous timeout for tests that expect success.
pub const LONG: Duration = Duration::from_secs(20);
