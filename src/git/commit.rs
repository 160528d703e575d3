//! Commits with provenance: one commit per run, none when nothing changed,
//! trailers that say where the render came from. Works on the checked-out
//! branch (updating HEAD and the index for the touched paths) or on any
//! other ref from memory (no work tree, no index).

use std::path::Path;

use git2::{Oid, Repository, Signature};

use super::tree::{apply_updates, Update, Updates};
use super::{Error, Result};

/// What to commit.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// Changes relative to the branch tip, by repository path.
    pub updates: Updates,
    /// Subject prefix, e.g. `render(ai/pr-42)`; the file counts follow it.
    pub subject: String,
    /// A subject chosen by the user (`--message`), used as is.
    pub message: Option<String>,
    /// Trailers, in order (`Rendered-From`, `Inputs-Digest`, `Targets`).
    pub trailers: Vec<(String, String)>,
}

impl CommitRequest {
    /// The full message for a commit that changes `stats` = (added, modified, deleted) files.
    pub fn message_for(&self, stats: (usize, usize, usize)) -> String {
        let subject = match &self.message {
            Some(m) => m.clone(),
            None => format!(
                "{}: {} file(s) changed (+{} ~{} -{})",
                self.subject,
                stats.0 + stats.1 + stats.2,
                stats.0,
                stats.1,
                stats.2
            ),
        };
        let mut out = format!("{subject}\n\n");
        for (k, v) in &self.trailers {
            out.push_str(&format!("{k}: {v}\n"));
        }
        out
    }
}

/// Counts files added, modified and deleted between two trees.
fn stats(
    repo: &Repository,
    old: Option<&git2::Tree<'_>>,
    new: &git2::Tree<'_>,
    paths: &Updates,
) -> Result<(usize, usize, usize)> {
    // Only the updated paths can differ: limiting the diff to them keeps its
    // cost proportional to the change.
    let mut opts = git2::DiffOptions::new();
    for p in paths.keys() {
        opts.pathspec(p);
    }
    let diff = repo.diff_tree_to_tree(old, Some(new), Some(&mut opts))?;
    let mut s = (0, 0, 0);
    for d in diff.deltas() {
        match d.status() {
            git2::Delta::Added => s.0 += 1,
            git2::Delta::Deleted => s.2 += 1,
            _ => s.1 += 1,
        }
    }
    Ok(s)
}

/// Result of a commit attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new commit.
    Committed(Oid),
    /// The tree already matched: nothing committed.
    Unchanged,
}

/// Author and committer: `GIT_AUTHOR_*`/`GIT_COMMITTER_*` when set, else git config.
pub fn signatures(repo: &Repository) -> Result<(Signature<'static>, Signature<'static>)> {
    let from_env = |kind: &str| -> Option<Signature<'static>> {
        let name = std::env::var(format!("GIT_{kind}_NAME")).ok()?;
        let email = std::env::var(format!("GIT_{kind}_EMAIL")).ok()?;
        Signature::now(&name, &email).ok()
    };
    let config = repo.signature().ok().map(|s| s.to_owned());
    let author = from_env("AUTHOR").or_else(|| config.clone());
    let committer = from_env("COMMITTER").or_else(|| author.clone());
    match (author, committer) {
        (Some(a), Some(c)) => Ok((a, c)),
        _ => Err(Error::NoIdentity),
    }
}

