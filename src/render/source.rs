//! Where a slot was rendered from: the source ref (a pull request's
//! `refs/pull/7/head`, a branch's `refs/heads/main`) and commit. A slot is
//! owned by its source ref: `render --all` from another ref leaves it alone.

use serde::{Deserialize, Serialize};

/// The source a target was rendered from, recorded in its `target.json`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Source {
    /// The full source ref, e.g. `refs/pull/7/head` or `refs/heads/main`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The source commit (40 or 64 hex digits), when the source is a commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl Source {
    /// A source ref as given (`--source-ref`, `CODEX_K8S_SOURCE_REF`): a
    /// short branch name `main` means `refs/heads/main`.
    pub fn normalize_ref(given: &str) -> String {
        let given = given.trim();
        if given.starts_with("refs/") {
            given.to_owned()
        } else {
            format!("refs/heads/{given}")
        }
    }

    /// Checks a source read back from a `target.json` (untrusted: a pull
    /// request can edit it) or given on the command line.
    pub fn check(&self) -> Result<(), String> {
        ref_problem(&self.git_ref).map_or(Ok(()), Err)?;
        if let Some(c) = &self.commit {
            if !matches!(c.len(), 40 | 64) || !c.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                return Err(format!("invalid source commit `{}`: give 40 (or 64) lowercase hex digits", excerpt(c)));
            }
        }
        Ok(())
    }

    /// Whether `other_ref` (normalized) is this source's ref.
    pub fn is_ref(&self, other_ref: &str) -> bool {
        self.git_ref == other_ref
    }
}

/// Why `r` is not a source ref git would accept, if it is not.
pub fn ref_problem(r: &str) -> Option<String> {
    let bad_char = r.bytes().any(|b| !(b.is_ascii_alphanumeric() || b"/._-+".contains(&b)));
    let bad = !r.starts_with("refs/")
        || r.len() > 255
        || bad_char
        || r.contains("..")
        || r.contains("//")
        || r.ends_with('/')
        || r.ends_with(".lock")
        || r.split('/').any(|c| c.is_empty() || c.starts_with('.') || c.starts_with('-'));
    bad.then(|| {
        format!(
            "invalid source ref `{}`: give a git ref such as `refs/pull/7/head` or `refs/heads/main` (letters, digits, `/._-+`)",
            excerpt(r)
        )
    })
}

fn excerpt(s: &str) -> String {
    let cut: String = s.chars().filter(|c| !c.is_control()).take(80).collect();
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_are_normalized_and_hostile_ones_refused() {
        assert_eq!(Source::normalize_ref("main"), "refs/heads/main");
        assert_eq!(Source::normalize_ref("refs/pull/7/head"), "refs/pull/7/head");
        for good in ["refs/heads/main", "refs/pull/7/head", "refs/heads/feat/x-1.2"] {
            assert_eq!(ref_problem(good), None, "{good}");
        }
        for bad in
            ["main", "refs/heads/../x", "refs/heads/a b", "refs/heads/x\n", "refs//x", "refs/heads/.x", "refs/x/"]
        {
            assert!(ref_problem(bad).is_some(), "{bad:?} accepted");
        }
        let s = Source { git_ref: "refs/heads/main".into(), commit: Some("A".repeat(40)) };
        assert!(s.check().is_err(), "uppercase commit accepted");
        let s = Source { git_ref: "refs/heads/main".into(), commit: Some("a".repeat(40)) };
        assert!(s.check().is_ok());
    }
}
