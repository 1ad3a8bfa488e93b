//! Errors of reaching object storage. Every variant names the URL involved, so
//! a message in the log says which bucket and key refused, timed out or is
//! malformed; the `object_store` error underneath (kept as the source) says how
//! many retries were made.

/// Why a storage URL could not be parsed or a request to it failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The string is not a URL Vigil can use.
    #[error("{url:?} is not a usable storage location: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key below a prefix would leave it or is malformed.
    #[error("{key:?} below {url} is not a valid key: {reason}")]
    BadKey {
        /// The prefix the key is relative to.
        url: String,
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The client for the bucket could not be configured from the environment.
    #[error("cannot configure access to {url} from the environment: {source}")]
    Config {
        /// The bucket URL.
        url: String,
        /// The builder's error.
        #[source]
        source: object_store::Error,
    },
    /// A request failed after the client's bounded retries.
    #[error("cannot {op} {url}: {source}")]
    Request {
        /// What was being done (`read`, `write`, `list`, `delete`).
        op: &'static str,
        /// The object or prefix.
        url: String,
        /// The client's error (it carries the retry count and the server's answer).
        #[source]
        source: object_store::Error,
    },
    /// Another launcher holds the run directory's lease.
    #[error(
        "{url} is held by another launch ({holder}, expires in {expires_in_s} s); \
         wait for it to finish or choose another run.output_dir"
    )]
    LeaseHeld {
        /// The lease object.
        url: String,
        /// Who holds it.
        holder: String,
        /// Seconds until it expires unless renewed.
        expires_in_s: i64,
    },
    /// Writing a downloaded object into the local cache failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Cache {
        /// What was being done.
        op: &'static str,
        /// The local path.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
