//! Writing the tree: compare what a run wants with what is on disk, then
//! replace each changed target directory in one rename (write aside, swap),
//! so a failed or killed run leaves every target either old or new.
//!
//! Layout of the scratch space, all inside `--out` so renames never cross
//! file systems: `.codex-k8s-staging/` (new target dirs being written) and
//! `.codex-k8s-trash/` (old target dirs being swapped out). [`recover`]
//! finishes or undoes an interrupted swap on the next run.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::layout::{TargetMeta, TARGET_JSON};

use crate::layout::{STAGING, TRASH};

/// What a run wants the tree to hold.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// Target directories (relative to `--out`) and their exact files.
    pub targets: BTreeMap<String, BTreeMap<String, String>>,
    /// Single files (relative to `--out`): `Some` to write, `None` to remove.
    pub files: BTreeMap<String, Option<String>>,
    /// Target directories to remove entirely.
    pub removed_targets: BTreeSet<String>,
}

/// How a file changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// New file.
    Added,
    /// Different content.
    Changed,
    /// File goes away.
    Removed,
}

/// One file that differs between the tree and a run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Change {
    /// Path relative to `--out`.
    pub path: String,
    /// Added, changed or removed.
    pub kind: ChangeKind,
}

/// The error for a symlink found in the tree.
fn link_error(path: &Path) -> io::Error {
    io::Error::other(format!(
        "{} is a symbolic link: codex-k8s never follows links in the rendered tree; replace it with a plain file or directory (`git rm` it)",
        path.display()
    ))
}

/// An I/O error with the path it happened at.
fn at(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// What is at `path`, without following a link: `None` when nothing is.
fn kind_at(path: &Path) -> io::Result<Option<fs::FileType>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m.file_type())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(at(path)(e)),
    }
}

/// Checks every existing component of `rel` below `out` (the last one
/// included): none may be a symlink, each but the last must be a directory.
/// Returns what the last component is.
fn check_path(out: &Path, rel: &str) -> io::Result<Option<fs::FileType>> {
    let mut path = out.to_path_buf();
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        match kind_at(&path)? {
            None => return Ok(None),
            Some(t) if t.is_symlink() => return Err(link_error(&path)),
            Some(t) if i + 1 == parts.len() => return Ok(Some(t)),
            Some(t) if !t.is_dir() => {
                return Err(io::Error::other(format!(
                    "{} is a file where the tree needs a directory; move it away",
                    path.display()
                )))
            }
            Some(_) => {}
        }
    }
    kind_at(out)
}

/// Refuses any symlink inside `dir` (which must not be one itself).
fn check_no_links_below(dir: &Path) -> io::Result<()> {
    for entry in walkdir::WalkDir::new(dir).follow_links(false).follow_root_links(false) {
        let entry = entry.map_err(io::Error::other)?;
        if entry.path_is_symlink() {
            return Err(link_error(entry.path()));
        }
    }
    Ok(())
}

/// Every precondition of writing `desired` into `out`, checked before
/// anything is written: no symlink on the way to or inside any target, glue
/// file or scratch directory; target paths are directories (or absent) and
/// file paths are files (or absent).
pub fn check(out: &Path, desired: &Desired) -> io::Result<()> {
    if kind_at(out)?.is_some_and(|t| t.is_symlink()) {
        return Err(link_error(out));
    }
    for scratch in [STAGING, TRASH] {
        if check_path(out, scratch)?.is_some() {
            check_no_links_below(&out.join(scratch))?;
        }
    }
    // Per target in parallel (a walk of every target directory), errors
    // reported for the first target in order.
    let dirs: Vec<&String> = desired.targets.keys().chain(&desired.removed_targets).collect();
    dirs.par_iter()
        .map(|dir| match check_path(out, dir)? {
            Some(t) if !t.is_dir() => Err(io::Error::other(format!(
                "{} is a file where the tree needs the target directory; move it away",
                out.join(dir).display()
            ))),
            Some(_) => check_no_links_below(&out.join(dir)),
            None => Ok(()),
        })
        .collect::<io::Result<Vec<()>>>()?;
    for rel in desired.files.keys() {
        if check_path(out, rel)?.is_some_and(|t| t.is_dir()) {
            return Err(io::Error::other(format!(
                "{} is a directory where the tree needs a file; move it away",
                out.join(rel).display()
            )));
        }
    }
    Ok(())
}

