//! Which source a run renders from: the ref that owns the slots it renders
//! (`--source-ref`, else `CODEX_K8S_SOURCE_REF`, else the checked-out
//! branch) and the commit checked out.

use anyhow::{bail, Result};

use crate::render::source::ref_problem;
use crate::render::Source;

/// Why a slot cannot be rendered for writing when the source is unknown.
pub const UNKNOWN: &str = "HEAD is detached, so this run cannot tell which source owns the slot it renders: pass --source-ref REF (e.g. `--source-ref refs/pull/7/head` in a pull request's job) or set CODEX_K8S_SOURCE_REF";

/// The run's source: `explicit` (normalized: `main` is `refs/heads/main`)
/// or the checked-out branch, with `HEAD`'s commit. None outside git, or
/// with a detached `HEAD` and no explicit ref.
pub fn current(repo: Option<&git2::Repository>, explicit: Option<&str>) -> Result<Option<Source>> {
    let explicit = explicit.map(str::trim).filter(|s| !s.is_empty()).map(Source::normalize_ref);
    if let Some(r) = &explicit {
        if let Some(problem) = ref_problem(r) {
            bail!("--source-ref: {problem}");
        }
    }
    let Some(repo) = repo else { return Ok(explicit.map(|git_ref| Source { git_ref, commit: None })) };
    let commit = repo.head().ok().and_then(|h| h.peel_to_commit().ok()).map(|c| c.id().to_string());
    let checked_out = || {
        let head = repo.find_reference("HEAD").ok()?;
        head.symbolic_target().filter(|t| t.starts_with("refs/heads/")).map(str::to_owned)
    };
    Ok(explicit.or_else(checked_out).map(|git_ref| Source { git_ref, commit }))
}
