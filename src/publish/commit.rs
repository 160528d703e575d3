//! Committing and pushing a run's changes: the git preconditions checked
//! before anything is written, the commit request with its trailers, the
//! commit on the checked-out branch or on a branch from memory, the push
//! with fetch-rebuild-retry, `maxSlots` on every rebuilt tip, and the undo
//! of a failed run.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::state::{GitTree, TreeState};
use crate::git;
use crate::render::{RenderedTarget, Source};
use crate::tree;

/// Commits `req` on the checked-out branch or on `branch_ref`, and pushes to
/// `push` when given, keeping the work tree's rendered files and index in step.
pub fn commit_or_push(
    repo: &git2::Repository,
    req: &git::CommitRequest,
    branch_ref: Option<&str>,
    push: Option<&str>,
    prefix: &str,
    check: &dyn Fn(&git2::Repository, git2::Oid) -> git::Result<()>,
) -> Result<git::Outcome> {
    Ok(match (branch_ref, push) {
        (Some(r), None) => git::commit_on_ref(repo, r, req)?,
        (None, None) => git::commit_worktree(repo, req)?,
        (r, Some(remote)) => {
            let branch = match r {
                Some(r) => r.trim_start_matches("refs/heads/").to_owned(),
                None => current_branch(repo)?,
            };
            // What the work tree held before the run (besides this run's
            // targets): the baseline that tells files other jobs removed
            // from files nobody tracks.
            let before = if r.is_none() { repo.head().ok().and_then(|h| h.peel_to_tree().ok()) } else { None };
            let outcome = git::push_with_retry(repo, remote, &branch, req, push_retry()?, check)?;
            if r.is_none() {
                // The branch may have moved onto the remote tip (other jobs'
                // slots): bring the index and the rendered tree along,
                // removing the files the other jobs' commits removed.
                git::reset_index_to_head(repo, prefix)?;
                let mut co = git2::build::CheckoutBuilder::new();
                co.force();

                if !prefix.is_empty() {
                    co.path(prefix);
                }
                repo.checkout_head(Some(&mut co))?;
                if let Some(before) = before {
                    remove_files_removed_upstream(repo, &before, prefix)?;
                }
            }
            outcome
        }
    })
}

/// Deletes from the work tree the files under `prefix` that `before` held
/// and `HEAD` no longer does (another job's commit, taken in by a rebuilt
/// push, removed them), when they still hold `before`'s content: a checkout
/// alone leaves them behind as untracked files.
fn remove_files_removed_upstream(repo: &git2::Repository, before: &git2::Tree<'_>, prefix: &str) -> Result<()> {
    let Some(workdir) = repo.workdir() else { return Ok(()) };
    let head = repo.head()?.peel_to_tree()?;
    let mut opts = git2::DiffOptions::new();
    if !prefix.is_empty() {
        opts.pathspec(prefix);
    }
    let diff = repo.diff_tree_to_tree(Some(before), Some(&head), Some(&mut opts))?;
    for delta in diff.deltas().filter(|d| d.status() == git2::Delta::Deleted) {
        let (Some(rel), id) = (delta.old_file().path(), delta.old_file().id()) else { continue };
        let path = workdir.join(rel);
        let unchanged = path.symlink_metadata().is_ok_and(|m| m.is_file())
            && git2::Oid::hash_file(git2::ObjectType::Blob, &path).is_ok_and(|h| h == id);
        if unchanged {
            std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            let mut dir = path.parent().map(Path::to_path_buf);
            while let Some(d) = dir.filter(|d| d.starts_with(workdir) && d != workdir) {
                if std::fs::remove_dir(&d).is_err() {
                    break;
                }
                dir = d.parent().map(Path::to_path_buf);
            }
        }
    }
    Ok(())
}

