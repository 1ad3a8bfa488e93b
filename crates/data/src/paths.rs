//! Image paths: relative to the dataset's image root, never outside it.
//!
//! A data file is input from elsewhere; an image path must not read arbitrary
//! files of the training machine. Absolute paths and any `..` component are bad
//! rows outright (even `a/../b.png`, which stays inside: simpler to state and to
//! audit); a path whose real location (after symlinks) is outside the root is a
//! bad row too. A missing file is reported as such.

use std::path::{Component, Path, PathBuf};

use super::error::{BadRow, BadRowKind};

/// The directory image paths are relative to.
#[derive(Debug, Clone)]
pub struct ImageRoot {
    root: PathBuf,
    /// The root with symlinks resolved (`None` when it does not exist: then every
    /// image is reported missing).
    real: Option<PathBuf>,
}

impl ImageRoot {
    /// A root at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let real = std::fs::canonicalize(&root).ok();
        Self { root, real }
    }

    /// The root as given.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Checks `rel` lexically, then on disk; returns the file to open.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, BadRow> {
        let path = Path::new(rel);
        let escape = |why: &str| {
            Err(BadRow::new(
                BadRowKind::ImagePathEscape,
                format!("image path '{rel}' {why}"),
            ))
        };
        if path.is_absolute() || rel.starts_with('/') || rel.starts_with('\\') {
            return escape("is absolute; paths are relative to the image root");
        }
        for c in path.components() {
            match c {
                Component::Normal(_) | Component::CurDir => {}
                Component::ParentDir => return escape("contains '..'"),
                Component::RootDir | Component::Prefix(_) => {
                    return escape("is absolute; paths are relative to the image root");
                }
            }
        }
        let full = self.root.join(path);
        let real = match std::fs::canonicalize(&full) {
            Ok(real) => real,
            Err(_) if full.symlink_metadata().is_ok() => {
                // A dangling symlink: its target is gone (wherever it pointed).
                return Err(BadRow::new(
                    BadRowKind::ImageNotFound,
                    format!("image '{rel}' not found (dangling symlink)"),
                ));
            }
            Err(_) => {
                return Err(BadRow::new(
                    BadRowKind::ImageNotFound,
                    format!("image '{rel}' not found"),
                ));
            }
        };
        match &self.real {
            Some(root) if real.starts_with(root) => {}
            _ => return escape("leaves the image root through a symlink"),
        }
        if !real.is_file() {
            return Err(BadRow::new(
                BadRowKind::ImageNotFound,
                format!("image '{rel}' is not a file"),
            ));
        }
        Ok(full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_absolute_and_parent_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = ImageRoot::new(dir.path());
        for bad in ["/etc/passwd", "../x.png", "img/../../x.png", "a/../b.png"] {
            assert_eq!(
                root.resolve(bad).unwrap_err().kind,
                BadRowKind::ImagePathEscape,
                "{bad}"
            );
        }
        assert_eq!(
            root.resolve("img/none.png").unwrap_err().kind,
            BadRowKind::ImageNotFound
        );
    }

    #[cfg(unix)]
    #[test]
    fn rejects_symlinks_out_of_the_root_and_accepts_inside() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.png"), b"x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("img")).unwrap();
        std::fs::write(dir.path().join("img/ok.png"), b"x").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.png"),
            dir.path().join("img/link.png"),
        )
        .unwrap();
        std::os::unix::fs::symlink(dir.path().join("img/ok.png"), dir.path().join("in.png"))
            .unwrap();
        let root = ImageRoot::new(dir.path());
        assert_eq!(
            root.resolve("img/link.png").unwrap_err().kind,
            BadRowKind::ImagePathEscape
        );
        assert!(root.resolve("img/ok.png").is_ok());
        assert!(root.resolve("./in.png").is_ok());
    }
}
