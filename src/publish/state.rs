//! What the tree already holds, read from the work tree or from a branch:
//! its slots and each target's `target.json` (remembered run id, overrides
//! and owner), checked like command-line input because a pull request can
//! edit it. Also where the tree lives: `--out` checked to stay inside the
//! project, and its path inside the repository.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::inventory::names::{dns_label_problem, SlotName};
use crate::inventory::values;
use crate::inventory::Inventory;
use crate::render::Target;
use crate::tree;

/// The output directory, checked to stay inside the project.
pub fn out_dir(inventory: &Inventory, out: &Path) -> Result<PathBuf> {
    if out.is_absolute() || out.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        bail!(
            "--out {} must be a relative path inside the project directory ({})",
            out.display(),
            inventory.root.display()
        );
    }
    if out.as_os_str().is_empty() || out == Path::new(".") {
        bail!("--out must name a directory below the project root, e.g. `rendered`");
    }
    let full = inventory.root.join(out);
    // A symlinked --out, or a symlink anywhere on its way (`a/b` with `a` a
    // link and `b` not yet created), could point anywhere: resolve the
    // deepest part that exists and refuse it unless it stays inside.
    let existing = full.ancestors().find(|p| p.symlink_metadata().is_ok()).unwrap_or(&inventory.root);
    let real = existing.canonicalize().map_err(|e| {
        anyhow::anyhow!(
            "--out {}: cannot resolve {} ({e}); use a plain directory inside the project",
            out.display(),
            existing.display()
        )
    })?;
    if !real.starts_with(&inventory.root) {
        bail!("--out {} resolves outside the project directory", out.display());
    }
    Ok(full)
}

/// The tree's path relative to the repository root (what Argo CD and Flux see).
pub fn out_prefix(inventory: &Inventory, out: &Path) -> String {
    let repo_root = git2::Repository::discover(&inventory.root).ok().and_then(|r| r.workdir().map(Path::to_path_buf));
    let base = repo_root.and_then(|r| r.canonicalize().ok()).unwrap_or_else(|| inventory.root.clone());
    let out = out.canonicalize().unwrap_or_else(|_| out.to_path_buf());
    let rel = out
        .strip_prefix(&base)
        .or_else(|_| out.strip_prefix(&inventory.root))
        .map(Path::to_path_buf)
        .unwrap_or(out.clone());
    rel.to_string_lossy().replace('\\', "/")
}

/// Checks a run id, from `--run-id` or read back from a `target.json`.
pub fn check_run_id(id: &str) -> Result<(), String> {
    match dns_label_problem(id) {
        Some(problem) => Err(format!("invalid --run-id `{id}`: it {problem}")),
        None => Ok(()),
    }
}

/// Checks a slot name, from `--slot` or read back from the tree.
pub fn check_slot(slot: &str) -> Result<(), String> {
    SlotName::parse(slot).map(drop)
}

/// Checks a `target.json` read back from the tree or from git (`file` names
/// it) with the same checks as the command-line flags: it is untrusted input,
/// a pull request can edit it.
pub fn check_meta(inventory: &Inventory, file: &str, target: &Target, meta: &tree::TargetMeta) -> Result<()> {
    // Every field is quoted escaped and cut: the file is untrusted, and
    // the message may reach a log or a pull-request comment.
    let fail = |e: String| anyhow::anyhow!("{file}: {e}; fix or delete the file (a render recreates it)");
    let quote = |text: &str| crate::diagnostic::escape_line(text, 80);
    if meta.project != inventory.project {
        return Err(fail(format!(
            "records project `{}`, but services.yaml is project `{}`",
            quote(&meta.project),
            inventory.project
        )));
    }
    if meta.env != target.env || meta.slot != target.slot {
        let recorded = format!("{}/{}", quote(&meta.env), quote(meta.slot.as_deref().unwrap_or("")));
        return Err(fail(format!("records target {recorded}, but lies in the directory of {target}")));
    }
    if let Some(slot) = &meta.slot {
        check_slot(slot).map_err(|e| fail(crate::diagnostic::escape_line(&e, 200)))?;
    }
    if let Some(problem) = dns_label_problem(&meta.namespace) {
        return Err(fail(format!("invalid namespace `{}`: it {problem}", quote(&meta.namespace))));
    }
    if let Some(problem) = meta.host.as_deref().and_then(crate::inventory::names::host_problem) {
        let host = quote(meta.host.as_deref().unwrap_or_default());
        return Err(fail(format!("invalid host `{host}`: it {problem}")));
    }
    if let Some(id) = &meta.run_id {
        check_run_id(id).map_err(|e| fail(crate::diagnostic::escape_line(&e, 200)))?;
    }
    if let Some(source) = &meta.source {
        source.check().map_err(fail)?;
    }
    for o in values::from_recorded(&meta.sets, "`sets`").map_err(fail)? {
        o.check(inventory).map_err(fail)?;
    }
    Ok(())
}

