//! Where a path-or-URL points: a local path (plain, or `file://`) or an object-store
//! prefix (`s3://`, `gs://`, `az://`). Pure parsing, no I/O.
//!
//! Everything that accepts a path for data, run output or a model repository goes
//! through [`Location::parse`], so a local path behaves exactly as before and a URL
//! with a scheme we do not know is an error instead of a local directory named
//! `s3:`.

use std::path::PathBuf;

use super::error::StorageError;

/// Object-store schemes Vigil reads and writes (what `object_store` builds from
/// the environment: `AWS_*`, `GOOGLE_*`, `AZURE_*`).
pub const SCHEMES: [&str; 3] = ["s3", "gs", "az"];

/// A parsed path-or-URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A path on this machine (a plain path, or the path of a `file://` URL).
    Local(PathBuf),
    /// A prefix in a bucket.
    Remote(RemoteUrl),
}

/// `scheme://bucket/prefix` with the prefix normalised (no leading, trailing or
/// doubled `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteUrl {
    /// `s3`, `gs` or `az`.
    pub scheme: String,
    /// Bucket (S3, GCS) or container (Azure).
    pub bucket: String,
    /// Key prefix inside the bucket; empty for the bucket's root.
    pub prefix: String,
}

impl std::fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "{}://{}", self.scheme, self.bucket)
        } else {
            write!(f, "{}://{}/{}", self.scheme, self.bucket, self.prefix)
        }
    }
}

impl RemoteUrl {
    /// The URL as its parent prefix and its last segment: `s3://b/d/t.jsonl` is
    /// `s3://b/d` and `t.jsonl`.
    pub fn split_last(&self) -> (RemoteUrl, String) {
        let name = self
            .prefix
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        (self.parent(), name)
    }

    /// The parent prefix, the URL's "directory": `s3://b/d/t.jsonl` is `s3://b/d`.
    pub fn parent(&self) -> RemoteUrl {
        let prefix = self
            .prefix
            .rsplit_once('/')
            .map_or(String::new(), |(p, _)| p.to_string());
        RemoteUrl {
            prefix,
            ..self.clone()
        }
    }

    /// The URL of the bucket alone (what `object_store`'s builders take).
    pub fn bucket_url(&self) -> String {
        format!("{}://{}", self.scheme, self.bucket)
    }

    /// The prefix `key` below this one (`key` checked by [`check_key`]).
    pub fn join(&self, key: &str) -> Result<RemoteUrl, StorageError> {
        check_key(key).map_err(|reason| StorageError::BadKey {
            url: self.to_string(),
            key: key.to_string(),
            reason,
        })?;
        let key = key.trim_matches('/');
        let prefix = match (self.prefix.is_empty(), key.is_empty()) {
            (_, true) => self.prefix.clone(),
            (true, false) => key.to_string(),
            (false, false) => format!("{}/{key}", self.prefix),
        };
        Ok(RemoteUrl {
            prefix,
            ..self.clone()
        })
    }
}

/// Whether `s` names a URL (`scheme://…`) rather than a plain path.
pub fn is_url(s: &str) -> bool {
    scheme_of(s).is_some()
}

fn scheme_of(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let ok = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then_some(scheme)
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Remote(u) => write!(f, "{u}"),
        }
    }
}

impl std::str::FromStr for Location {
    type Err = StorageError;

    /// [`Location::parse`]: what clap's value parsers call for `--model`,
    /// `--model-repository` and `--repository`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Location::parse(s)
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Self {
        Location::Local(path)
    }
}

impl From<&std::path::Path> for Location {
    fn from(path: &std::path::Path) -> Self {
        Location::Local(path.to_path_buf())
    }
}

