//! Who draws a run's walls (docs/security.md, "Trust model").
//!
//! A run onto a deploy branch (`--branch`) from the protected ref records the
//! walls of its inventory there (`.codex-k8s/walls.json` at the tree's root)
//! and writes every environment's shared glue. A run onto the deploy branch
//! from any other source — a pull request's head — renders slots only, under
//! the walls the protected render recorded (or those of `--walls-from REV`):
//! a head whose walls differ is refused, one line per setting, before
//! anything is written, and it never writes the shared glue. A run without a
//! deploy branch (the work tree, `--commit`) is its own authority.

use std::path::Path;

use anyhow::{bail, Result};

use super::state::TreeState;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::inventory::walls::show;
use crate::inventory::{Inventory, Walls};
use crate::render::{Request, Source};

use crate::layout::WALLS_JSON;

/// The protected ref when neither `--protected-ref` nor
/// `CODEX_K8S_PROTECTED_REF` names one.
pub const DEFAULT_PROTECTED_REF: &str = "refs/heads/main";

/// Whose walls bound a run, and what it may write.
#[derive(Debug, Clone)]
pub enum Authority {
    /// No deploy branch: the project's own settings; writes everything.
    Own,
    /// The protected ref onto the deploy branch: records its walls and
    /// writes the shared glue of every environment.
    Protected,
    /// Another source onto the deploy branch: renders slots only, under
    /// `walls`, and writes no shared glue.
    Head {
        /// The walls it renders under.
        walls: Walls,
        /// Where they were read, for messages.
        from: String,
        /// Read from the deploy branch's record (not `--walls-from`): a
        /// rebuilt commit checks they still hold ([`still_hold`]).
        recorded: bool,
    },
}

impl Authority {
    /// Whether the run writes the walls record and every environment's
    /// shared glue (the Argo CD file).
    pub fn writes_shared(&self) -> bool {
        !matches!(self, Authority::Head { .. })
    }
}

/// The authority of a run onto deploy branch `branch` (none: the work tree)
/// from `source`, with `explicit` walls from `--walls-from` when given (they
/// hold a run from any source but the protected ref, with or without a
/// deploy branch).
pub fn authority(
    branch: Option<&str>,
    source: Option<&Source>,
    protected_ref: &str,
    explicit: Option<(Walls, String)>,
    state: &dyn TreeState,
) -> Result<Authority> {
    let protected = Source::normalize_ref(protected_ref);
    let is_protected = source.is_some_and(|s| s.git_ref == protected);
    match (branch, explicit) {
        (Some(_), _) if is_protected => return Ok(Authority::Protected),
        (_, Some((walls, from))) => return Ok(Authority::Head { walls, from, recorded: false }),
        (None, None) => return Ok(Authority::Own),
        (Some(_), None) => {}
    }
    let branch = branch.unwrap_or_default();
    let from = state.walls_file();
    match state.read_walls()? {
        Some(walls) => Ok(Authority::Head { walls, from, recorded: true }),
        None => bail!(
            "{branch} holds no walls record ({from}): a slot is rendered under the walls its protected branch recorded, and {protected} has not rendered onto {branch} yet. Run the protected render first (`codex-k8s render --all --source-ref {protected} --branch {branch} --push <remote>`, main's CI), or name the protected revision with --walls-from"
        ),
    }
}

/// The walls a head's run changed: each setting at its file:line in the
/// head, with both values.
pub fn changes(inventory: &Inventory, authority: &Authority) -> Diagnostics {
    let Authority::Head { walls, from, .. } = authority else { return Diagnostics::default() };
    let mut problems = Diagnostics::default();
    for change in walls.changes(&Walls::of(inventory)) {
        let (file, at) = inventory.setting_location(&change.setting);
        let message = format!(
            "`{}` is a wall of the slot: the protected branch has {}, this source has {}",
            change.setting,
            show(&change.protected),
            show(&change.head)
        );
        let d = match at {
            Some(at) => inventory.diagnostic(&file, at, message),
            None => Diagnostic::error(&file, None, message),
        };
        problems.push(d.with_help(format!(
            "walls come from the protected branch ({from}): merge this change to it first (a maintainer's pull request), or rebase onto it if it changed there"
        )));
    }
    problems
}

/// The targets a head's run may not render: anything but a slot of a slot
/// environment the walls declare.
pub fn targets(inventory: &Inventory, authority: &Authority, requests: &[Request]) -> Diagnostics {
    let Authority::Head { walls, .. } = authority else { return Diagnostics::default() };
    let mut problems = Diagnostics::default();
    let allowed = walls.slot_environments();
    for r in requests {
        if r.target.slot.is_none() || !allowed.contains(&r.target.env.as_str()) {
            problems.push(
                Diagnostic::error(&inventory.file, None, format!("{}: a pull request's source renders only slots of the slot environments its protected branch declares ({})", r.target, allowed.join(", ")))
                    .with_help("plain environments and their glue are rendered from the protected branch (main's CI); render a slot: --env <slot environment> --slot <name>"),
            );
        }
    }
    problems
}

