//! Reading rendered trees and their history out of git.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{ObjectType, Repository, Tree};

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

/// For each directory in `dirs` (repository paths), the time (seconds since
/// the epoch) of the last commit reachable from HEAD that changed it.
/// Directories never committed are absent.
pub fn last_changes(repo: &Repository, dirs: &[String]) -> Result<BTreeMap<String, i64>> {
    let mut found = BTreeMap::new();
    let Ok(head) = repo.head().and_then(|h| h.peel_to_commit()) else { return Ok(found) };
    super::require_full_history(repo)?;
    let mut walk = repo.revwalk()?;
    walk.set_sorting(git2::Sort::TIME | git2::Sort::TOPOLOGICAL)?;
    walk.push(head.id())?;
    let id_at = |tree: &Tree<'_>, dir: &str| tree.get_path(Path::new(dir)).ok().map(|e| e.id());
    for oid in walk {
        if found.len() == dirs.len() {
            break;
        }
        let commit = repo.find_commit(oid?)?;
        let tree = commit.tree()?;
        let parent_tree = commit.parents().next().map(|p| p.tree()).transpose()?;
        for dir in dirs {
            if found.contains_key(dir) {
                continue;
            }
            let now = id_at(&tree, dir);
            let before = parent_tree.as_ref().and_then(|t| id_at(t, dir));
            if now.is_some() && now != before {
                found.insert(dir.clone(), commit.time().seconds());
            }
        }
    }
    Ok(found)
}
