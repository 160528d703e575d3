//! What git says about slots, and removing slots from git.
//!
//! The watcher reads the *committed* tree (the branch tip, after a fetch when
//! a remote is set), never the work tree: git is the desired state the GitOps
//! controller follows. Removal is one commit for every slot of a pass, pushed
//! with the same fetch-rebuild-retry as `render --push`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use git2::{ObjectType, Oid, Repository, Tree};

use super::ttl::{GitSlot, GitState, RemovedSlot};
use super::{Result, Timestamp};
use crate::git;
use crate::tree::{self, TargetMeta, TARGET_JSON};

/// How far back the history walk looks for the last change of a slot.
const MAX_COMMITS: usize = 5000;

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

fn entry_id(tree: &Tree<'_>, path: &str) -> Option<Oid> {
    tree.get_path(Path::new(path)).ok().map(|e| e.id())
}

/// The `target.json` of the slot whose tree is `slot_tree` (at `dir`), or
/// why it cannot be read. Looked up from the slot's own tree: a lookup from
/// the root would parse the environment's tree (one entry per slot) again
/// for every slot.
fn read_target_json(repo: &Repository, slot_tree: Oid, dir: &str) -> std::result::Result<TargetMeta, String> {
    let path = format!("{dir}/{TARGET_JSON}");
    let tree = repo.find_tree(slot_tree).map_err(|_| format!("{dir} is not a directory"))?;
    let entry = tree.get_path(Path::new(TARGET_JSON)).map_err(|_| format!("{path} is missing"))?;
    let blob = repo.find_blob(entry.id()).map_err(|e| format!("{path}: {}", e.message()))?;
    serde_json::from_slice(blob.content()).map_err(|e| format!("{path}: {e}"))
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
    let touches = last_touches(&repo, tip, &dirs)?;
    for s in &mut slots {
        s.last_commit = touches.get(&src.join(&format!("{}/{}", s.env, s.slot))).and_then(|t| to_time(t.time));
    }
    let mut removed = BTreeMap::new();
    for (env, slot) in absent {
        if let Some(t) = touches.get(&src.join(&format!("{env}/{slot}"))) {
            if let Some(at) = to_time(t.time) {
                removed.insert(
                    (env.clone(), slot.clone()),
                    RemovedSlot { removed_at: at, namespace: t.namespace_before.clone() },
                );
            }
        }
    }
    Ok(GitState { slots, removed, tip: Some(tip) })
}

struct Touch {
    time: i64,
    /// For a removal: the namespace in the `target.json` the directory had.
    namespace_before: Option<String>,
}

/// For each directory, the newest commit (first-parent comparison) that
/// changed, added or removed it, walking back from `tip` once for all of
/// them. Directories are grouped by their parent directory: a commit whose
/// parent directory is unchanged is skipped with one id comparison, and a
/// changed one is compared entry by entry. Each parent directory's entries
/// are read once per distinct tree (a commit's "before" is its parent's
/// "now"), so a walk costs O(commits × changed directories' entries), with
/// no per-slot walk and no per-slot tree lookup from the root.
fn last_touches(repo: &Repository, tip: Oid, dirs: &[String]) -> Result<BTreeMap<String, Touch>> {
    let mut found = BTreeMap::new();
    if dirs.is_empty() {
        return Ok(found);
    }
    git::require_full_history(repo)?;
    // parent directory -> (entry name -> full dir), for the dirs still wanted.
    let mut wanted: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for dir in dirs {
        let (parent, name) = dir.rsplit_once('/').unwrap_or(("", dir.as_str()));
        wanted.entry(parent.to_owned()).or_default().insert(name.to_owned(), dir.clone());
    }
    let mut remaining: usize = wanted.values().map(BTreeMap::len).sum();
    // The entries of the tree last read for each parent directory.
    let mut cache: BTreeMap<String, (Option<Oid>, Rc<Entries>)> = BTreeMap::new();
    let mut walk = repo.revwalk().map_err(git::Error::from)?;
    walk.set_sorting(git2::Sort::TIME | git2::Sort::TOPOLOGICAL).map_err(git::Error::from)?;
    walk.push(tip).map_err(git::Error::from)?;
    for oid in walk.take(MAX_COMMITS) {
        if remaining == 0 {
            break;
        }
        let commit = repo.find_commit(oid.map_err(git::Error::from)?).map_err(git::Error::from)?;
        let tree = commit.tree().map_err(git::Error::from)?;
        let parent_tree = commit.parents().next().map(|p| p.tree()).transpose().map_err(git::Error::from)?;
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
                let namespace_before = match (a, b) {
                    (None, Some(removed)) => read_target_json(repo, removed, &dir).ok().map(|m| m.namespace),
                    _ => None,
                };
                found.insert(dir, Touch { time: commit.time().seconds(), namespace_before });
                remaining -= 1;
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
    let mut updates = git::Updates::new();
    let mut desired = tree::Desired::default();
    let mut paths = Vec::new();
    for (env, slot) in slots {
        let dir = src.join(&format!("{env}/{slot}"));
        let flux = src.join(&tree::flux_path(env, Some(slot)));
        updates.insert(dir.clone(), git::Update::Remove);
        updates.insert(flux.clone(), git::Update::Remove);
        paths.push(dir);
        paths.push(flux);
        desired.removed_targets.insert(format!("{env}/{slot}"));
        desired.files.insert(tree::flux_path(env, Some(slot)), None);
    }
    let names: Vec<String> = slots.iter().map(|(e, s)| format!("{e}/{s}")).collect();
    let req = git::CommitRequest {
        updates,
        subject: format!("watch({})", names.join(", ")),
        message: Some(format!("watch: remove idle slot(s) {} ({why})", names.join(", "))),
        trailers: vec![
            ("Removed-By".into(), format!("codex-k8s watch ({identity})")),
            ("Targets".into(), names.join(", ")),
        ],
    };
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