/// What the tree already holds: slots and their remembered run ids,
/// overrides and owners, read from the work tree or from a branch.
pub trait TreeState {
    /// The target metadata of `dir` (`env` or `env/slot`): `None` when
    /// absent, an error naming the file when unreadable.
    fn read_meta(&self, dir: &str) -> Result<Option<tree::TargetMeta>, String>;
    /// How messages name the `target.json` of `dir`.
    fn meta_file(&self, dir: &str) -> String;
    /// The slots of `env`, sorted.
    fn list_slots(&self, env: &str) -> Vec<String>;
    /// The walls record the protected render left (none: absent), checked.
    fn read_walls(&self) -> Result<Option<crate::inventory::Walls>>;
    /// How messages name the walls record.
    fn walls_file(&self) -> String;
}

/// A walls record's bytes (`file` names it), checked.
fn parse_walls(file: &str, bytes: &[u8]) -> Result<crate::inventory::Walls> {
    crate::inventory::Walls::from_json(bytes)
        .map_err(|e| anyhow::anyhow!("{file}: {e}; the protected render rewrites it (main's CI)"))
}

/// The tree on disk.
pub struct DiskTree<'a>(pub &'a Path);

impl TreeState for DiskTree<'_> {
    fn read_meta(&self, dir: &str) -> Result<Option<tree::TargetMeta>, String> {
        tree::read_meta_checked(self.0, dir)
    }
    fn meta_file(&self, dir: &str) -> String {
        self.0.join(dir).join(tree::TARGET_JSON).display().to_string()
    }
    fn list_slots(&self, env: &str) -> Vec<String> {
        tree::list_slots(self.0, env)
    }
    fn read_walls(&self) -> Result<Option<crate::inventory::Walls>> {
        let path = self.0.join(crate::layout::WALLS_JSON);
        let Ok(meta) = path.symlink_metadata() else { return Ok(None) };
        if !meta.is_file() || meta.len() > crate::inventory::walls::MAX_RECORD_BYTES as u64 {
            bail!("{}: not a regular file of at most 1 MiB; the protected render rewrites it", self.walls_file());
        }
        let bytes = std::fs::read(&path)?;
        parse_walls(&self.walls_file(), &bytes).map(Some)
    }
    fn walls_file(&self) -> String {
        self.0.join(crate::layout::WALLS_JSON).display().to_string()
    }
}

/// The tree as committed on a branch (or at any commit).
pub struct GitTree<'r> {
    /// The repository.
    pub repo: &'r git2::Repository,
    /// The commit's root tree (none for a branch that does not exist yet).
    pub tree: Option<git2::Tree<'r>>,
    /// Path of `--out` inside the repository.
    pub prefix: String,
    /// How messages name where the tree was read (e.g. `origin/rendered`).
    pub place: String,
}

