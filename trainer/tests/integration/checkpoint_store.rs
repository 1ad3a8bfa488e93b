//! The storage interface carries object-store semantics too: an in-memory store
//! that, like S3, cannot rename — it uploads every file, then the manifest last,
//! and lists only entries whose manifest exists. Checkpoints, resume and model
//! versions work on it unchanged, and an upload that dies half-way is invisible.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil_store::checkpoint::{
    CheckpointDir, CheckpointMeta, Files, IfExists, MANIFEST_FILE, Manifest, Store, StoreError,
    load_checkpoint_dir,
};
use vigil_store::checkpoint::{FileDigest, step_entry};
use vigil_store::repo::{EXPORT_FILES, ModelRepo};

/// Objects by key `entry/file`; `fail_after` uploads, the writer "dies".
#[derive(Debug, Default)]
struct ObjectStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    fail_after: Mutex<Option<usize>>,
}

impl ObjectStore {
    fn put(&self, key: String, bytes: Vec<u8>) -> Result<(), StoreError> {
        let mut budget = self.fail_after.lock().unwrap();
        if let Some(n) = budget.as_mut() {
            if *n == 0 {
                return Err(StoreError::io(
                    "upload",
                    key,
                    std::io::Error::other("connection reset"),
                ));
            }
            *n -= 1;
        }
        self.objects.lock().unwrap().insert(key, bytes);
        Ok(())
    }
}

impl Store for ObjectStore {
    fn location(&self, entry: &str) -> String {
        format!("mem://bucket/{entry}")
    }

    fn publish(
        &self,
        entry: &str,
        files: &[(String, Vec<u8>)],
        meta: serde_json::Value,
        if_exists: IfExists,
    ) -> Result<Manifest, StoreError> {
        if if_exists == IfExists::Fail && self.has_entry(entry)? {
            return Err(StoreError::Exists {
                location: self.location(entry),
            });
        }
        // Replacing: hide the old entry first (its manifest goes first).
        self.objects
            .lock()
            .unwrap()
            .remove(&format!("{entry}/{MANIFEST_FILE}"));
        for (name, bytes) in files {
            self.put(format!("{entry}/{name}"), bytes.clone())?;
        }
        let manifest = Manifest::new(
            files.iter().map(|(n, b)| (n.as_str(), FileDigest::of(b))),
            meta,
        );
        self.put(format!("{entry}/{MANIFEST_FILE}"), manifest.to_json())?;
        Ok(manifest)
    }

    fn entries(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .keys()
            .filter_map(|k| k.strip_suffix(&format!("/{MANIFEST_FILE}")))
            .map(String::from)
            .collect())
    }

    fn has_entry(&self, entry: &str) -> Result<bool, StoreError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .contains_key(&format!("{entry}/{MANIFEST_FILE}")))
    }

    fn open(&self, entry: &str, file: &str) -> Result<Option<Box<dyn Read + Send>>, StoreError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(&format!("{entry}/{file}"))
            .map(|b| Box::new(std::io::Cursor::new(b.clone())) as Box<dyn Read + Send>))
    }

    fn delete(&self, entry: &str) -> Result<(), StoreError> {
        let mut objects = self.objects.lock().unwrap();
        objects.remove(&format!("{entry}/{MANIFEST_FILE}"));
        objects.retain(|k, _| !k.starts_with(&format!("{entry}/")));
        Ok(())
    }

    fn put_pointer(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.put(name.to_string(), bytes.to_vec())
    }

    fn get_pointer(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.objects.lock().unwrap().get(name).cloned())
    }

    fn clean_staging(&self, _older_than: Duration) -> Result<Vec<String>, StoreError> {
        // Orphaned uploads (files without a manifest) are garbage.
        let mut objects = self.objects.lock().unwrap();
        let live: Vec<String> = objects
            .keys()
            .filter_map(|k| k.strip_suffix(&format!("/{MANIFEST_FILE}")))
            .map(|e| format!("{e}/"))
            .collect();
        let orphans: Vec<String> = objects
            .keys()
            .filter(|k| k.contains('/') && !live.iter().any(|l| k.starts_with(l)))
            .cloned()
            .collect();
        for k in &orphans {
            objects.remove(k);
        }
        Ok(orphans)
    }
}

fn meta() -> CheckpointMeta {
    CheckpointMeta {
        step: 0,
        config_sha256: "c0ffee".into(),
        metrics: BTreeMap::new(),
        extra: serde_json::Value::Null,
    }
}

fn files(step: u64) -> Files {
    vec![
        ("model.mpk".into(), vec![step as u8; 64]),
        ("optim.mpk".into(), vec![step as u8 + 1; 128]),
    ]
}

#[test]
fn checkpoints_on_an_object_store_survive_a_dead_upload() {
    let store = Arc::new(ObjectStore::default());
    let dir = CheckpointDir::with_store(store.clone()).unwrap();
    dir.save(1, &files(1), meta()).unwrap();
    // The writer dies after uploading one file of step 2.
    *store.fail_after.lock().unwrap() = Some(1);
    assert!(dir.save(2, &files(2), meta()).is_err());
    *store.fail_after.lock().unwrap() = None;

    assert_eq!(
        dir.steps().unwrap(),
        vec![1],
        "a manifest-less upload is invisible"
    );
    let found = dir.resume().unwrap().unwrap();
    assert_eq!((found.step, found.warnings.len()), (1, 0));
    assert_eq!(found.checkpoint.files["optim.mpk"], vec![2u8; 128]);

    // A restarted writer removes the orphan and saves step 2 properly.
    let restarted = CheckpointDir::with_store(store.clone()).unwrap();
    assert!(store.open(&step_entry(2), "model.mpk").unwrap().is_none());
    restarted.save(2, &files(2), meta()).unwrap();
    assert_eq!(restarted.resume().unwrap().unwrap().step, 2);
}

#[test]
fn model_versions_on_an_object_store() {
    let repo = ModelRepo::with_store(Arc::new(ObjectStore::default()));
    let export: Files = EXPORT_FILES
        .iter()
        .map(|n| (n.to_string(), n.as_bytes().to_vec()))
        .collect();
    for _ in 0..4 {
        repo.publish(&export, serde_json::Value::Null).unwrap();
    }
    assert_eq!(repo.prune(2).unwrap(), vec![1, 2]);
    let newest = repo.newest_complete().unwrap().unwrap();
    assert_eq!(newest.version.version, 4);
    assert_eq!(newest.version.location, "mem://bucket/4");
}

#[test]
fn a_first_save_that_dies_leaves_a_fresh_start() {
    let run = tempfile::tempdir().unwrap();
    let store = Arc::new(ObjectStore::default());
    *store.fail_after.lock().unwrap() = Some(1);
    let dir = CheckpointDir::with_store(store.clone()).unwrap();
    assert!(dir.save(1, &files(1), meta()).is_err());
    assert!(dir.resume().unwrap().is_none());

    // And `train.resume: <path>` reads a local checkpoint directory directly.
    let local = CheckpointDir::new(run.path()).unwrap();
    local.save(7, &files(7), meta()).unwrap();
    let loaded = load_checkpoint_dir(&run.path().join("checkpoints/step-7").into()).unwrap();
    assert_eq!(
        (loaded.step, loaded.meta.config_sha256.as_str()),
        (7, "c0ffee")
    );
}
