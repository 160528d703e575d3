//! Reading rendered trees and their history out of git.

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use git2::{ObjectType, Oid, Repository, Tree};

use super::Result;

/// The files under `prefix/<part>` for each of `parts` (files or directories)
/// in the tree of `rev`, keyed relative to `prefix`. Missing parts are skipped.
pub fn read_tree_parts(
    repo: &Repository,
    rev: &str,
    prefix: &str,
    parts: &[String],
) -> Result<BTreeMap<String, Vec<u8>>> {
    let tree = repo.revparse_single(rev)?.peel_to_tree()?;
    let mut out = BTreeMap::new();
    for part in parts {
        let full = crate::layout::join(prefix, part);
        let Ok(entry) = tree.get_path(Path::new(&full)) else { continue };
        match entry.kind() {
            Some(ObjectType::Tree) => collect(repo, &repo.find_tree(entry.id())?, part, &mut out)?,
            Some(ObjectType::Blob) => {
                out.insert(part.clone(), repo.find_blob(entry.id())?.content().to_vec());
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Paths under `prefix` (relative to it) that differ between revision `base`
/// and `head` — a revision, or `None` for the work tree (untracked files
/// included). Unchanged subtrees are skipped by object id, so the cost
/// follows the change, not the size of the tree.
pub fn changed_paths(repo: &Repository, base: &str, head: Option<&str>, prefix: &str) -> Result<Vec<String>> {
    let base_tree = repo.revparse_single(base)?.peel_to_tree()?;
    let mut opts = git2::DiffOptions::new();
    if !prefix.is_empty() {
        opts.pathspec(prefix);
    }
    opts.include_untracked(true).recurse_untracked_dirs(true);
    let diff = match head {
        Some(rev) => {
            let head_tree = repo.revparse_single(rev)?.peel_to_tree()?;
            repo.diff_tree_to_tree(Some(&base_tree), Some(&head_tree), Some(&mut opts))?
        }
        None => repo.diff_tree_to_workdir(Some(&base_tree), Some(&mut opts))?,
    };
    let strip = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
    let mut out = Vec::new();
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(p) = file.path().and_then(|p| p.to_str()) {
                if let Some(rel) = p.strip_prefix(&strip) {
                    out.push(rel.to_owned());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn collect(repo: &Repository, tree: &Tree<'_>, base: &str, out: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
    for entry in tree.iter() {
        let Some(name) = entry.name() else { continue };
        let path = if base.is_empty() { name.to_owned() } else { format!("{base}/{name}") };
        match entry.kind() {
            Some(ObjectType::Tree) => collect(repo, &repo.find_tree(entry.id())?, &path, out)?,
            Some(ObjectType::Blob) => {
                out.insert(path, repo.find_blob(entry.id())?.content().to_vec());
            }
            _ => {}
        }
    }
    Ok(())
}

/// How far back [`last_touches`] walks. A directory present at the tip and
/// unchanged for longer counts as changed at the oldest commit walked: its
/// idle time is then a lower bound, so a TTL never expires early.
pub const MAX_COMMITS: usize = 5000;

/// The newest commit that changed a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    /// Its time (seconds since the epoch).
    pub time: i64,
    /// When that commit removed the directory: the tree it had before.
    pub removed: Option<Oid>,
}

/// For each directory, the newest commit (first-parent comparison) that
/// changed, added or removed it, walking back from `tip` once for all of
/// them. Directories are grouped by their parent directory: a commit whose
/// parent directory is unchanged is skipped with one id comparison, and a
/// changed one is compared entry by entry. Each parent directory's entries
/// are read once per distinct tree (a commit's "before" is its parent's
/// "now"), so a walk costs O(commits × changed directories' entries), with
/// no per-slot walk and no per-slot tree lookup from the root.
pub fn last_touches(repo: &Repository, tip: Oid, dirs: &[String]) -> Result<BTreeMap<String, Touch>> {
    let mut found = BTreeMap::new();
    if dirs.is_empty() {
        return Ok(found);
    }
    super::require_full_history(repo)?;
    // parent directory -> (entry name -> full dir), for the dirs still wanted.
    let mut wanted: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for dir in dirs {
        let (parent, name) = dir.rsplit_once('/').unwrap_or(("", dir.as_str()));
        wanted.entry(parent.to_owned()).or_default().insert(name.to_owned(), dir.clone());
    }
    let mut remaining: usize = wanted.values().map(BTreeMap::len).sum();
    // The entries of the tree last read for each parent directory.
    let mut cache: BTreeMap<String, (Option<Oid>, Rc<Entries>)> = BTreeMap::new();
    let mut walk = repo.revwalk()?;
    walk.set_sorting(git2::Sort::TIME | git2::Sort::TOPOLOGICAL)?;
    walk.push(tip)?;
    let mut oldest: Option<i64> = None;
    let mut walked = 0;
    for oid in walk.by_ref() {
        if remaining == 0 {
            break;
        }
        walked += 1;
        if walked > MAX_COMMITS {
            break;
        }
        let commit = repo.find_commit(oid?)?;
        oldest = Some(commit.time().seconds());
        let tree = commit.tree()?;
        let parent_tree = commit.parents().next().map(|p| p.tree()).transpose()?;
        for (parent_dir, names) in wanted.iter_mut() {
            if names.is_empty() {
                continue;
            }
            let sub = |t: &Tree<'_>| -> Option<Oid> {
                if parent_dir.is_empty() {
                    Some(t.id())
                } else {
                    entry_id(t, parent_dir)
                }
            };
            let now = sub(&tree);
            let before = parent_tree.as_ref().and_then(sub);
            if now == before {
                continue;
            }
            let now_entries = cached_entries(repo, &mut cache, parent_dir, now);
            let before_entries = cached_entries(repo, &mut cache, parent_dir, before);
            // The entries that differ (one sorted merge), then only those
            // that are still wanted.
            for (name, a, b) in changed_entries(&now_entries, &before_entries) {
                let Some(dir) = names.remove(name) else { continue };
                let removed = match (a, b) {
                    (None, Some(before)) => Some(before),
                    _ => None,
                };
                found.insert(dir, Touch { time: commit.time().seconds(), removed });
                remaining -= 1;
            }
        }
    }
    if remaining > 0 && walked > MAX_COMMITS {
        // Cut off: what is still present at the tip is idle since before
        // the oldest commit walked.
        let tip_tree = repo.find_commit(tip)?.tree()?;
        for dirs in wanted.values() {
            for dir in dirs.values() {
                if let (Some(time), Some(_)) = (oldest, entry_id(&tip_tree, dir)) {
                    found.insert(dir.clone(), Touch { time, removed: None });
                }
            }
        }
    }
    Ok(found)
}

/// A tree's entries (name, id), sorted by name.
type Entries = Vec<(String, Oid)>;

/// The names whose entry differs between `now` and `before` (added,
/// removed or changed), with the entry on each side.
fn changed_entries<'a>(now: &'a Entries, before: &'a Entries) -> Vec<(&'a str, Option<Oid>, Option<Oid>)> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < now.len() || j < before.len() {
        let order = match (now.get(i), before.get(j)) {
            (Some(a), Some(b)) => a.0.cmp(&b.0),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                out.push((now[i].0.as_str(), Some(now[i].1), None));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push((before[j].0.as_str(), None, Some(before[j].1)));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                if now[i].1 != before[j].1 {
                    out.push((now[i].0.as_str(), Some(now[i].1), Some(before[j].1)));
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The entries of the tree `id` (the parent directory `dir` in some
/// commit), reusing the last one read for `dir` when it is the same tree.
fn cached_entries(
    repo: &Repository,
    cache: &mut BTreeMap<String, (Option<Oid>, Rc<Entries>)>,
    dir: &str,
    id: Option<Oid>,
) -> Rc<Entries> {
    if let Some((cached, entries)) = cache.get(dir) {
        if *cached == id {
            return entries.clone();
        }
    }
    let entries = Rc::new(subtree_entries(repo, id));
    cache.insert(dir.to_owned(), (id, entries.clone()));
    entries
}

/// The entries of the tree `id`, sorted by name; empty when it is none or
/// not a tree.
fn subtree_entries(repo: &Repository, id: Option<Oid>) -> Entries {
    let Some(tree) = id.and_then(|id| repo.find_tree(id).ok()) else { return Vec::new() };
    let mut entries: Entries = tree.iter().filter_map(|e| Some((e.name()?.to_owned(), e.id()))).collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    entries
}

fn entry_id(tree: &Tree<'_>, path: &str) -> Option<Oid> {
    tree.get_path(Path::new(path)).ok().map(|e| e.id())
}