/// The walls of the project at revision `rev` of the repository holding
/// `inventory_file` (`--walls-from`).
pub fn at_revision(inventory_file: &Path, rev: &str) -> Result<(Walls, String)> {
    let checkout = crate::git::Checkout::discover(inventory_file.parent().unwrap_or(Path::new(".")))?;
    let root = inventory_file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let project = checkout.rel(&root.canonicalize()?)?;
    let snap = checkout.export_project(rev, &project, &[])?;
    let name = inventory_file.file_name().unwrap_or(inventory_file.as_os_str());
    let loaded = crate::inventory::load(&snap.root.join(name)).map_err(|ds| {
        anyhow::anyhow!("--walls-from {rev}: the inventory there does not load ({} problem(s); check it out and run `codex-k8s validate`)", ds.0.len())
    })?;
    Ok((Walls::of(&loaded.inventory), format!("{rev} ({})", snap.commit)))
}

/// Lays the run's authority over the glue files it would write: a run that
/// writes the shared files adds every environment's Argo CD file (a slot
/// environment's AppProject and ApplicationSet exist before its first slot)
/// and the walls record; a head's run keeps only its per-target files.
pub fn glue(
    inventory: &Inventory,
    authority: &Authority,
    out_prefix: &str,
    files: &mut std::collections::BTreeMap<String, Option<String>>,
) {
    if !authority.writes_shared() {
        files.retain(|path, _| !path.starts_with(&format!("{}/", crate::layout::ARGOCD_DIR)));
        return;
    }
    for env in inventory.environments.keys() {
        files.insert(crate::layout::argocd_path(env), Some(crate::tree::argocd_file(inventory, env, out_prefix)));
    }
    files.insert(WALLS_JSON.to_owned(), Some(Walls::of(inventory).to_json()));
}

/// On a rebuilt commit (another push won the race), the walls a head's run
/// rendered under must still be the ones the deploy branch records: a
/// protected render that changed them meanwhile refuses the push.
pub fn still_hold(
    repo: &git2::Repository,
    tip: git2::Oid,
    prefix: &str,
    authority: &Authority,
) -> crate::git::Result<()> {
    let Authority::Head { walls, recorded: true, .. } = authority else { return Ok(()) };
    let state = super::state::GitTree::at(repo, Some(tip), prefix, "the remote tip");
    match state.read_walls() {
        Ok(Some(now)) if &now == walls => Ok(()),
        _ => Err(crate::git::Error::Refused(format!(
            "the walls on the remote tip changed while this slot rendered ({}): run the job again to render under the new walls",
            state.walls_file()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walls(max: u32) -> Walls {
        let mut w = Walls { version: Walls::VERSION, ..Walls::default() };
        w.settings.insert("environments.ai.maxSlots".into(), serde_json::json!(max));
        w
    }

    /// A commit whose tree holds `rendered/.codex-k8s/walls.json` = `record`.
    fn commit_with(repo: &git2::Repository, record: &Walls) -> git2::Oid {
        let blob = repo.blob(record.to_json().as_bytes()).unwrap();
        let mut meta = repo.treebuilder(None).unwrap();
        meta.insert("walls.json", blob, 0o100644).unwrap();
        let meta = meta.write().unwrap();
        let mut rendered = repo.treebuilder(None).unwrap();
        rendered.insert(".codex-k8s", meta, 0o040000).unwrap();
        let rendered = rendered.write().unwrap();
        let mut root = repo.treebuilder(None).unwrap();
        root.insert("rendered", rendered, 0o040000).unwrap();
        let tree = repo.find_tree(root.write().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        repo.commit(None, &sig, &sig, "walls", &tree, &[]).unwrap()
    }

    /// A push rebuilt on a tip where the protected render changed the walls
    /// meanwhile is refused; walls named with --walls-from are the run's own.
    #[test]
    fn a_rebuilt_head_commit_is_refused_when_the_walls_changed_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let tip = commit_with(&repo, &walls(20));
        let head = |max, recorded| Authority::Head { walls: walls(max), from: "record".into(), recorded };
        assert!(still_hold(&repo, tip, "rendered", &head(20, true)).is_ok());
        let refused = still_hold(&repo, tip, "rendered", &head(30, true)).unwrap_err().to_string();
        assert!(refused.contains("walls on the remote tip changed"), "{refused}");
        assert!(still_hold(&repo, tip, "rendered", &head(30, false)).is_ok());
        assert!(still_hold(&repo, tip, "rendered", &Authority::Protected).is_ok());
    }
}
