//! The book's config reference (`docs/src/reference/config.md`) and the config structs
//! must not drift: every key the structs accept is documented there.

use crate::util;

use serde_yaml_ng::Value;

fn keys(prefix: &str, v: &Value, out: &mut Vec<String>) {
    if let Value::Mapping(m) = v {
        for (k, child) in m {
            let k = k.as_str().unwrap();
            let path = if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            };
            out.push(path.clone());
            if path != "model.head.pos_weight" {
                keys(&path, child, out);
            }
        }
    }
}

#[test]
fn every_config_key_is_in_the_books_config_reference() {
    // Resolve a config with every optional section switched on, so all keys appear.
    let out = util::run_with_timeout(
        util::vigil().args([
            "validate",
            "configs/gpu-8x.yaml",
            "--print",
            "--set",
            "model.image.channels=8",
        ]),
        std::time::Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", util::texts(&out).1);
    let tree: Value = serde_yaml_ng::from_str(&util::texts(&out).0).unwrap();
    let mut all = Vec::new();
    keys("", &tree, &mut all);
    let page = "docs/src/reference/config.md";
    let reference = std::fs::read_to_string(util::repo_root().join(page)).unwrap();
    let missing: Vec<_> = all
        .iter()
        .filter(|k| k.contains('.') && !reference.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "keys missing from the config reference {page}: {missing:?}"
    );
    assert!(
        all.len() > 60,
        "expected the whole schema, got {}",
        all.len()
    );
}
