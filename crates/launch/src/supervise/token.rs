//! The run's store token and id.
//!
//! The token is the store's secret: node 0 uses `VIGIL_STORE_TOKEN` when set, else the
//! contents of `--store-token-file` when that file exists, else a fresh random one (and
//! writes it to `--store-token-file`, mode 0600, when that path was given but absent — on a
//! shared filesystem the other nodes then find it). Nodes > 0 must be given the same token:
//! `VIGIL_STORE_TOKEN`, or `--store-token-file` (waited for up to `launch.rdzv_timeout_s`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::error::LaunchError;

/// `bytes` random bytes as hex.
pub fn fresh_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The token node `node_rank` uses; `token_file` is `--store-token-file`, waited for up to
/// `wait` on nodes > 0. (Plain arguments rather than the agent's spec, so this module
/// sits below the agent that calls it.)
pub fn resolve(
    node_rank: u32,
    token_file: Option<&Path>,
    wait: Duration,
) -> Result<String, LaunchError> {
    if let Ok(t) = std::env::var("VIGIL_STORE_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_string());
    }
    let read = |path: &Path| -> Option<String> {
        let t = std::fs::read_to_string(path).ok()?;
        let t = t.trim().to_string();
        (!t.is_empty()).then_some(t)
    };
    if node_rank == 0 {
        if let Some(path) = token_file {
            if let Some(t) = read(path) {
                return Ok(t);
            }
            let t = fresh_id(16);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|source| LaunchError::Io {
                    what: "write the store token to",
                    path: path.to_path_buf(),
                    source,
                })?;
            f.write_all(format!("{t}\n").as_bytes())
                .map_err(|source| LaunchError::Io {
                    what: "write the store token to",
                    path: path.to_path_buf(),
                    source,
                })?;
            return Ok(t);
        }
        return Ok(fresh_id(16));
    }
    if let Some(path) = token_file {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(t) = read(path) {
                return Ok(t);
            }
            if super::signals::pending() {
                return Err(LaunchError::Interrupted {
                    during: format!("waiting for the token file {}", path.display()),
                });
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Err(LaunchError::NoToken {
        node_rank,
        file: token_file.map(Path::to_path_buf),
    })
}
