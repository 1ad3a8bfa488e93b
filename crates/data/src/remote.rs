//! Datasets on a bucket: [`localize`] mirrors every URL of the `data` section into
//! a local cache ([`vigil_store::storage::mirror`]) and returns the section the
//! loader reads, naming the copies.

use std::path::Path;

use vigil_config::DataSection;
use vigil_store::storage::mirror::{MirrorReport, cache_path, mirror_file, mirror_prefix};
use vigil_store::storage::{Location, StorageError};

/// `data` with every URL (`data.train`, `data.val`, `data.image_root`) replaced
/// by its copy below `cache`. Local paths are left as they are. Without
/// `data.image_root`, the image root of a data file on a bucket is its prefix
/// (its "directory"), mirrored too.
pub fn localize(
    data: &DataSection,
    cache: &Path,
) -> Result<(DataSection, MirrorReport), StorageError> {
    let mut out = data.clone();
    let mut report = MirrorReport::default();
    let mut add = |r: MirrorReport| {
        report.fetched += r.fetched;
        report.cached += r.cached;
        report.bytes += r.bytes;
    };
    let train_remote = Location::parse(&data.train)?.remote().cloned();
    match &data.image_root {
        Some(root) => {
            if let Location::Remote(url) = Location::parse(root)? {
                let dir = cache_path(cache, &url);
                add(mirror_prefix(&url, &dir)?);
                out.image_root = Some(dir.display().to_string());
            }
        }
        None => {
            if let Some(url) = &train_remote {
                let parent = url.parent();
                add(mirror_prefix(&parent, &cache_path(cache, &parent))?);
            }
        }
    }
    if let Some(url) = &train_remote {
        let path = cache_path(cache, url);
        add(mirror_file(url, &path)?);
        out.train = path.display().to_string();
    }
    if let Some(val) = &data.val
        && let Location::Remote(url) = Location::parse(val)?
    {
        let path = cache_path(cache, &url);
        add(mirror_file(&url, &path)?);
        out.val = Some(path.display().to_string());
    }
    Ok((out, report))
}
