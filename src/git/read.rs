//! Reading rendered trees and their history out of git.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{ObjectType, Repository, Tree};

use super::Result;

/// Every file under `prefix` in the tree of `rev`, relative to `prefix`.
pub fn read_tree_files(repo: &Repository, rev: &str, prefix: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let tree = repo.revparse_single(rev)?.peel_to_tree()?;
    let mut out = BTreeMap::new();
    let sub = if prefix.is_empty() {
        Some(tree)
    } else {
        match tree.get_path(Path::new(prefix)) {
            Ok(e) if e.kind() == Some(ObjectType::Tree) => Some(repo.find_tree(e.id())?),
            _ => None,
        }
    };
    if let Some(sub) = sub {
        collect(repo, &sub, "", &mut out)?;
    }
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