impl<'r> GitTree<'r> {
    /// The tree at commit `tip` (none: an empty tree).
    pub fn at(repo: &'r git2::Repository, tip: Option<git2::Oid>, prefix: &str, place: &str) -> Self {
        let tree = tip.and_then(|t| repo.find_commit(t).ok()).and_then(|c| c.tree().ok());
        GitTree { repo, tree, prefix: prefix.to_owned(), place: place.to_owned() }
    }

    fn path(&self, rest: &str) -> String {
        crate::layout::join(&self.prefix, rest)
    }
}

impl TreeState for GitTree<'_> {
    fn read_meta(&self, dir: &str) -> Result<Option<tree::TargetMeta>, String> {
        let Some(root) = self.tree.as_ref() else { return Ok(None) };
        let Ok(entry) = root.get_path(Path::new(&self.path(&format!("{dir}/{}", tree::TARGET_JSON)))) else {
            return Ok(None);
        };
        let blob = self.repo.find_blob(entry.id()).map_err(|e| format!("{}: {}", self.meta_file(dir), e.message()))?;
        tree::parse_meta(blob.content()).map(Some).map_err(|e| format!("{}: {e}", self.meta_file(dir)))
    }
    fn meta_file(&self, dir: &str) -> String {
        format!("{} (committed on {})", self.path(&format!("{dir}/{}", tree::TARGET_JSON)), self.place)
    }
    fn read_walls(&self) -> Result<Option<crate::inventory::Walls>> {
        let Some(root) = self.tree.as_ref() else { return Ok(None) };
        let Ok(entry) = root.get_path(Path::new(&self.path(crate::layout::WALLS_JSON))) else { return Ok(None) };
        let blob =
            self.repo.find_blob(entry.id()).map_err(|e| anyhow::anyhow!("{}: {}", self.walls_file(), e.message()))?;
        if blob.size() > crate::inventory::walls::MAX_RECORD_BYTES {
            bail!("{}: over 1 MiB; the protected render rewrites it", self.walls_file());
        }
        parse_walls(&self.walls_file(), blob.content()).map(Some)
    }
    fn walls_file(&self) -> String {
        format!("{} (committed on {})", self.path(crate::layout::WALLS_JSON), self.place)
    }
    fn list_slots(&self, env: &str) -> Vec<String> {
        let Some(root) = &self.tree else { return Vec::new() };
        let Ok(entry) = root.get_path(Path::new(&self.path(env))) else { return Vec::new() };
        let Ok(env_tree) = self.repo.find_tree(entry.id()) else { return Vec::new() };
        let mut slots: Vec<String> = env_tree
            .iter()
            .filter(|e| e.kind() == Some(git2::ObjectType::Tree))
            .filter_map(|e| e.name().map(str::to_owned))
            .filter(|name| !matches!(self.read_meta(&format!("{env}/{name}")), Ok(None)))
            .collect();
        slots.sort();
        slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;

    fn inventory_at(root: &Path) -> Inventory {
        std::fs::write(
            root.join("services.yaml"),
            "apiVersion: codex-k8s.io/v1alpha1\nkind: ServiceStack\nproject: p\nenvironments: {dev: {namespace: p-dev}}\n",
        )
        .unwrap();
        crate::inventory::load(&root.join("services.yaml")).unwrap().inventory
    }

    #[cfg(unix)]
    #[test]
    fn out_dir_refuses_a_path_through_a_symlink_that_leads_out() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("project");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let inv = inventory_at(&root);
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::os::unix::fs::symlink("/nonexistent-codex-k8s", root.join("dangling")).unwrap();
        for bad in ["link", "link/rendered", "link/a/b", "dangling", "dangling/x", "/tmp/x", "../x", "a/../../x"] {
            assert!(out_dir(&inv, Path::new(bad)).is_err(), "{bad} accepted");
        }
        std::fs::create_dir_all(root.join("inside")).unwrap();
        std::os::unix::fs::symlink(root.join("inside"), root.join("inner-link")).unwrap();
        for good in ["rendered", "a/b/c", "inner-link/rendered"] {
            assert!(out_dir(&inv, Path::new(good)).is_ok(), "{good} refused");
        }
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    }
}
