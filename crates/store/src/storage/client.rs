//! [`Bucket`]: a synchronous handle on one prefix of one bucket, around
//! `object_store`'s async client.
//!
//! The training loop, resume and the exporters are synchronous; the client is
//! async. One small multi-thread tokio runtime per process (two workers, made on
//! first use) runs every request; a call spawns its future there and waits on a
//! channel, so it works from plain threads and from inside another runtime
//! (`vigil serve`) alike.
//!
//! Credentials, region and endpoint come only from the environment, as
//! `object_store`'s `from_env` builders read them (`AWS_ACCESS_KEY_ID`,
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, web identity / IRSA, `GOOGLE_*`,
//! `AZURE_*`). Requests are bounded: `VIGIL_STORAGE_TIMEOUT_S` per request
//! (default 30), `VIGIL_STORAGE_RETRIES` retries (default 3) within
//! `VIGIL_STORAGE_RETRY_TIMEOUT_S` (default 60) — so a bucket that is down, refuses
//! or never answers gives an error naming the URL instead of a hang.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{
    ClientConfigKey, GetOptions, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions,
    PutPayload, RetryConfig, WriteMultipart,
};

use super::error::StorageError;
use super::url::RemoteUrl;

/// Objects at least this large are uploaded in parts (S3's minimum part is 5 MiB).
pub const MULTIPART_THRESHOLD: usize = 16 << 20;
/// Size of one uploaded part.
const PART_SIZE: usize = 8 << 20;
/// Parts in flight per upload.
const PART_CONCURRENCY: usize = 4;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        // reqwest's rustls is built without a provider (no aws-lc-rs compile);
        // ring's is the process default. Another crate may have set one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vigil-storage")
            .enable_all()
            .build()
            .expect("a tokio runtime for object storage")
    })
}

/// Runs `fut` on the storage runtime and waits for it.
pub fn block_on<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("the storage runtime dropped a request")
}

fn env_secs(name: &str, default: f64) -> Duration {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs_f64(default), Duration::from_secs_f64)
}

/// The retry bounds every client gets (see the module docs).
pub fn retry_config() -> RetryConfig {
    let max_retries = std::env::var("VIGIL_STORAGE_RETRIES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(3);
    RetryConfig {
        max_retries,
        retry_timeout: env_secs("VIGIL_STORAGE_RETRY_TIMEOUT_S", 60.0),
        ..RetryConfig::default()
    }
}

fn humantime(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// Builds the client of `url`'s bucket from the environment.
fn build(url: &RemoteUrl) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let timeout = humantime(env_secs("VIGIL_STORAGE_TIMEOUT_S", 30.0));
    let connect = humantime(env_secs("VIGIL_STORAGE_CONNECT_TIMEOUT_S", 5.0));
    let bucket = url.bucket_url();
    let config = |source| StorageError::Config {
        url: url.to_string(),
        source,
    };
    runtime();
    let store: Arc<dyn ObjectStore> = match url.scheme.as_str() {
        "s3" => {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey as K};
            let mut b = AmazonS3Builder::from_env().with_url(bucket);
            if std::env::var_os("AWS_TIMEOUT").is_none() {
                b = b.with_config(K::Client(ClientConfigKey::Timeout), timeout);
            }
            if std::env::var_os("AWS_CONNECT_TIMEOUT").is_none() {
                b = b.with_config(K::Client(ClientConfigKey::ConnectTimeout), connect);
            }
            Arc::new(b.with_retry(retry_config()).build().map_err(config)?)
        }
        "gs" => {
            use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey as K};
            let b = GoogleCloudStorageBuilder::from_env()
                .with_url(bucket)
                .with_config(K::Client(ClientConfigKey::Timeout), timeout)
                .with_config(K::Client(ClientConfigKey::ConnectTimeout), connect);
            Arc::new(b.with_retry(retry_config()).build().map_err(config)?)
        }
        "az" => {
            use object_store::azure::{AzureConfigKey as K, MicrosoftAzureBuilder};
            let b = MicrosoftAzureBuilder::from_env()
                .with_url(bucket)
                .with_config(K::Client(ClientConfigKey::Timeout), timeout)
                .with_config(K::Client(ClientConfigKey::ConnectTimeout), connect);
            Arc::new(b.with_retry(retry_config()).build().map_err(config)?)
        }
        other => {
            return Err(StorageError::BadUrl {
                url: url.to_string(),
                reason: format!("unsupported scheme {other:?}"),
            });
        }
    };
    Ok(store)
}