/// The git preconditions of a committing run, checked before anything is
/// written: an identity, a remote that exists, and either a valid `--branch`
/// (`(as given, as a ref)`) that is not the checked-out one, or a checked-out
/// branch with a work tree and an unlocked index.
pub fn preflight(repo: &git2::Repository, branch: Option<(&str, &str)>, push: Option<&str>) -> Result<()> {
    git::signatures(repo)?;
    let locks = match branch {
        Some((given, r)) => {
            check_branch(repo, given, r)?;
            vec![repo.commondir().join(format!("{r}.lock"))]
        }
        None => {
            if repo.is_bare() {
                bail!(git::Error::Bare);
            }
            let current = current_branch(repo)?;
            vec![repo.path().join("index.lock"), repo.commondir().join(format!("refs/heads/{current}.lock"))]
        }
    };
    // Git's lock files, left by a process killed while it updated the index
    // or the ref: refused up front, before anything is written, in the
    // words git uses (git never removes them either: only people know
    // whether a git process still runs).
    for lock in locks {
        if lock.symlink_metadata().is_ok() {
            bail!(
                "{} exists: another git process is using this repository, or one was killed; wait for it, or remove the file when no git process runs",
                lock.display()
            );
        }
    }
    if let Some(remote) = push {
        git::check_remote(repo, remote)?;
        push_retry()?;
    }
    Ok(())
}

/// The retry policy of `--push`: the default, with the total time from
/// `CODEX_K8S_PUSH_TIMEOUT` (a duration such as `120s` or `5m`, or seconds).
pub fn push_retry() -> Result<git::Retry> {
    const VAR: &str = "CODEX_K8S_PUSH_TIMEOUT";
    let Some(raw) = std::env::var_os(VAR) else { return Ok(git::Retry::default()) };
    let text = raw.to_str().unwrap_or("");
    let parsed = text
        .trim()
        .parse::<u64>()
        .map(std::time::Duration::from_secs)
        .or_else(|_| humantime::parse_duration(text.trim()));
    match parsed {
        Ok(d) if !d.is_zero() => Ok(git::Retry::with_deadline(d)),
        _ => bail!(
            "{VAR}={}: not a duration; give one such as `120s`, `5m` or a number of seconds",
            raw.to_string_lossy()
        ),
    }
}

/// Refuses a `--branch` git would refuse (`HEAD`, invalid names) and the
/// checked-out branch, whose index and work tree a commit from memory would leave stale.
fn check_branch(repo: &git2::Repository, given: &str, r: &str) -> Result<()> {
    let bad = !git2::Reference::is_valid_name(r)
        || !r.starts_with("refs/heads/")
        || r.split('/').any(|c| c == "HEAD" || c.starts_with('-'));
    if bad {
        bail!("--branch {given}: not a branch name git accepts; name a branch such as `rendered`");
    }
    let head = repo.find_reference("HEAD").ok();
    if !repo.is_bare() && head.as_ref().and_then(|h| h.symbolic_target()) == Some(r) {
        bail!(
            "--branch {given} is the checked-out branch: a commit from memory would leave its index and work tree stale; drop --branch (plain --commit), or name another branch"
        );
    }
    Ok(())
}

/// The `maxSlots` of each slot environment among `rendered`.
pub fn slot_limits(inventory: &crate::inventory::Inventory, rendered: &[RenderedTarget]) -> Vec<(String, usize)> {
    let mut limits: Vec<(String, usize)> = rendered
        .iter()
        .filter(|t| t.target.slot.is_some())
        .filter_map(|t| {
            inventory.environment(&t.target.env).and_then(|e| e.max_slots).map(|m| (t.target.env.clone(), m as usize))
        })
        .collect();
    limits.sort();
    limits.dedup();
    limits
}

/// `maxSlots` on a rebuilt tip: refused when the commit takes an
/// environment past its limit (other jobs may have added slots meanwhile).
pub fn check_capacity(
    repo: &git2::Repository,
    tip: git2::Oid,
    prefix: &str,
    limits: &[(String, usize)],
) -> git::Result<()> {
    let commit = repo.find_commit(tip)?;
    let parent = commit.parents().next().map(|p| p.tree()).transpose()?;
    for (env, max) in limits {
        let count = |tree: Option<git2::Tree<'_>>| {
            GitTree { repo, tree, prefix: prefix.to_owned(), place: "the remote tip".into() }.list_slots(env).len()
        };
        let now = count(Some(commit.tree()?));
        let before = count(parent.clone());
        if now > *max && now > before {
            return Err(git::Error::Refused(format!(
                "`{env}` would hold {now} slot(s) on the remote tip and allows {max} (maxSlots): other jobs added slots meanwhile. Remove idle slots with `codex-k8s slots gc` or raise maxSlots"
            )));
        }
    }
    Ok(())
}

