//! What git says about slots, and removing slots from git.
//!
//! The watcher reads the *committed* tree (the branch tip, after a fetch when
//! a remote is set), never the work tree: git is the desired state the GitOps
//! controller follows. Removal is one commit for every slot of a pass, pushed
//! with the same fetch-rebuild-retry as `render --push`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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
        if self.prefix.is_empty() {
            rest.to_owned()
        } else {
            format!("{}/{rest}", self.prefix.trim_end_matches('/'))
        }
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

    /// The tip to read: with a remote, fetch it and move the local branch
    /// (and the checked-out rendered tree) there; the watcher's clone holds
    /// no commits of its own, everything it commits is pushed.
    fn tip(&self, repo: &Repository) -> Result<Option<Oid>> {
        let branch = self.branch(repo)?;
        let refname = format!("refs/heads/{branch}");
        if let Some(remote) = &self.remote {
            if let Some(tip) = git::fetch(repo, remote, &branch)? {
                let local = repo.refname_to_id(&refname).ok();
                if local != Some(tip) {
                    repo.reference(&refname, tip, true, "codex-k8s watch: follow remote").map_err(git::Error::from)?;
                    checkout_prefix(repo, &refname, &self.prefix)?;
                }
                return Ok(Some(tip));
            }
        }
        Ok(repo.refname_to_id(&refname).ok())
    }
}

/// Brings the work tree's rendered files in line with HEAD after the branch
/// moved under it (only when HEAD is that branch and there is a work tree).
fn checkout_prefix(repo: &Repository, refname: &str, prefix: &str) -> Result<()> {
    if repo.is_bare()
        || repo.find_reference("HEAD").ok().and_then(|h| h.symbolic_target().map(str::to_owned)).as_deref()
            != Some(refname)
    {
        return Ok(());
    }
    let mut co = git2::build::CheckoutBuilder::new();
    co.force();
    if !prefix.is_empty() {
        co.path(prefix);
    }
    repo.checkout_head(Some(&mut co)).map_err(git::Error::from)?;
    Ok(())
}

fn entry_id(tree: &Tree<'_>, path: &str) -> Option<Oid> {
    tree.get_path(Path::new(path)).ok().map(|e| e.id())
}

fn read_target_json(repo: &Repository, tree: &Tree<'_>, dir: &str) -> Option<TargetMeta> {
    let entry = tree.get_path(Path::new(&format!("{dir}/{TARGET_JSON}"))).ok()?;
    let blob = repo.find_blob(entry.id()).ok()?;
    serde_json::from_slice(blob.content()).ok()
}

fn to_time(seconds: i64) -> Option<Timestamp> {
    Timestamp::from_second(seconds).ok()
}

/// Reads the slots of `envs` at the tip, with the time of the last commit
/// that changed each; and, for each of `candidates` (env, slot) absent from
/// the tip, the commit that removed it.
pub fn read_state(src: &Source, envs: &[String], candidates: &[(String, String)]) -> Result<GitState> {
    let repo = src.open()?;
    let Some(tip) = src.tip(&repo)? else { return Ok(GitState::default()) };
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
            let dir = format!("{env_dir}/{name}");
            if e.kind() != Some(ObjectType::Tree) {
                continue;
            }
            let Some(meta) = read_target_json(&repo, &tree, &dir) else { continue };
            slots.push(GitSlot {
                env: env.clone(),
                slot: name.to_owned(),
                namespace: Some(meta.namespace),
                host: meta.host,
                last_commit: None,
            });
        }
    }
    let present: BTreeSet<(String, String)> = slots.iter().map(|s| (s.env.clone(), s.slot.clone())).collect();
    let absent: Vec<&(String, String)> = candidates.iter().filter(|c| !present.contains(*c)).collect();
    let mut dirs: Vec<String> = slots.iter().map(|s| src.join(&format!("{}/{}", s.env, s.slot))).collect();
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
    Ok(GitState { slots, removed })
}

struct Touch {
    time: i64,
    /// For a removal: the namespace in the `target.json` the directory had.
    namespace_before: Option<String>,
}

/// For each directory, the newest commit (first-parent comparison) that
/// changed, added or removed it, walking back from `tip`.
fn last_touches(repo: &Repository, tip: Oid, dirs: &[String]) -> Result<BTreeMap<String, Touch>> {
    let mut found = BTreeMap::new();
    if dirs.is_empty() {
        return Ok(found);
    }
    git::require_full_history(repo)?;
    let mut walk = repo.revwalk().map_err(git::Error::from)?;
    walk.set_sorting(git2::Sort::TIME | git2::Sort::TOPOLOGICAL).map_err(git::Error::from)?;
    walk.push(tip).map_err(git::Error::from)?;
    for oid in walk.take(MAX_COMMITS) {
        if found.len() == dirs.len() {
            break;
        }
        let commit = repo.find_commit(oid.map_err(git::Error::from)?).map_err(git::Error::from)?;
        let tree = commit.tree().map_err(git::Error::from)?;
        let parent_tree = commit.parents().next().map(|p| p.tree()).transpose().map_err(git::Error::from)?;
        for dir in dirs {
            if found.contains_key(dir) {
                continue;
            }
            let now = entry_id(&tree, dir);
            let before = parent_tree.as_ref().and_then(|t| entry_id(t, dir));
            if now != before {
                let namespace_before = match (now, &parent_tree) {
                    (None, Some(pt)) => read_target_json(repo, pt, dir).map(|m| m.namespace),
                    _ => None,
                };
                found.insert(dir.clone(), Touch { time: commit.time().seconds(), namespace_before });
            }
        }
    }
    Ok(found)
}

/// Removes `slots` (env, slot) from git in one commit — each slot's
/// directory and its Flux file — and pushes it when a remote is set.
/// Without a remote it commits on the checked-out branch and removes the
/// files from the work tree too, like `slots remove --commit`. Returns the
/// new commit, or `None` when git already lacked them.
pub fn remove_slots(src: &Source, slots: &[(String, String)], why: &str, identity: &str) -> Result<Option<Oid>> {
    if slots.is_empty() {
        return Ok(None);
    }
    let repo = src.open()?;
    let _lock = lock(&repo)?;
    let mut updates = git::Updates::new();
    let mut desired = tree::Desired::default();
    for (env, slot) in slots {
        updates.insert(src.join(&format!("{env}/{slot}")), git::Update::Remove);
        updates.insert(src.join(&tree::flux_path(env, Some(slot))), git::Update::Remove);
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
            let o = git::push_with_retry(&repo, remote, &branch, &req, git::Retry::default(), &|_, _| Ok(()))?;
            checkout_prefix(&repo, &refname, &src.prefix)?;
            o
        }
        None => {
            let head_is_branch = repo.find_reference("HEAD").ok().and_then(|h| h.symbolic_target().map(str::to_owned))
                == Some(refname.clone());
            match (head_is_branch, repo.workdir()) {
                (true, Some(workdir)) => {
                    tree::apply(&workdir.join(&src.prefix), &desired)?;
                    git::commit_worktree(&repo, &req)?
                }
                _ => git::commit_on_ref(&repo, &refname, &req)?,
            }
        }
    };
    Ok(match outcome {
        git::Outcome::Committed(oid) => Some(oid),
        git::Outcome::Unchanged => None,
    })
}

/// The same lock file as `render`, so a render and the watcher never
/// interleave on one clone.
fn lock(repo: &Repository) -> Result<std::fs::File> {
    use fs2::FileExt;
    let path = repo.path().join("codex-k8s.lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => return Ok(file),
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(100)),
            Err(e) => return Err(e.into()),
        }
    }
}