/// One prefix of one bucket. Cheap to clone; clones share the client.
#[derive(Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    url: RemoteUrl,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bucket({})", self.url)
    }
}

impl Bucket {
    /// A handle on `url` with a client configured from the environment. Makes no
    /// request (a bucket that is down fails at the first read or write).
    pub fn open(url: &RemoteUrl) -> Result<Self, StorageError> {
        Ok(Self {
            store: build(url)?,
            url: url.clone(),
        })
    }

    /// The prefix `sub` below this one, sharing the client.
    pub fn child(&self, sub: &str) -> Result<Self, StorageError> {
        Ok(Self {
            store: self.store.clone(),
            url: self.url.join(sub)?,
        })
    }

    /// This prefix's URL.
    pub fn url(&self) -> &RemoteUrl {
        &self.url
    }

    /// The URL of `key` below this prefix, for messages.
    pub fn url_of(&self, key: &str) -> String {
        if key.is_empty() {
            self.url.to_string()
        } else {
            format!("{}/{key}", self.url)
        }
    }

    fn key(&self, key: &str) -> Result<Key, StorageError> {
        let full = self.url.join(key)?;
        Key::parse(&full.prefix).map_err(|e| StorageError::BadKey {
            url: self.url.to_string(),
            key: key.to_string(),
            reason: e.to_string(),
        })
    }

    fn request(&self, op: &'static str, key: &str, source: object_store::Error) -> StorageError {
        StorageError::Request {
            op,
            url: self.url_of(key),
            source,
        }
    }