impl Location {
    /// Parses a config value or command-line argument.
    pub fn parse(s: &str) -> Result<Location, StorageError> {
        let bad = |reason: &str| StorageError::BadUrl {
            url: s.to_string(),
            reason: reason.to_string(),
        };
        let Some(scheme) = scheme_of(s) else {
            return Ok(Location::Local(PathBuf::from(s)));
        };
        let rest = &s[scheme.len() + 3..];
        let scheme = scheme.to_ascii_lowercase();
        if scheme == "file" {
            // file:///abs/path (empty host) or file://localhost/abs/path.
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(bad("a file:// URL needs an absolute path (file:///data/x)"));
            }
            return Ok(Location::Local(PathBuf::from(path)));
        }
        if !SCHEMES.contains(&scheme.as_str()) {
            return Err(bad(
                "unsupported scheme (use s3://, gs://, az://, file:// or a path)",
            ));
        }
        if rest.contains(['?', '#']) {
            return Err(bad(
                "query strings are not read; credentials and endpoint come from the environment",
            ));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket name"));
        }
        if bucket.contains('@') {
            return Err(bad(
                "credentials in the URL are not accepted; set them in the environment",
            ));
        }
        check_key(prefix).map_err(|r| bad(&r))?;
        Ok(Location::Remote(RemoteUrl {
            scheme,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        }))
    }

    /// `name` below this location: a path joined, or a key appended to the prefix
    /// (checked like every key).
    pub fn join(&self, name: &str) -> Result<Location, StorageError> {
        Ok(match self {
            Location::Local(p) => Location::Local(p.join(name)),
            Location::Remote(u) => Location::Remote(u.join(name)?),
        })
    }

    /// The remote URL, if this is one.
    pub fn remote(&self) -> Option<&RemoteUrl> {
        match self {
            Location::Remote(u) => Some(u),
            Location::Local(_) => None,
        }
    }
}

/// Checks a key (or key prefix) relative to a root prefix: the path-escape rules
/// of local data paths applied to keys. No `.` or `..` segment, no empty segment
/// inside, no backslash or NUL; leading/trailing `/` are ignored.
pub fn check_key(key: &str) -> Result<(), String> {
    let key = key.trim_matches('/');
    if key.is_empty() {
        return Ok(());
    }
    if key.contains(['\\', '\0']) {
        return Err("keys may not contain a backslash or NUL".into());
    }
    for seg in key.split('/') {
        match seg {
            "" => return Err("keys may not contain an empty segment (//)".into()),
            "." | ".." => return Err("keys may not contain . or .. segments".into()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(s: &str) -> RemoteUrl {
        match Location::parse(s).unwrap() {
            Location::Remote(u) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn plain_paths_are_unchanged() {
        for p in [
            "checkpoints/a",
            "/abs/x",
            "./rel",
            "",
            "a:b",
            "C:\\x",
            "s3:",
        ] {
            assert_eq!(
                Location::parse(p).unwrap(),
                Location::Local(p.into()),
                "{p}"
            );
        }
    }

    #[test]
    fn file_urls_are_local_paths() {
        assert_eq!(
            Location::parse("file:///data/x").unwrap(),
            Location::Local("/data/x".into())
        );
        assert_eq!(
            Location::parse("file://localhost/data").unwrap(),
            Location::Local("/data".into())
        );
        assert!(Location::parse("file://rel/x").is_err());
    }

    #[test]
    fn bucket_urls_split_into_bucket_and_prefix() {
        let u = remote("s3://bkt/runs/a/");
        assert_eq!((u.scheme.as_str(), u.bucket.as_str()), ("s3", "bkt"));
        assert_eq!(u.prefix, "runs/a");
        assert_eq!(u.to_string(), "s3://bkt/runs/a");
        assert_eq!(u.bucket_url(), "s3://bkt");
        assert_eq!(remote("gs://b").prefix, "");
        assert_eq!(remote("gs://b").to_string(), "gs://b");
        assert_eq!(remote("AZ://c/p").scheme, "az");
    }

    #[test]
    fn bad_urls_are_errors_naming_the_url() {
        for bad in [
            "s4://b/x",
            "http://h/x",
            "s3://",
            "s3:///x",
            "s3://b/../x",
            "s3://b/a//c",
            "s3://b/x?endpoint=y",
            "s3://key:secret@b/x",
        ] {
            let e = Location::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn keys_may_not_escape_the_prefix() {
        for ok in ["a", "a/b.jpg", "/a/b/", "img/x y.png"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in ["..", "a/../b", "./a", "a//b", "a\\b", "a\0"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        let u = remote("s3://b/runs");
        assert_eq!(
            u.join("checkpoints").unwrap().to_string(),
            "s3://b/runs/checkpoints"
        );
        assert!(u.join("../other").is_err());
        assert_eq!(remote("s3://b").join("x").unwrap().prefix, "x");
    }
}