/// What `out` holds now for everything `desired` touches, as a [`Desired`]
/// that puts it back: applying it after `desired` undoes the run.
pub fn snapshot(out: &Path, desired: &Desired) -> io::Result<Desired> {
    let text = |path: String, bytes: Vec<u8>| {
        String::from_utf8(bytes).map_err(|_| {
            io::Error::other(format!("{path} is not UTF-8 text: the tree holds a file codex-k8s did not write"))
        })
    };
    let mut undo = Desired::default();
    for dir in desired.targets.keys().chain(&desired.removed_targets) {
        if out.join(dir).is_dir() {
            let mut files = BTreeMap::new();
            for (rel, bytes) in read_dir_files(&out.join(dir))? {
                files.insert(rel.clone(), text(format!("{dir}/{rel}"), bytes)?);
            }
            undo.targets.insert(dir.clone(), files);
        } else {
            undo.removed_targets.insert(dir.clone());
        }
    }
    for rel in desired.files.keys() {
        let content = match fs::read(out.join(rel)) {
            Ok(b) => Some(text(rel.clone(), b)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(at(&out.join(rel))(e)),
        };
        undo.files.insert(rel.clone(), content);
    }
    Ok(undo)
}

/// Every file under `dir`, relative to it, with contents. Missing dir:
/// empty. A symlink (`dir` itself or anything below it) is an error.
pub fn read_dir_files(dir: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    match kind_at(dir)? {
        Some(t) if t.is_symlink() => return Err(link_error(dir)),
        Some(t) if t.is_dir() => {}
        _ => return Ok(out),
    }
    for entry in walkdir::WalkDir::new(dir).follow_links(false).follow_root_links(false).sort_by_file_name() {
        let entry = entry.map_err(io::Error::other)?;
        if entry.path_is_symlink() {
            return Err(link_error(entry.path()));
        }
        if entry.file_type().is_file() {
            let rel =
                entry.path().strip_prefix(dir).expect("walkdir stays inside").to_string_lossy().replace('\\', "/");
            out.insert(rel, fs::read(entry.path()).map_err(at(entry.path()))?);
        }
    }
    Ok(out)
}

fn diff_dir(
    prefix: &str,
    on_disk: &BTreeMap<String, Vec<u8>>,
    wanted: &BTreeMap<String, String>,
    out: &mut Vec<Change>,
) {
    for (rel, content) in wanted {
        let path = format!("{prefix}/{rel}");
        match on_disk.get(rel) {
            None => out.push(Change { path, kind: ChangeKind::Added }),
            Some(old) if old.as_slice() != content.as_bytes() => out.push(Change { path, kind: ChangeKind::Changed }),
            Some(_) => {}
        }
    }
    for rel in on_disk.keys() {
        if !wanted.contains_key(rel) {
            out.push(Change { path: format!("{prefix}/{rel}"), kind: ChangeKind::Removed });
        }
    }
}

/// Files of target `dir` that differ between `out` and `files`.
pub fn compare_target(out: &Path, dir: &str, files: &BTreeMap<String, String>) -> io::Result<Vec<Change>> {
    let mut changes = Vec::new();
    diff_dir(dir, &read_dir_files(&out.join(dir))?, files, &mut changes);
    Ok(changes)
}

/// Single files (relative to `out`) that differ between `out` and `files`.
pub fn file_changes(out: &Path, files: &BTreeMap<String, Option<String>>) -> io::Result<Vec<Change>> {
    let mut all = Vec::new();
    for (rel, content) in files {
        let existing = match fs::read(out.join(rel)) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(at(&out.join(rel))(e)),
        };
        let kind = match (existing, content) {
            (None, Some(_)) => Some(ChangeKind::Added),
            (Some(old), Some(new)) if old != new.as_bytes() => Some(ChangeKind::Changed),
            (Some(_), None) => Some(ChangeKind::Removed),
            _ => None,
        };
        if let Some(kind) = kind {
            all.push(Change { path: rel.clone(), kind });
        }
    }
    Ok(all)
}

/// Files that differ between `out` and `desired`, sorted by path.
pub fn changes(out: &Path, desired: &Desired) -> io::Result<Vec<Change>> {
    check(out, desired)?;
    let mut all = Vec::new();
    let per_target: Vec<io::Result<Vec<Change>>> = desired
        .targets
        .par_iter()
        .map(|(dir, files)| {
            let mut changes = Vec::new();
            diff_dir(dir, &read_dir_files(&out.join(dir))?, files, &mut changes);
            Ok(changes)
        })
        .collect();
    for changes in per_target {
        all.extend(changes?);
    }
    for dir in &desired.removed_targets {
        diff_dir(dir, &read_dir_files(&out.join(dir))?, &BTreeMap::new(), &mut all);
    }
    all.extend(file_changes(out, &desired.files)?);
    all.sort();
    Ok(all)
}

