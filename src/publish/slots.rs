//! Slots as a tree holds them: listed with their idle time (judged once,
//! here, from the history of the place they are read from), and removed (one
//! commit shape for `slots remove`, `slots gc` and the watcher).
//!
//! A slot is read from the work tree (`--out`, its history from `HEAD`) or
//! from a branch (`--branch B`; with `--push R`, R's tip of B, fetched now).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

use super::commit::{self, commit_or_push};
use super::lock::lock_tree;
use super::state::{check_meta, check_slot, out_prefix, DiskTree, GitTree, TreeState};
use crate::git;
use crate::inventory::Inventory;
use crate::render::{Source, Target};
use crate::tree::{self, Desired};

/// Where slots are read and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// A branch (`--branch`); none: the work tree and the checked-out branch.
    pub branch: Option<String>,
    /// A remote (`--push`): read its tip of the branch, push removals to it.
    pub remote: Option<String>,
}

/// One slot as the tree and its history see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotInfo {
    /// The slot's environment (a slot environment of the inventory).
    pub env: String,
    /// The slot's name, a DNS label such as `pr-42`.
    pub slot: String,
    /// Namespace.
    pub namespace: String,
    /// Host.
    pub host: Option<String>,
    /// Agent run id.
    pub run_id: Option<String>,
    /// The source that owns it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Last commit touching the slot (seconds since the epoch); none if never committed.
    pub last_change: Option<i64>,
    /// Seconds since the last change (0 when uncommitted).
    pub idle_seconds: u64,
    /// The environment's idle TTL in seconds.
    pub ttl_seconds: u64,
    /// Idle longer than the TTL.
    pub expired: bool,
    /// Why the slot's `target.json` was not believed (it failed the checks
    /// of `check_meta`), escaped to one line; its fields are then left empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The TTL judgement, the one the CLI and the watcher share: how long a
/// slot has been idle since `last` (milliseconds since the epoch), and
/// whether that is longer than `ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idle {
    /// Whole seconds idle (0 when `last` is in the future).
    pub seconds: u64,
    /// Idle longer than the TTL.
    pub expired: bool,
}

/// Judges idleness at `now` (milliseconds since the epoch).
pub fn judge(last_ms: i64, now_ms: i64, ttl: Duration) -> Idle {
    let idle = i128::from(now_ms) - i128::from(last_ms);
    Idle { seconds: (idle.max(0) / 1000) as u64, expired: idle > ttl.as_millis() as i128 }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// What a place holds, opened once for a command.
pub struct View<'r> {
    repo: Option<&'r git2::Repository>,
    out_dir: &'r Path,
    prefix: String,
    /// The commit slots are read at (a branch), or the history of the work tree (`HEAD`).
    tip: Option<git2::Oid>,
    branch_state: Option<GitTree<'r>>,
    disk: DiskTree<'r>,
    place: Place,
}