/// What a committing run restores when a step after writing fails.
pub struct Undo {
    tree: tree::Desired,
    branch: Option<(String, Option<git2::Oid>)>,
    index: Option<Vec<u8>>,
}

impl Undo {
    /// Takes what a failed run must put back.
    pub fn take(repo: &git2::Repository, out_dir: &Path, desired: &tree::Desired) -> Result<Undo> {
        let branch = repo.find_reference("HEAD").ok().and_then(|h| h.symbolic_target().map(str::to_owned)).map(|r| {
            let oid = repo.refname_to_id(&r).ok();
            (r, oid)
        });
        let index = std::fs::read(repo.path().join("index")).ok();
        Ok(Undo { tree: tree::snapshot(out_dir, desired)?, branch, index })
    }

    /// Puts it back.
    pub fn restore(self, repo: &git2::Repository, out_dir: &Path) -> Result<()> {
        tree::apply(out_dir, &self.tree)?;
        if let Some((r, old)) = self.branch {
            let now = repo.refname_to_id(&r).ok();
            match old {
                Some(old) if now != Some(old) => {
                    repo.reference(&r, old, true, "codex-k8s: roll back a failed run")?;
                }
                None if now.is_some() => repo.find_reference(&r)?.delete()?,
                _ => {}
            }
        }
        let path = repo.path().join("index");
        match self.index {
            Some(bytes) if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) => {
                std::fs::write(&path, bytes)?
            }
            None if path.exists() => std::fs::remove_file(&path)?,
            _ => {}
        }
        Ok(())
    }
}

/// The checked-out branch's short name.
pub fn current_branch(repo: &git2::Repository) -> Result<String> {
    let head = repo.find_reference("HEAD")?;
    let target = head.symbolic_target().context("HEAD is detached: check out a branch or use --branch")?;
    Ok(target.trim_start_matches("refs/heads/").to_owned())
}

/// The inventory's input files as repository paths (for `Rendered-From`).
pub fn source_paths(repo: &git2::Repository, inventory: &crate::inventory::Inventory) -> Vec<String> {
    inventory.sources.iter().map(|s| repo_relative(repo, &inventory.root.join(s))).collect()
}

fn repo_relative(repo: &git2::Repository, path: &Path) -> String {
    let workdir = repo.workdir().and_then(|w| w.canonicalize().ok());
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    match workdir {
        Some(w) => path.strip_prefix(&w).unwrap_or(&path).to_string_lossy().replace('\\', "/"),
        None => path.to_string_lossy().into_owned(),
    }
}

/// The commit for this run: each rendered target's directory and glue files.
pub fn commit_request(
    rendered: &[RenderedTarget],
    desired: &tree::Desired,
    prefix: &str,
    digest: &str,
    from: String,
    source: Option<&Source>,
    message: Option<String>,
) -> git::CommitRequest {
    let join = |rest: &str| crate::layout::join(prefix, rest);
    let mut updates = git::Updates::new();
    for (dir, files) in &desired.targets {
        updates.insert(
            join(dir),
            git::Update::Dir(files.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect()),
        );
    }
    for dir in &desired.removed_targets {
        updates.insert(join(dir), git::Update::Remove);
    }
    for (rel, content) in &desired.files {
        updates.insert(
            join(rel),
            match content {
                Some(c) => git::Update::File(c.clone().into_bytes()),
                None => git::Update::Remove,
            },
        );
    }
    let names: Vec<String> =
        rendered.iter().map(|t| t.target.dir()).chain(desired.removed_targets.iter().cloned()).collect();
    let scope = if names.len() <= 3 { names.join(", ") } else { format!("{} targets", names.len()) };
    git::CommitRequest {
        updates,
        subject: format!("render({scope})"),
        message,
        trailers: trailers(
            vec![
                ("Rendered-From".into(), from),
                ("Inputs-Digest".into(), format!("sha256:{digest}")),
                ("Targets".into(), names.join(", ")),
            ],
            source,
        ),
    }
}

/// `base`, then the run's source as `Source-Ref` and `Source-Commit`.
pub fn trailers(mut base: Vec<(String, String)>, source: Option<&Source>) -> Vec<(String, String)> {
    if let Some(s) = source {
        base.push(("Source-Ref".into(), s.git_ref.clone()));
        if let Some(c) = &s.commit {
            base.push(("Source-Commit".into(), c.clone()));
        }
    }
    base
}