fn scratch_name(dir: &str) -> String {
    format!("{}-{}", dir.replace('/', "__"), std::process::id())
}

/// Finishes or undoes a swap a killed run left behind: a target missing from
/// its place but present in the trash is put back; staging leftovers go.
pub fn recover(out: &Path) -> io::Result<()> {
    let trash = out.join(TRASH);
    for scratch in [STAGING, TRASH] {
        if check_path(out, scratch)?.is_some() {
            check_no_links_below(&out.join(scratch))?;
        }
    }
    if trash.is_dir() {
        for entry in fs::read_dir(&trash).map_err(at(&trash))? {
            let entry = entry.map_err(at(&trash))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((encoded, _pid)) = name.rsplit_once('-') else { continue };
            let rel = PathBuf::from(encoded.replace("__", "/"));
            // Only names this module writes (`env` or `env__slot`): a crafted
            // entry (`..__..__x-1`, committed by a pull request) must never
            // be moved outside the tree.
            let inside = rel.components().count() <= 2
                && rel
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(p) if !p.to_string_lossy().starts_with('.')));
            let original = out.join(&rel);
            let is_dir = entry.file_type().map_err(at(&entry.path()))?.is_dir();
            if !is_dir {
                fs::remove_file(entry.path()).map_err(at(&entry.path()))?;
            } else if !inside || original.exists() {
                fs::remove_dir_all(entry.path()).map_err(at(&entry.path()))?;
            } else {
                if let Some(parent) = original.parent() {
                    fs::create_dir_all(parent).map_err(at(parent))?;
                }
                fs::rename(entry.path(), &original).map_err(at(&original))?;
            }
        }
        fs::remove_dir_all(&trash).map_err(at(&trash))?;
    }
    let staging = out.join(STAGING);
    if staging.is_dir() {
        fs::remove_dir_all(&staging).map_err(at(&staging))?;
    }
    Ok(())
}

fn write_file(path: &Path, content: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(at(parent))?;
    }
    fs::write(path, content).map_err(at(path))
}

/// Writes `files` into the staging directory of `dir`, creating each
/// directory once (parents before children).
fn stage_target(out: &Path, dir: &str, files: &BTreeMap<String, String>) -> io::Result<()> {
    let staged = out.join(STAGING).join(scratch_name(dir));
    if staged.exists() {
        fs::remove_dir_all(&staged).map_err(at(&staged))?;
    }
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for rel in files.keys() {
        if let Some(parent) = staged.join(rel).parent() {
            dirs.insert(parent.to_path_buf());
        }
    }
    fs::create_dir_all(&staged).map_err(at(&staged))?;
    for d in &dirs {
        fs::create_dir_all(d).map_err(at(d))?;
    }
    for (rel, content) in files {
        fs::write(staged.join(rel), content.as_bytes()).map_err(at(&staged.join(rel)))?;
    }
    Ok(())
}

/// Replaces `out/dir` with its staged copy (or removes it when `staged` is
/// false), through the trash and two renames.
fn swap_target(out: &Path, dir: &str, staged: bool) -> io::Result<()> {
    let trashed = move_in(out, dir, staged)?;
    if trashed.exists() {
        fs::remove_dir_all(&trashed).map_err(at(&trashed))?;
    }
    Ok(())
}

/// The two renames of [`swap_target`]; returns where the old directory went
/// (in the trash, which [`recover`] empties if the run dies before it does).
fn move_in(out: &Path, dir: &str, staged: bool) -> io::Result<PathBuf> {
    let final_dir = out.join(dir);
    let trashed = out.join(TRASH).join(scratch_name(dir));
    if final_dir.symlink_metadata().is_ok() {
        fs::create_dir_all(out.join(TRASH)).map_err(at(&out.join(TRASH)))?;
        fs::rename(&final_dir, &trashed).map_err(at(&final_dir))?;
    }
    if staged {
        if let Some(parent) = final_dir.parent() {
            fs::create_dir_all(parent).map_err(at(parent))?;
        }
        fs::rename(out.join(STAGING).join(scratch_name(dir)), &final_dir).map_err(at(&final_dir))?;
    }
    Ok(trashed)
}

