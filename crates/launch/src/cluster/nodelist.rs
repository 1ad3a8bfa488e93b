//! Slurm's compressed host-list syntax: `gpu[01-04,07],cpu3` → `gpu01 gpu02 gpu03 gpu04
//! gpu07 cpu3`.
//!
//! Slurm hands every job its nodes in this form (`SLURM_JOB_NODELIST`); the first host is
//! where node 0's launcher runs, so it is the rendezvous endpoint. A host may carry several
//! bracket groups (`rack[1-2]-n[01-02]` is their cartesian product, in Slurm's order), and
//! zero padding is kept from the range's start (`[008-011]` → `008 009 010 011`).

use super::ClusterError;

/// Expands a Slurm host list into host names, in order.
pub fn expand(list: &str) -> Result<Vec<String>, ClusterError> {
    let bad = |reason: &str| ClusterError::Nodelist {
        list: list.to_string(),
        reason: reason.to_string(),
    };
    let mut hosts = Vec::new();
    for pattern in split_top_level(list).map_err(|r| bad(&r))? {
        if pattern.is_empty() {
            return Err(bad("empty host name"));
        }
        hosts.extend(expand_host(&pattern).map_err(|r| bad(&r))?);
    }
    if hosts.is_empty() {
        return Err(bad("no hosts"));
    }
    Ok(hosts)
}

/// Splits at commas outside brackets.
fn split_top_level(list: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for c in list.trim().chars() {
        match c {
            '[' => {
                if depth > 0 {
                    return Err("nested '['".into());
                }
                depth += 1;
                cur.push(c);
            }
            ']' => {
                if depth == 0 {
                    return Err("']' without '['".into());
                }
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            c if c.is_whitespace() => return Err("whitespace in host list".into()),
            c => cur.push(c),
        }
    }
    if depth != 0 {
        return Err("unclosed '['".into());
    }
    parts.push(cur);
    Ok(parts)
}

/// Expands one host pattern with zero or more bracket groups.
fn expand_host(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else {
        return Ok(vec![pattern.to_string()]);
    };
    let close = open + pattern[open..].find(']').ok_or("unclosed '['")?;
    let prefix = &pattern[..open];
    let suffixes = expand_host(&pattern[close + 1..])?;
    let mut out = Vec::new();
    for item in expand_ranges(&pattern[open + 1..close])? {
        for s in &suffixes {
            out.push(format!("{prefix}{item}{s}"));
        }
    }
    Ok(out)
}

/// Expands `01-04,07` into `01 02 03 04 07`.
fn expand_ranges(body: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for part in body.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(lo) || !digits(hi) {
            return Err(format!("bad range '{part}' (expected N or N-M)"));
        }
        let a: u64 = lo
            .parse()
            .map_err(|_| format!("number too large in '{part}'"))?;
        let b: u64 = hi
            .parse()
            .map_err(|_| format!("number too large in '{part}'"))?;
        if b < a {
            return Err(format!("range '{part}' runs backwards"));
        }
        if b - a > 100_000 {
            return Err(format!("range '{part}' is implausibly large"));
        }
        let width = lo.len();
        for n in a..=b {
            out.push(format!("{n:0width$}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(list: &str) -> Vec<String> {
        expand(list).unwrap_or_else(|e| panic!("{list}: {e}"))
    }

    #[test]
    fn plain_hosts_and_ranges() {
        assert_eq!(ok("node1"), ["node1"]);
        assert_eq!(
            ok("gpu[01-04,07],cpu3"),
            ["gpu01", "gpu02", "gpu03", "gpu04", "gpu07", "cpu3"]
        );
        assert_eq!(ok("a,b,c"), ["a", "b", "c"]);
    }

    #[test]
    fn zero_padding_follows_the_start() {
        assert_eq!(ok("n[008-011]"), ["n008", "n009", "n010", "n011"]);
        assert_eq!(ok("n[9-10]"), ["n9", "n10"]);
    }

    #[test]
    fn several_groups_are_a_cartesian_product() {
        assert_eq!(
            ok("rack[1-2]-n[01-02]"),
            ["rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"]
        );
        assert_eq!(ok("x[3]y"), ["x3y"]);
        assert_eq!(ok("gpu[1,3]-ib"), ["gpu1-ib", "gpu3-ib"]);
    }

    #[test]
    fn mistakes_are_errors_naming_the_list() {
        for bad in [
            "",
            "gpu[01-04",
            "gpu01-04]",
            "gpu[4-1]",
            "gpu[a-b]",
            "a,,b",
            "g[[1]]",
        ] {
            let err = expand(bad).expect_err(bad).to_string();
            assert!(err.contains(&format!("'{bad}'")), "{err}");
        }
    }
}
