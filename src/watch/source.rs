//! What git says about slots, and removing slots from git.
//!
//! The watcher reads the *committed* tree (the branch tip, after a fetch when
//! a remote is set), never the work tree: git is the desired state the GitOps
//! controller follows. Removal is one commit for every slot of a pass, pushed
//! with the same fetch-rebuild-retry as `render --push`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};

use super::ttl::{GitSlot, GitState, RemovedSlot};
use super::{Result, Timestamp};
use crate::git;
use crate::tree::{self, TargetMeta, TARGET_JSON};

/// Where the rendered tree lives.
#[derive(Debug, Clone)]
pub struct Source {
    /// A path inside the repository's work tree.
    pub repo: PathBuf,
    /// The rendered tree's path inside the repository (e.g. `rendered`).
    pub prefix: String,
    /// Fetch from and push to this remote (e.g. `origin`); none: local only.
    pub remote: Option<String>,
    /// The branch to follow; none: the checked-out branch.
    pub branch: Option<String>,
    /// The inventory file the command line names (`-f`, after `-C`): it
    /// gives each slot's namespace. Relative paths are read from the
    /// process's working directory.
    pub inventory: PathBuf,
}

impl Source {
    fn join(&self, rest: &str) -> String {
        crate::layout::join(&self.prefix, rest)
    }

    fn open(&self) -> Result<Repository> {
        Ok(Repository::discover(&self.repo).map_err(git::Error::from)?)
    }

    fn branch(&self, repo: &Repository) -> Result<String> {
        if let Some(b) = &self.branch {
            return Ok(b.trim_start_matches("refs/heads/").to_owned());
        }
        let head = repo.find_reference("HEAD").map_err(git::Error::from)?;
        match head.symbolic_target() {
            Some(t) => Ok(t.trim_start_matches("refs/heads/").to_owned()),
            None => Err(git::Error::DetachedHead.into()),
        }
    }

    /// The tip to read: with a remote, the remote branch just fetched (into
    /// a ref of the watcher's own, `refs/codex-k8s/remote/<branch>`, or with
    /// [`Fetch::NoRefs`] into no ref at all); the local branch, the index and
    /// the work tree are never moved. Without a remote, the local branch.
    fn tip(&self, repo: &Repository, fetch: Fetch) -> Result<Option<Oid>> {
        let branch = self.branch(repo)?;
        if let Some(remote) = &self.remote {
            return Ok(match fetch {
                Fetch::OwnRef => git::fetch(repo, remote, &branch)?,
                Fetch::NoRefs => git::fetch_tip(repo, remote, &branch)?,
            });
        }
        Ok(repo.refname_to_id(&format!("refs/heads/{branch}")).ok())
    }
}

/// How [`read_state_with`] reaches the remote tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// Fetch into the watcher's own ref, `refs/codex-k8s/remote/<branch>`.
    OwnRef,
    /// Download the tip's objects without writing any ref, not even
    /// `FETCH_HEAD` (`--dry-run`: the checkout's refs stay as they are).
    NoRefs,
}

/// The `target.json` of the slot whose tree is `slot_tree` (at `dir`), or
/// why it cannot be read. Looked up from the slot's own tree: a lookup from
/// the root would parse the environment's tree (one entry per slot) again
/// for every slot.
/// The namespace each slot must have, computed from the inventory at the
/// source's work tree, never from a committed `target.json` (which a pull
/// request writes). Where the inventory cannot say (unreadable, the
/// template fails) a slot gets the empty name, which no namespace has.
pub(crate) struct SlotNamespaces {
    loaded: Option<(crate::inventory::Inventory, crate::template::Engine)>,
}

impl SlotNamespaces {
    /// Loads the inventory `src.inventory` names.
    pub(crate) fn load(src: &Source) -> SlotNamespaces {
        let loaded = crate::inventory::load(&src.inventory).ok().and_then(|l| {
            let engine = crate::template::Engine::new(&l.inventory).ok()?;
            Some((l.inventory, engine))
        });
        SlotNamespaces { loaded }
    }