    /// The bytes of `key`; `None` if it does not exist.
    pub fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        let path = self.key(key)?;
        let store = self.store.clone();
        let res = block_on(async move {
            match store.get_opts(&path, GetOptions::new()).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            }
        });
        match res {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.request("read", key, e)),
        }
    }

    /// The bytes and metadata (ETag) of `key`; `None` if it does not exist.
    pub fn get_with_meta(&self, key: &str) -> Result<Option<(Bytes, ObjectMeta)>, StorageError> {
        let path = self.key(key)?;
        let store = self.store.clone();
        let res = block_on(async move {
            let r = store.get_opts(&path, GetOptions::new()).await?;
            let meta = r.meta.clone();
            Ok::<_, object_store::Error>((r.bytes().await?, meta))
        });
        match res {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.request("read", key, e)),
        }
    }

    /// Replaces `key` only if its ETag is still `etag` (`If-Match`); the new ETag,
    /// or `None` when another writer changed it first.
    pub fn put_if_match(
        &self,
        key: &str,
        bytes: impl Into<Bytes>,
        etag: &str,
    ) -> Result<Option<String>, StorageError> {
        let bytes: Bytes = bytes.into();
        let path = self.key(key)?;
        let store = self.store.clone();
        let version = object_store::UpdateVersion {
            e_tag: Some(etag.to_string()),
            version: None,
        };
        let res = block_on(async move {
            let opts = PutOptions::from(PutMode::Update(version));
            store.put_opts(&path, PutPayload::from(bytes), opts).await
        });
        match res {
            Ok(r) => Ok(r.e_tag),
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => Ok(None),
            Err(e) => Err(self.request("replace", key, e)),
        }
    }

    /// The metadata of `key`; `None` if it does not exist.
    pub fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        let path = self.key(key)?;
        let store = self.store.clone();
        let head = GetOptions::new().with_head(true);
        match block_on(async move { store.get_opts(&path, head).await.map(|r| r.meta) }) {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.request("read", key, e)),
        }
    }

    /// Writes `key` (replacing it): one PUT, or a multipart upload from
    /// [`MULTIPART_THRESHOLD`] on, aborted if any part fails.
    pub fn put(&self, key: &str, bytes: impl Into<Bytes>) -> Result<(), StorageError> {
        let bytes: Bytes = bytes.into();
        let path = self.key(key)?;
        let store = self.store.clone();
        let res = block_on(async move {
            if bytes.len() < MULTIPART_THRESHOLD {
                let opts = PutOptions::default();
                return store
                    .put_opts(&path, PutPayload::from(bytes), opts)
                    .await
                    .map(|_| ());
            }
            let upload = store
                .put_multipart_opts(&path, PutMultipartOptions::default())
                .await?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut rest = bytes;
            while !rest.is_empty() {
                if let Err(e) = w.wait_for_capacity(PART_CONCURRENCY).await {
                    let _ = w.abort().await;
                    return Err(e);
                }
                let n = rest.len().min(PART_SIZE);
                w.put(rest.split_to(n));
            }
            // `finish` aborts the upload itself when completing fails.
            w.finish().await.map(|_| ())
        });
        res.map_err(|e| self.request("write", key, e))
    }

    /// Creates `key` only if it does not exist (`If-None-Match: *`); `false` when
    /// another writer created it first.
    pub fn create(&self, key: &str, bytes: impl Into<Bytes>) -> Result<bool, StorageError> {
        let bytes: Bytes = bytes.into();
        let path = self.key(key)?;
        let store = self.store.clone();
        let res = block_on(async move {
            let opts = PutOptions::from(PutMode::Create);
            store.put_opts(&path, PutPayload::from(bytes), opts).await
        });
        match res {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.request("create", key, e)),
        }
    }

    /// Deletes `key`; deleting an absent key succeeds.
    pub fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.key(key)?;
        let store = self.store.clone();
        let res = block_on(async move {
            let one = futures::stream::once(async move { Ok(path) }).boxed();
            store.delete_stream(one).try_next().await.map(|_| ())
        });
        match res {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.request("delete", key, e)),
        }
    }

    /// One level below `key`: the names of sub-prefixes and of objects (relative
    /// to `key`), each sorted.
    pub fn list_level(&self, key: &str) -> Result<(Vec<String>, Vec<ObjectMeta>), StorageError> {
        let path = self.key(key)?;
        let store = self.store.clone();
        let arg = (!path.as_ref().is_empty()).then_some(path.clone());
        let res = block_on(async move { store.list_with_delimiter(arg.as_ref()).await })
            .map_err(|e| self.request("list", key, e))?;
        let mut dirs: Vec<String> = res
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        dirs.sort();
        Ok((dirs, res.objects))
    }

    /// Every object below `key` (recursively), with keys relative to this
    /// bucket handle's prefix.
    pub fn list_all(&self, key: &str) -> Result<Vec<(String, ObjectMeta)>, StorageError> {
        let path = self.key(key)?;
        let store = self.store.clone();
        let arg = (!path.as_ref().is_empty()).then_some(path.clone());
        let metas: Vec<ObjectMeta> =
            block_on(async move { store.list(arg.as_ref()).try_collect().await })
                .map_err(|e| self.request("list", key, e))?;
        let root = self.key("")?;
        let strip = |p: &Key| -> String {
            let full = p.as_ref();
            let r = root.as_ref();
            if r.is_empty() {
                full.to_string()
            } else {
                full.strip_prefix(r)
                    .map(|s| s.trim_start_matches('/').to_string())
                    .unwrap_or_else(|| full.to_string())
            }
        };
        Ok(metas.into_iter().map(|m| (strip(&m.location), m)).collect())
    }
}