/// Commits `req` on top of `refname` (created if missing). The ref moves
/// only if nobody moved it meanwhile.
pub fn commit_on_ref(repo: &Repository, refname: &str, req: &CommitRequest) -> Result<Outcome> {
    let parent = match repo.find_reference(refname) {
        Ok(r) => Some(r.peel_to_commit()?),
        Err(e) if e.code() == git2::ErrorCode::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let base_tree = parent.as_ref().map(|p| p.tree()).transpose()?;
    let tree_id = apply_updates(repo, base_tree.as_ref(), &req.updates)?;
    if base_tree.as_ref().map(|t| t.id()) == Some(tree_id) {
        return Ok(Outcome::Unchanged);
    }
    let tree = repo.find_tree(tree_id)?;
    let (author, committer) = signatures(repo)?;
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let message = req.message_for(stats(repo, base_tree.as_ref(), &tree, &req.updates)?);
    let oid = repo.commit(None, &author, &committer, &message, &tree, &parents)?;
    // Move the ref only if nobody moved it meanwhile (compare-and-swap).
    match &parent {
        Some(p) => {
            repo.reference_matching(refname, oid, true, p.id(), "codex-k8s render")?;
        }
        None => {
            repo.reference(refname, oid, false, "codex-k8s render")?;
        }
    }
    Ok(Outcome::Committed(oid))
}

/// Commits on the checked-out branch and brings the index in line for the
/// touched paths, so `git status` is clean for the rendered tree afterwards.
pub fn commit_worktree(repo: &Repository, req: &CommitRequest) -> Result<Outcome> {
    let head = repo.head().ok();
    let refname = match &head {
        Some(h) if h.is_branch() => h.name().unwrap_or("HEAD").to_owned(),
        Some(_) => return Err(Error::DetachedHead),
        None => {
            // Unborn branch: HEAD points at a ref that does not exist yet.
            let head_ref = repo.find_reference("HEAD")?;
            head_ref.symbolic_target().unwrap_or("refs/heads/main").to_owned()
        }
    };
    let outcome = commit_on_ref(repo, &refname, req)?;
    // Also when nothing was committed: a run killed between moving the ref
    // and writing the index left the index behind HEAD for these paths.
    sync_index(repo, req)?;
    Ok(outcome)
}

fn sync_index(repo: &Repository, req: &CommitRequest) -> Result<()> {
    let mut index = repo.index()?;
    let workdir = repo.workdir().ok_or(Error::Bare)?.to_path_buf();
    for (path, update) in &req.updates {
        match update {
            Update::File(_) => index.add_path(Path::new(path))?,
            Update::Remove => {
                index.remove_all([path.as_str()], None)?;
            }
            Update::Dir(files) => {
                index.remove_all([format!("{path}/*")], None)?;
                for rel in files.keys() {
                    let p = format!("{path}/{rel}");
                    if workdir.join(&p).is_file() {
                        index.add_path(Path::new(&p))?;
                    }
                }
            }
        }
    }
    index.write()?;
    Ok(())
}

/// The commit the sources come from: `HEAD`'s id, with ` (dirty)` when any
/// of `sources` (repository paths) differs from it; `worktree` outside git.
pub fn rendered_from(repo: Option<&Repository>, sources: &[String]) -> String {
    let Some(repo) = repo else { return "worktree".into() };
    let Ok(head) = repo.head().and_then(|h| h.peel_to_commit()) else { return "worktree (no commits yet)".into() };
    let dirty = !dirty_sources(repo, sources).is_empty();
    format!("{}{}", head.id(), if dirty { " (dirty)" } else { "" })
}

/// The files among `paths` (on disk) that differ from `HEAD` in the
/// repository holding `root`, as repository paths; none outside git.
pub fn dirty_files(root: &Path, paths: &[std::path::PathBuf]) -> Vec<String> {
    let Ok(repo) = Repository::discover(root) else { return Vec::new() };
    let workdir = repo.workdir().and_then(|w| w.canonicalize().ok());
    let relative: Vec<String> = paths
        .iter()
        .map(|p| {
            let p = p.canonicalize().unwrap_or_else(|_| p.clone());
            match &workdir {
                Some(w) => p.strip_prefix(w).unwrap_or(&p).to_string_lossy().replace('\\', "/"),
                None => p.to_string_lossy().into_owned(),
            }
        })
        .collect();
    dirty_sources(&repo, &relative)
}

/// The `sources` (repository paths) whose file on disk differs from `HEAD`'s
/// (changed, missing, or not committed yet); every one when there is no
/// `HEAD`. In input order.
fn dirty_sources(repo: &Repository, sources: &[String]) -> Vec<String> {
    let Ok(head) = repo.head().and_then(|h| h.peel_to_commit()) else { return sources.to_vec() };
    // Hash each input file and compare it with HEAD's blob: no index read and
    // no status scan, whose cost would follow the size of the rendered tree.
    let workdir = repo.workdir().map(Path::to_path_buf);
    let tree = head.tree().ok();
    sources
        .iter()
        .filter(|s| {
            let on_disk = workdir.as_ref().and_then(|w| Oid::hash_file(git2::ObjectType::Blob, w.join(s)).ok());
            let committed = tree.as_ref().and_then(|t| t.get_path(Path::new(s)).ok()).map(|e| e.id());
            on_disk.is_none() || on_disk != committed
        })
        .cloned()
        .collect()
}

/// Makes the index entries under `prefix` (a repository path, `""` for all)
/// match `HEAD`'s tree, leaving other entries alone: after a push rebuilt
/// our commit on another tip, the index must describe the new `HEAD`.
pub fn reset_index_to_head(repo: &Repository, prefix: &str) -> Result<()> {
    let head = repo.head()?.peel_to_tree()?;
    let mut index = repo.index()?;
    let (sub, base) = if prefix.is_empty() {
        (Some(head.clone()), String::new())
    } else {
        index.remove_dir(Path::new(prefix), 0)?;
        let sub = match head.get_path(Path::new(prefix)) {
            Ok(e) if e.kind() == Some(git2::ObjectType::Tree) => Some(repo.find_tree(e.id())?),
            _ => None,
        };
        (sub, format!("{prefix}/"))
    };
    if let Some(tree) = sub {
        let mut entries = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(git2::ObjectType::Blob) {
                entries.push((
                    format!("{base}{dir}{}", entry.name().unwrap_or_default()),
                    entry.id(),
                    entry.filemode() as u32,
                ));
            }
            git2::TreeWalkResult::Ok
        })?;
        for (path, id, mode) in entries {
            index.add(&git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode,
                uid: 0,
                gid: 0,
                file_size: 0,
                id,
                flags: 0,
                flags_extended: 0,
                path: path.into_bytes(),
            })?;
        }
    }
    index.write()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(root: &Path, content: &str) -> CommitRequest {
        std::fs::create_dir_all(root.join("r/t")).unwrap();
        std::fs::write(root.join("r/t/a.yaml"), content).unwrap();
        let files = [("a.yaml".to_owned(), content.as_bytes().to_vec())].into_iter().collect();
        CommitRequest {
            updates: [("r/t".to_owned(), Update::Dir(files))].into_iter().collect(),
            subject: "render(t)".into(),
            message: None,
            trailers: Vec::new(),
        }
    }

    /// Found by tests/crash.rs: a `render --commit` killed after moving the
    /// ref but before writing the index left `git status` dirty for good,
    /// because the next run had nothing to commit and skipped the index.
    #[test]
    fn the_index_is_synced_even_when_there_is_nothing_to_commit() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repository::init(tmp.path()).unwrap();
        let mut config = repo.config().unwrap();
        config.set_str("user.name", "t").unwrap();
        config.set_str("user.email", "t@example.com").unwrap();
        assert!(matches!(commit_worktree(&repo, &request(tmp.path(), "1")).unwrap(), Outcome::Committed(_)));
        // The state a kill between the ref update and the index write leaves.
        let head = repo.head().unwrap().name().unwrap().to_owned();
        commit_on_ref(&repo, &head, &request(tmp.path(), "2")).unwrap();
        assert_eq!(commit_worktree(&repo, &request(tmp.path(), "2")).unwrap(), Outcome::Unchanged);
        let blob = repo.head().unwrap().peel_to_tree().unwrap().get_path(Path::new("r/t/a.yaml")).unwrap().id();
        let index = repo.index().unwrap();
        assert_eq!(index.get_path(Path::new("r/t/a.yaml"), 0).unwrap().id, blob, "index left behind HEAD");
    }
}
