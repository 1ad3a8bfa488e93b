//! `${VAR}` and `${VAR:-default}` expansion in string values.
//!
//! Clusters pass paths (scratch disks, dataset mounts) through the environment, so
//! string values may name variables. Expansion runs on the parsed value tree, never
//! on the raw text, so a variable in a comment is ignored and numbers keep their type.
//! A default may itself name variables (`${A:-${HOME}/x}`); `$${` writes a literal `${`.

/// Why a string could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// `${NAME}` with `NAME` unset and no default.
    Unset {
        /// The variable.
        var: String,
    },
    /// `${` without a closing `}`.
    Unterminated,
}

/// Expands `${VAR}` / `${VAR:-default}` in `s`, looking variables up with `lookup`.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = closing_brace(body).ok_or(ExpandError::Unterminated)?;
            let inner = &body[..end];
            let (name, default) = match inner.find(":-") {
                Some(j) => (&inner[..j], Some(&inner[j + 2..])),
                None => (inner, None),
            };
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(&expand(d, lookup)?),
                (None, None) => {
                    return Err(ExpandError::Unset {
                        var: name.to_string(),
                    });
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Index of the `}` closing an opened `${`, allowing nested `${...}` in defaults.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SCRATCH" => Some("/scratch".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        assert_eq!(expand("${SCRATCH}/runs", &env).unwrap(), "/scratch/runs");
        assert_eq!(expand("${NOPE:-/tmp}/x", &env).unwrap(), "/tmp/x");
        assert_eq!(expand("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(
            expand("${NOPE:-${SCRATCH}/c}/m", &env).unwrap(),
            "/scratch/c/m"
        );
        assert_eq!(
            expand("cost $5 and $${SCRATCH}", &env).unwrap(),
            "cost $5 and ${SCRATCH}"
        );
    }

    #[test]
    fn unset_without_default_names_the_variable() {
        assert_eq!(
            expand("a/${NOPE}", &env),
            Err(ExpandError::Unset { var: "NOPE".into() })
        );
        assert_eq!(expand("${SCRATCH", &env), Err(ExpandError::Unterminated));
    }
}