    /// The namespace of slot `slot` of `env`; empty when unknown.
    pub(crate) fn of(&self, env: &str, slot: &str) -> String {
        let Some((inventory, engine)) = &self.loaded else { return String::new() };
        let target = crate::render::Target { env: env.to_owned(), slot: Some(slot.to_owned()) };
        crate::render::isolation::namespace_of(inventory, engine, &target).unwrap_or_default()
    }
}

fn read_target_json(repo: &Repository, slot_tree: Oid, dir: &str) -> std::result::Result<TargetMeta, String> {
    let path = format!("{dir}/{TARGET_JSON}");
    let tree = repo.find_tree(slot_tree).map_err(|_| format!("{dir} is not a directory"))?;
    let entry = tree.get_path(Path::new(TARGET_JSON)).map_err(|_| format!("{path} is missing"))?;
    let blob = repo.find_blob(entry.id()).map_err(|e| format!("{path}: {}", e.message()))?;
    tree::parse_meta(blob.content()).map_err(|e| format!("{path}: {e}"))
}

fn to_time(seconds: i64) -> Option<Timestamp> {
    Timestamp::from_second(seconds).ok()
}

/// Reads the slots of `envs` at the tip, with the time of the last commit
/// that changed each; and, for each of `candidates` (env, slot) absent from
/// the tip, the commit that removed it. With a remote, fetches into the
/// watcher's own ref ([`Fetch::OwnRef`]).
pub fn read_state(src: &Source, envs: &[String], candidates: &[(String, String)]) -> Result<GitState> {
    read_state_with(src, envs, candidates, Fetch::OwnRef)
}

/// [`read_state`], reaching the remote tip as `fetch` says.
pub fn read_state_with(
    src: &Source,
    envs: &[String],
    candidates: &[(String, String)],
    fetch: Fetch,
) -> Result<GitState> {
    let repo = src.open()?;
    let Some(tip) = src.tip(&repo, fetch)? else { return Ok(GitState::default()) };
    let commit = repo.find_commit(tip).map_err(git::Error::from)?;
    let tree = commit.tree().map_err(git::Error::from)?;
    let mut slots = Vec::new();
    for env in envs {
        let env_dir = src.join(env);
        let Ok(entry) = tree.get_path(Path::new(&env_dir)) else { continue };
        if entry.kind() != Some(ObjectType::Tree) {
            continue;
        }
        let env_tree = repo.find_tree(entry.id()).map_err(git::Error::from)?;
        for e in env_tree.iter() {
            let Some(name) = e.name() else { continue };
            if e.kind() != Some(ObjectType::Tree) {
                continue;
            }
            let dir = format!("{env_dir}/{name}");
            // A slot present at the tip is live whatever its target.json
            // says: unreadable metadata is reported, never read as "absent".
            let (namespace, host, unreadable) = match read_target_json(&repo, e.id(), &dir) {
                Ok(meta) => (Some(meta.namespace), meta.host, None),
                Err(why) => (None, None, Some(why)),
            };
            slots.push(GitSlot {
                env: env.clone(),
                slot: name.to_owned(),
                namespace,
                host,
                last_commit: None,
                unreadable,
            });
        }
    }
    let present: BTreeSet<(String, String)> = slots.iter().map(|s| (s.env.clone(), s.slot.clone())).collect();
    let absent: Vec<&(String, String)> = candidates.iter().filter(|c| !present.contains(*c)).collect();
    let mut dirs: Vec<String> =
        slots.iter().map(|s| src.join(&crate::layout::target_dir(&s.env, Some(&s.slot)))).collect();
    dirs.extend(absent.iter().map(|(e, s)| src.join(&format!("{e}/{s}"))));
    let touches = git::last_touches(&repo, tip, &dirs)?;
    for s in &mut slots {
        s.last_commit = touches.get(&src.join(&format!("{}/{}", s.env, s.slot))).and_then(|t| to_time(t.time));
    }
    let mut removed = BTreeMap::new();
    for (env, slot) in absent {
        let dir = src.join(&format!("{env}/{slot}"));
        if let Some(t) = touches.get(&dir) {
            if let Some(at) = to_time(t.time) {
                let namespace =
                    t.removed.and_then(|before| read_target_json(&repo, before, &dir).ok()).map(|m| m.namespace);
                removed.insert((env.clone(), slot.clone()), RemovedSlot { removed_at: at, namespace });
            }
        }
    }
    Ok(GitState { slots, removed, tip: Some(tip) })
}

