//! Vigil's hyper-parameters for the HParams dashboard: the resolved config
//! flattened to dotted keys (`optim.lr`), the same names `--set` takes, so a
//! reviewer can sort runs by any key they overrode.
//!
//! This is the one part of the hparams support that knows a config format (YAML
//! through serde), which is why it stays here and `vigil-tensorboard` takes a plain
//! `BTreeMap<String, HParamValue>`.

use std::collections::BTreeMap;

use serde::Serialize;
use vigil_tensorboard::HParamValue;

/// Flattens a serializable config into dotted keys: nested maps become `a.b.c`,
/// lists and non-string keys their YAML text, nulls are left out.
pub fn flatten_hparams<T: Serialize>(
    config: &T,
) -> Result<BTreeMap<String, HParamValue>, serde_yaml_ng::Error> {
    let value = serde_yaml_ng::to_value(config)?;
    let mut out = BTreeMap::new();
    flatten_into(&value, String::new(), &mut out)?;
    Ok(out)
}

fn flatten_into(
    value: &serde_yaml_ng::Value,
    prefix: String,
    out: &mut BTreeMap<String, HParamValue>,
) -> Result<(), serde_yaml_ng::Error> {
    use serde_yaml_ng::Value as Y;
    match value {
        Y::Null => {}
        Y::Bool(b) => {
            out.insert(prefix, HParamValue::Bool(*b));
        }
        Y::Number(n) => {
            out.insert(prefix, HParamValue::Number(n.as_f64().unwrap_or(f64::NAN)));
        }
        Y::String(s) => {
            out.insert(prefix, HParamValue::Text(s.clone()));
        }
        Y::Mapping(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s.clone(),
                    other => serde_yaml_ng::to_string(other)?.trim_end().to_owned(),
                };
                let key = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten_into(v, key, out)?;
            }
        }
        Y::Tagged(t) => flatten_into(&t.value, prefix, out)?,
        other => {
            // Lists and empty maps: one column with their flow-style text.
            let text = serde_json::to_string(other).unwrap_or_default();
            out.insert(prefix, HParamValue::Text(text));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Inner {
        lr: f64,
        steps: Option<u64>,
        betas: Vec<f64>,
    }
    #[derive(Serialize)]
    struct Cfg {
        name: String,
        optim: Inner,
        amp: bool,
    }

    #[test]
    fn flatten_gives_dotted_keys_and_skips_nulls() {
        let cfg = Cfg {
            name: "r".into(),
            optim: Inner {
                lr: 2e-5,
                steps: None,
                betas: vec![0.9, 0.999],
            },
            amp: false,
        };
        let flat = flatten_hparams(&cfg).unwrap();
        assert_eq!(flat["name"], HParamValue::Text("r".into()));
        assert_eq!(flat["optim.lr"], HParamValue::Number(2e-5));
        assert_eq!(flat["optim.betas"], HParamValue::Text("[0.9,0.999]".into()));
        assert_eq!(flat["amp"], HParamValue::Bool(false));
        assert!(!flat.contains_key("optim.steps"));
    }
}