impl<'r> View<'r> {
    /// Opens `place` for the tree at `out_dir`. A branch read through a
    /// remote is fetched first; the local branch follows it.
    pub fn open(
        inventory: &Inventory,
        repo: Option<&'r git2::Repository>,
        out_dir: &'r Path,
        place: &Place,
    ) -> Result<View<'r>> {
        let prefix = out_prefix(inventory, out_dir);
        let (tip, branch_state) = match (&place.branch, repo) {
            (Some(b), Some(repo)) => {
                let r = super::render::branch_ref(b);
                let (tip, shown) = super::render::branch_tip(repo, &r, place.remote.as_deref())?;
                (tip, Some(GitTree::at(repo, tip, &prefix, &shown)))
            }
            (Some(_), None) => anyhow::bail!("--branch needs a git repository"),
            (None, Some(repo)) => (repo.head().ok().and_then(|h| h.target()), None),
            (None, None) => (None, None),
        };
        Ok(View { repo, out_dir, prefix, tip, branch_state, disk: DiskTree(out_dir), place: place.clone() })
    }

    fn state(&self) -> &dyn TreeState {
        match &self.branch_state {
            Some(g) => g,
            None => &self.disk,
        }
    }

    /// Every slot (of `only_env`, if given) with its idle time, judged from
    /// the history of the place.
    pub fn list(&self, inventory: &Inventory, only_env: Option<&str>) -> Result<Vec<SlotInfo>> {
        let state = self.state();
        let mut slots = Vec::new();
        for (name, env) in inventory.environments.iter().filter(|(_, e)| e.slots) {
            if only_env.is_some_and(|o| o != name) {
                continue;
            }
            // A directory whose name is not a slot name is not a slot.
            for slot in state.list_slots(name).into_iter().filter(|s| check_slot(s).is_ok()) {
                slots.push((name.clone(), slot, env.idle_ttl.unwrap_or(crate::inventory::DEFAULT_IDLE_TTL)));
            }
        }
        let dirs: Vec<String> = slots
            .iter()
            .map(|(e, s, _)| crate::layout::join(&self.prefix, &crate::layout::target_dir(e, Some(s))))
            .collect();
        let touches = match (self.repo, self.tip) {
            (Some(repo), Some(tip)) => git::last_touches(repo, tip, &dirs)?,
            _ => Default::default(),
        };
        let now = now_ms();
        Ok(slots
            .into_iter()
            .zip(dirs)
            .map(|((env, slot, ttl), dir)| {
                let rel = format!("{env}/{slot}");
                let target = Target { env: env.clone(), slot: Some(slot.clone()) };
                // Only a checked record is printed: the file is untrusted.
                let (meta, problem) = match state.read_meta(&rel) {
                    Ok(Some(m)) => match check_meta(inventory, &state.meta_file(&rel), &target, &m) {
                        Ok(()) => (Some(m), None),
                        Err(e) => (None, Some(e.to_string())),
                    },
                    Ok(None) => (None, None),
                    Err(e) => (None, Some(e)),
                };
                let problem = problem.map(|p| crate::diagnostic::escape_line(&p, 500));
                let last_change = touches.get(&dir).map(|t| t.time);
                let idle = last_change.map(|t| judge(t.saturating_mul(1000), now, ttl));
                SlotInfo {
                    namespace: meta.as_ref().map(|m| m.namespace.clone()).unwrap_or_default(),
                    host: meta.as_ref().and_then(|m| m.host.clone()),
                    run_id: meta.as_ref().and_then(|m| m.run_id.clone()),
                    source: meta.and_then(|m| m.source),
                    env,
                    slot,
                    last_change,
                    idle_seconds: idle.map_or(0, |i| i.seconds),
                    ttl_seconds: ttl.as_secs(),
                    expired: idle.is_some_and(|i| i.expired),
                    problem,
                }
            })
            .collect())
    }

    /// Whether the place holds slot `env/slot`.
    pub fn holds(&self, env: &str, slot: &str) -> bool {
        self.state().list_slots(env).iter().any(|s| s == slot)
    }
}

/// What a removal did.
#[derive(Debug, Clone, Default)]
pub struct Removed {
    /// Slots removed.
    pub removed: Vec<Target>,
    /// Slots asked for that the place did not hold (success: removal is idempotent).
    pub absent: Vec<Target>,
    /// The commit, when one was asked for (`Unchanged`: another run removed them first).
    pub commit: Option<git::Outcome>,
}

/// Why and by whom slots are removed, for the commit.
#[derive(Debug, Clone)]
pub struct Reason {
    /// Who removes them, e.g. `slots remove`, `watch (watcher-1)`.
    pub by: String,
    /// Why, e.g. `pull request closed`, `idle past idleTTL`.
    pub why: String,
}

/// The change that removes `slots` (env, slot) from a tree: each slot's
/// directory and its Flux file, paths relative to the tree.
pub fn removal(slots: &[(String, String)]) -> Desired {
    let mut desired = Desired::default();
    for (env, slot) in slots {
        desired.removed_targets.insert(crate::layout::target_dir(env, Some(slot)));
        desired.files.insert(tree::flux_path(env, Some(slot)), None);
    }
    desired
}