/// Removes `dir` and then its parents up to (not including) `stop` while they are empty.
fn prune_empty_parents(mut dir: PathBuf, stop: &Path) {
    while dir != stop && dir.starts_with(stop) {
        if fs::remove_dir(&dir).is_err() {
            break;
        }
        if !dir.pop() {
            break;
        }
    }
}

/// Brings `out` to `desired`, touching only what differs; returns the changes.
pub fn apply(out: &Path, desired: &Desired) -> io::Result<Vec<Change>> {
    check(out, desired)?;
    fs::create_dir_all(out).map_err(at(out))?;
    recover(out)?;
    let changes = changes(out, desired)?;
    let touched: BTreeSet<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    let is_touched = |dir: &str| {
        let prefix = format!("{dir}/");
        touched.range(prefix.as_str()..).next().is_some_and(|p| p.starts_with(&prefix))
    };
    // Stage every changed target first (in parallel: file creation dominates
    // a cold render), then swap them in one by one.
    let staged: Vec<&String> = desired.targets.keys().filter(|d| is_touched(d)).collect();
    staged.par_iter().map(|dir| stage_target(out, dir, &desired.targets[*dir])).collect::<io::Result<Vec<()>>>()?;
    for dir in staged {
        swap_target(out, dir, true)?;
    }
    for dir in &desired.removed_targets {
        if out.join(dir).exists() {
            swap_target(out, dir, false)?;
            if let Some(parent) = out.join(dir).parent() {
                prune_empty_parents(parent.to_path_buf(), out);
            }
        }
    }
    write_files(out, &desired.files, &touched)?;
    clean_scratch(out)?;
    Ok(changes)
}