/// What [`remove_slots`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Committed (and pushed, with a remote).
    Committed(Oid),
    /// Git already lacked them.
    Unchanged,
    /// The branch moved since `base` (a push was rejected, or the local
    /// branch changed): nothing was written; read git again and decide again.
    Moved,
}

/// Removes `slots` (env, slot) from git in one commit on top of `base` (the
/// tip the decision was made on) — each slot's directory and its Flux file.
///
/// With a remote the commit is built on the fetched remote tip under a ref
/// of the watcher's own (`refs/codex-k8s/watch/<branch>`) and pushed with a
/// compare-and-swap against `base`; the local branch, index and work tree
/// are never touched. Without a remote it commits on the local branch (and,
/// when that branch is checked out, removes the files from the work tree
/// like `slots remove --commit`), refusing when the work tree holds changes
/// under a slot it would remove.
pub fn remove_slots(
    src: &Source,
    slots: &[(String, String)],
    why: &str,
    identity: &str,
    base: Option<Oid>,
) -> Result<Removal> {
    if slots.is_empty() {
        return Ok(Removal::Unchanged);
    }
    let Some(base) = base else { return Ok(Removal::Unchanged) };
    let repo = src.open()?;
    let _lock = crate::publish::lock_repo(&repo)?;
    let paths: Vec<String> = slots
        .iter()
        .flat_map(|(env, slot)| [src.join(&format!("{env}/{slot}")), src.join(&tree::flux_path(env, Some(slot)))])
        .collect();
    let desired = crate::publish::slots::removal(slots);
    let reason = crate::publish::slots::Reason { by: format!("watch ({identity})"), why: why.to_owned() };
    let req = crate::publish::slots::removal_request(slots, &src.prefix, &reason, None);
    let branch = src.branch(&repo)?;
    let refname = format!("refs/heads/{branch}");
    let outcome = match &src.remote {
        Some(remote) => {
            let work = format!("refs/codex-k8s/watch/{branch}");
            repo.reference(&work, base, true, "codex-k8s watch: base").map_err(git::Error::from)?;
            let outcome = git::commit_on_ref(&repo, &work, &req)?;
            if outcome == git::Outcome::Unchanged {
                return Ok(Removal::Unchanged);
            }
            if !git::push_ref_once(&repo, remote, &work, &branch, Some(base))? {
                return Ok(Removal::Moved);
            }
            outcome
        }
        None => {
            if repo.refname_to_id(&refname).ok() != Some(base) {
                return Ok(Removal::Moved);
            }
            let head_is_branch = repo.find_reference("HEAD").ok().and_then(|h| h.symbolic_target().map(str::to_owned))
                == Some(refname.clone());
            match (head_is_branch, repo.workdir()) {
                (true, Some(workdir)) => {
                    refuse_local_changes(&repo, &paths)?;
                    tree::apply(&workdir.join(&src.prefix), &desired)?;
                    git::commit_worktree(&repo, &req)?
                }
                _ => git::commit_on_ref(&repo, &refname, &req)?,
            }
        }
    };
    Ok(match outcome {
        git::Outcome::Committed(oid) => Removal::Committed(oid),
        git::Outcome::Unchanged => Removal::Unchanged,
    })
}

/// Errors when the work tree or index differs from HEAD under `paths`.
fn refuse_local_changes(repo: &Repository, paths: &[String]) -> Result<()> {
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true).recurse_untracked_dirs(true);
    for p in paths {
        opts.pathspec(p);
    }
    let statuses = repo.statuses(Some(&mut opts)).map_err(git::Error::from)?;
    let changed: Vec<String> = statuses
        .iter()
        .filter(|e| !e.status().is_ignored() && e.status() != git2::Status::CURRENT)
        .filter_map(|e| e.path().map(str::to_owned))
        .take(5)
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(super::Error::LocalWork(format!(
        "refusing to remove slots from the checkout: uncommitted changes under them ({}); commit or discard them, or run the watcher on a clone of its own with --remote",
        changed.join(", ")
    )))
}