/// The commit that removes `slots` from the tree at `prefix`, with the
/// trailers every removal carries (`Removed-By`, `Reason`, `Targets`, and the
/// run's source when known).
pub fn removal_request(
    slots: &[(String, String)],
    prefix: &str,
    reason: &Reason,
    source: Option<&Source>,
) -> git::CommitRequest {
    let mut updates = git::Updates::new();
    for (env, slot) in slots {
        updates.insert(crate::layout::join(prefix, &crate::layout::target_dir(env, Some(slot))), git::Update::Remove);
        updates.insert(crate::layout::join(prefix, &tree::flux_path(env, Some(slot))), git::Update::Remove);
    }
    let names: Vec<String> = slots.iter().map(|(e, s)| format!("{e}/{s}")).collect();
    git::CommitRequest {
        updates,
        subject: format!("slots({})", names.join(", ")),
        message: Some(format!("remove slot(s) {} ({})", names.join(", "), reason.why)),
        trailers: commit::trailers(
            vec![
                ("Removed-By".into(), format!("codex-k8s {}", reason.by)),
                ("Reason".into(), reason.why.clone()),
                ("Targets".into(), names.join(", ")),
            ],
            source,
        ),
    }
}

/// Removes `slots` from the place `view` was opened on: from the work tree
/// (and, with `commit`, in a commit on the checked-out branch), or from the
/// branch in a commit from memory; pushed when the place has a remote.
/// Slots the place does not hold are reported absent, never an error.
pub fn remove(
    inventory: &Inventory,
    view: &View<'_>,
    slots: &[(String, String)],
    commit: bool,
    reason: &Reason,
) -> Result<Removed> {
    if let Some(problem) = crate::inventory::names::message_problem(&reason.why) {
        anyhow::bail!("invalid --reason: it {problem}; give one line of text (it goes into the commit message)");
    }
    let out_dir = view.out_dir;
    if view.place.branch.is_none() {
        // A link in the way is named before anything else is judged.
        tree::check(out_dir, &removal(slots)).with_context(|| format!("cannot change {}", out_dir.display()))?;
    }
    let (present, absent): (Vec<_>, Vec<_>) = slots.iter().cloned().partition(|(e, s)| view.holds(e, s));
    let to_target = |(env, slot): (String, String)| Target { env, slot: Some(slot) };
    let mut done = Removed { absent: absent.into_iter().map(to_target).collect(), ..Removed::default() };
    if present.is_empty() {
        return Ok(done);
    }
    let branch = view.place.branch.as_deref().map(super::render::branch_ref);
    let push = view.place.remote.as_deref();
    let committing = commit || branch.is_some() || push.is_some();
    let repo =
        if committing { Some(view.repo.context("--commit, --branch and --push need a git repository")?) } else { None };
    if let Some(repo) = repo {
        commit::preflight(repo, view.place.branch.as_deref().zip(branch.as_deref()), push)?;
    }
    let lock = lock_tree(&inventory.root, out_dir)?;
    if branch.is_none() {
        tree::apply(out_dir, &removal(&present))?;
    }
    if let Some(repo) = repo {
        let source = super::source::current(Some(repo), None)?;
        let mut req = removal_request(&present, &view.prefix, reason, source.as_ref());
        // Which source commit the deploy branch was left at, as a render says.
        let from = git::rendered_from(Some(repo), &commit::source_paths(repo, inventory));
        req.trailers.insert(0, ("Rendered-From".into(), from));
        let outcome = commit_or_push(repo, &req, branch.as_deref(), push, &view.prefix, &|_, _| Ok(()))?;
        done.commit = Some(outcome);
    }
    drop(lock);
    done.removed = present.into_iter().map(to_target).collect();
    Ok(done)
}