/// Writes (each through a temporary file and a rename) the `files` whose
/// path is in `touched`, and removes those set to `None`.
fn write_files(out: &Path, files: &BTreeMap<String, Option<String>>, touched: &BTreeSet<&str>) -> io::Result<()> {
    for (rel, content) in files {
        let path = out.join(rel);
        match content {
            Some(c) if touched.contains(rel.as_str()) => {
                let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
                write_file(&tmp, c.as_bytes())?;
                fs::rename(&tmp, &path).map_err(at(&path))?;
            }
            None if path.exists() => {
                fs::remove_file(&path).map_err(at(&path))?;
                if let Some(parent) = path.parent() {
                    prune_empty_parents(parent.to_path_buf(), out);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Removes the staging area and the trash.
fn clean_scratch(out: &Path) -> io::Result<()> {
    for scratch in [STAGING, TRASH] {
        let dir = out.join(scratch);
        if dir.is_dir() {
            fs::remove_dir_all(&dir).map_err(at(&dir))?;
        }
    }
    Ok(())
}

/// A writing run's scratch space, for runs that stream: each changed target
/// is staged as soon as it is rendered ([`Staging::stage`]), and all staged
/// targets are swapped in together once every target has succeeded
/// ([`Staging::finish`]); [`Staging::abort`] drops them, leaving the tree as
/// it was. The tree lock must be held throughout.
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
}

impl Staging {
    /// Checks every precondition of writing `plan` (its target directories
    /// and file paths; contents are not looked at, see [`check`]), repairs a
    /// swap a killed run left behind ([`recover`]) and opens the staging area.
    pub fn begin(out: &Path, plan: &Desired) -> io::Result<Staging> {
        check(out, plan)?;
        fs::create_dir_all(out).map_err(at(out))?;
        recover(out)?;
        Ok(Staging { out: out.to_path_buf() })
    }

    /// Compares target `dir` with `files` and stages it when they differ;
    /// returns the changes (empty: the target is current, nothing staged).
    pub fn stage(&self, dir: &str, files: &BTreeMap<String, String>) -> io::Result<Vec<Change>> {
        let changes = compare_target(&self.out, dir, files)?;
        if !changes.is_empty() {
            stage_target(&self.out, dir, files)?;
        }
        Ok(changes)
    }

    /// Swaps in the staged targets `dirs` (in order), then writes the
    /// single `files` that differ (their paths were checked by
    /// [`Staging::begin`]'s plan); returns the changes of those files.
    pub fn finish(self, dirs: &[String], files: &BTreeMap<String, Option<String>>) -> io::Result<Vec<Change>> {
        let changes = file_changes(&self.out, files)?;
        // The renames in order; deleting the old directories (most of the
        // time of a swap) after, in parallel.
        let mut trashed = Vec::with_capacity(dirs.len());
        for dir in dirs {
            trashed.push(move_in(&self.out, dir, true)?);
        }
        trashed
            .par_iter()
            .filter(|t| t.exists())
            .map(|t| fs::remove_dir_all(t).map_err(at(t)))
            .collect::<io::Result<Vec<()>>>()?;
        let touched: BTreeSet<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        write_files(&self.out, files, &touched)?;
        clean_scratch(&self.out)?;
        Ok(changes)
    }

    /// Drops everything staged.
    pub fn abort(self) -> io::Result<()> {
        clean_scratch(&self.out)
    }
}

/// The metadata of a rendered target, if the tree holds a readable one.
pub fn read_meta(out: &Path, target_dir: &str) -> Option<TargetMeta> {
    read_meta_checked(out, target_dir).ok().flatten()
}

/// The metadata of a rendered target: `None` when the tree holds none, an
/// error naming the file when it cannot be read or parsed. The fields are
/// not checked here; see `cli::targets::check_meta`.
pub fn read_meta_checked(out: &Path, target_dir: &str) -> Result<Option<TargetMeta>, String> {
    // Never through a link: the metadata of a linked target is not the tree's.
    check_path(out, &format!("{target_dir}/{TARGET_JSON}")).map_err(|e| e.to_string())?;
    let path = out.join(target_dir).join(TARGET_JSON);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    parse_meta(&bytes).map(Some).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the bytes of a `target.json`.
pub fn parse_meta(bytes: &[u8]) -> Result<TargetMeta, String> {
    serde_json::from_slice(bytes).map_err(|e| {
        format!("not a valid target.json ({e}); re-render the target, or delete the file so it is rendered afresh")
    })
}

/// Slots of environment `env` present in the tree, sorted.
pub fn list_slots(out: &Path, env: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(out.join(env)) else { return Vec::new() };
    let mut slots: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(TARGET_JSON).is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    slots.sort();
    slots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn apply_replaces_a_target_exactly_and_leaves_others_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        fs::create_dir_all(out.join("other")).unwrap();
        fs::write(out.join("other/keep.yaml"), "x").unwrap();
        let mut d = Desired::default();
        d.targets.insert("env".into(), files(&[("a.yaml", "1"), ("b/c.yaml", "2")]));
        apply(out, &d).unwrap();
        d.targets.insert("env".into(), files(&[("a.yaml", "1")]));
        let changes = apply(out, &d).unwrap();
        assert_eq!(changes, vec![Change { path: "env/b/c.yaml".into(), kind: ChangeKind::Removed }]);
        assert!(!out.join("env/b").exists());
        assert_eq!(fs::read_to_string(out.join("other/keep.yaml")).unwrap(), "x");
        assert!(apply(out, &d).unwrap().is_empty(), "second apply is a no-op");
        assert!(!out.join(STAGING).exists() && !out.join(TRASH).exists());
    }

    #[test]
    fn recover_puts_back_a_target_left_in_the_trash() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        fs::create_dir_all(out.join(TRASH).join("ai__pr-1-999")).unwrap();
        fs::write(out.join(TRASH).join("ai__pr-1-999/x.yaml"), "old").unwrap();
        fs::create_dir_all(out.join(STAGING).join("ai__pr-1-999")).unwrap();
        recover(out).unwrap();
        assert_eq!(fs::read_to_string(out.join("ai/pr-1/x.yaml")).unwrap(), "old");
        assert!(!out.join(STAGING).exists());
    }

    #[test]
    fn recover_never_moves_a_crafted_trash_entry_outside_the_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("rendered");
        for name in ["..__..__escaped-1", "..__x-1", "a__b__c-1", ".git-1"] {
            fs::create_dir_all(out.join(TRASH).join(name)).unwrap();
            fs::write(out.join(TRASH).join(name).join("f"), "evil").unwrap();
        }
        fs::write(out.join(TRASH).join("file-1"), "not a directory").unwrap();
        recover(&out).unwrap();
        assert!(!tmp.path().join("escaped").exists() && !tmp.path().parent().unwrap().join("escaped").exists());
        assert!(!tmp.path().join("x").exists() && !out.join("a").exists() && !out.join(".git").exists());
        assert!(!out.join("file").exists());
        assert!(!out.join(TRASH).exists());
    }

    #[test]
    fn recover_errors_name_the_path() {
        // A trash entry for target `a/b` whose parent `a` is a file: putting
        // it back fails, and the error says where.
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        fs::create_dir_all(out.join(TRASH).join("a__b-1")).unwrap();
        fs::write(out.join("a"), "not a dir").unwrap();
        let e = recover(out).unwrap_err().to_string();
        assert!(e.contains(&out.join("a").display().to_string()), "{e}");
    }
}
