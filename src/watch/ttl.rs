//! Idle-TTL decisions: which slots to remove from git, which namespaces to
//! delete. Pure: [`decide`] takes the time, what git holds, the managed
//! namespaces and the agent Jobs, and returns [`Action`]s.
//!
//! The two steps are separated by git, never by memory: a slot is removed
//! from git first (so the GitOps controller prunes it and does not fight a
//! deletion); a managed namespace whose slot is *absent* from git is deleted
//! once the commit that removed the slot is older than the prune grace. A
//! watcher that dies between the two finds the same situation on its next
//! pass and finishes the job.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use serde::Serialize;

use super::agent::Phase;
use super::{annotations, managed_slot, parse_time, seconds_between, SlotEnvs, Timestamp};

/// What the TTL pass needs besides the cluster.
#[derive(Debug, Clone)]
pub struct Config {
    /// Slot environments and their idle TTL.
    pub envs: SlotEnvs,
    /// How long after the removal commit the watcher deletes a namespace the
    /// GitOps controller has not pruned.
    pub prune_grace: Duration,
}

/// A slot present in git at the branch tip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GitSlot {
    /// The slot's environment (a slot environment of the inventory).
    pub env: String,
    /// The slot's name, a DNS label such as `pr-42`.
    pub slot: String,
    /// Namespace from its `target.json`.
    pub namespace: Option<String>,
    /// Host from its `target.json`.
    pub host: Option<String>,
    /// The last commit that changed its directory.
    pub last_commit: Option<Timestamp>,
    /// Why its `target.json` cannot be read, if it cannot. Such a slot is
    /// live (it is in git) and never removed; the pass reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// A slot that was in git and is not at the tip any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedSlot {
    /// The commit that removed its directory.
    pub removed_at: Timestamp,
    /// Its namespace, from the `target.json` it had before.
    pub namespace: Option<String>,
}

/// What git says about slots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitState {
    /// Slots at the tip.
    pub slots: Vec<GitSlot>,
    /// Slots removed from the tip, by (env, slot), looked up for the
    /// namespaces that still exist.
    pub removed: BTreeMap<(String, String), RemovedSlot>,
    /// The commit these were read from (the base of a removal commit).
    pub tip: Option<git2::Oid>,
}

/// A managed slot namespace as the TTL pass sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotNamespace {
    /// Name.
    pub name: String,
    /// uid (a precondition of the delete).
    pub uid: Option<String>,
    /// Environment label.
    pub env: String,
    /// Slot label.
    pub slot: String,
    /// creationTimestamp.
    pub created: Option<Timestamp>,
    /// `codex-k8s.io/last-activity`.
    pub last_activity: Option<Timestamp>,
    /// `codex-k8s.io/keep: "true"`.
    pub keep: bool,
    /// Being deleted.
    pub terminating: bool,
    /// `codex-k8s.io/agent-run`.
    pub agent_run: Option<String>,
    /// `codex-k8s.io/agent-phase`.
    pub agent_phase: Option<String>,
}

impl SlotNamespace {
    /// The view of `ns`, or `None` when it is not a managed slot namespace.
    pub fn from_namespace(ns: &Namespace, envs: &SlotEnvs) -> Option<Self> {
        let (env, slot) = managed_slot(ns, envs)?;
        let a = ns.annotations();
        Some(SlotNamespace {
            name: ns.name_any(),
            uid: ns.metadata.uid.clone(),
            env,
            slot,
            created: ns.metadata.creation_timestamp.as_ref().map(|t| t.0),
            last_activity: a.get(annotations::LAST_ACTIVITY).and_then(|t| parse_time(t)),
            keep: a.get(annotations::KEEP).is_some_and(|v| v == "true"),
            terminating: ns.metadata.deletion_timestamp.is_some()
                || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating"),
            agent_run: a.get(annotations::AGENT_RUN).cloned(),
            agent_phase: a.get(annotations::AGENT_PHASE).cloned(),
        })
    }
}

/// An agent Job as the TTL pass sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentJob {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its phase.
    pub phase: Phase,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    /// Remove the slot's directory (and Flux file) from git: idle past its TTL.
    #[serde(rename_all = "camelCase")]
    RemoveFromGit {
        /// The slot's environment (a slot environment of the inventory).
        env: String,
        /// The slot's name, a DNS label such as `pr-42`.
        slot: String,
        /// Its namespace.
        namespace: String,
        /// Seconds since its last activity.
        idle_seconds: u64,
        /// Its TTL in seconds.
        ttl_seconds: u64,
    },
    /// Delete the namespace: its slot left git more than the grace ago.
    #[serde(rename_all = "camelCase")]
    DeleteNamespace {
        /// The slot's environment (a slot environment of the inventory).
        env: String,
        /// The slot's name, a DNS label such as `pr-42`.
        slot: String,
        /// The namespace.
        namespace: String,
        /// Its uid, sent as a delete precondition.
        uid: Option<String>,
        /// Seconds since the removal commit.
        removed_seconds: u64,
    },
}

/// The latest of the namespace's `last-activity`, the last commit touching
/// the slot's directory, and the namespace's creation.
pub fn last_activity(ns: &SlotNamespace, git: Option<&GitSlot>) -> Option<Timestamp> {
    [ns.last_activity, git.and_then(|g| g.last_commit), ns.created].into_iter().flatten().max()
}

/// The TTL pass: for each managed slot namespace (never any other one),
///
/// - slot at the git tip, not pinned, no agent Job pending or running, and
///   idle (see [`last_activity`]) longer than its environment's TTL →
///   [`Action::RemoveFromGit`];
/// - slot absent from the tip, removed by a commit older than the prune grace,
///   not pinned, no agent Job active → [`Action::DeleteNamespace`].
///
/// A namespace whose slot git never held, whose `target.json` names another
/// namespace, or that is already terminating is left alone.
pub fn decide(
    now: Timestamp,
    git: &GitState,
    namespaces: &[SlotNamespace],
    jobs: &[AgentJob],
    config: &Config,
) -> Vec<Action> {
    let mut out = Vec::new();
    let mut sorted: Vec<&SlotNamespace> = namespaces.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    // Indexes, so a pass over thousands of slots stays linear.
    let at_tip: BTreeMap<(&str, &str), &GitSlot> =
        git.slots.iter().map(|s| ((s.env.as_str(), s.slot.as_str()), s)).collect();
    let active: std::collections::BTreeSet<&str> =
        jobs.iter().filter(|j| j.phase.is_active()).map(|j| j.namespace.as_str()).collect();
    for ns in sorted {
        let Some(ttl) = config.envs.get(&ns.env) else { continue };
        if ns.terminating || ns.keep || active.contains(ns.name.as_str()) {
            continue;
        }
        match at_tip.get(&(ns.env.as_str(), ns.slot.as_str())).copied() {
            Some(g) => {
                // Present in git is live: unreadable metadata never reads
                // as "removed", and is no reason to remove either.
                if g.unreadable.is_some() || g.namespace.as_ref().is_some_and(|n| *n != ns.name) {
                    continue;
                }
                let Some(last) = last_activity(ns, Some(g)) else { continue };
                let idle = crate::publish::slots::judge(last.as_millisecond(), now.as_millisecond(), *ttl);
                if idle.expired {
                    out.push(Action::RemoveFromGit {
                        env: ns.env.clone(),
                        slot: ns.slot.clone(),
                        namespace: ns.name.clone(),
                        idle_seconds: idle.seconds,
                        ttl_seconds: ttl.as_secs(),
                    });
                }
            }
            None => {
                let Some(removed) = git.removed.get(&(ns.env.clone(), ns.slot.clone())) else { continue };
                if removed.namespace.as_ref().is_some_and(|n| *n != ns.name) {
                    continue;
                }
                let since = seconds_between(removed.removed_at, now);
                if since >= config.prune_grace.as_secs() {
                    out.push(Action::DeleteNamespace {
                        env: ns.env.clone(),
                        slot: ns.slot.clone(),
                        namespace: ns.name.clone(),
                        uid: ns.uid.clone(),
                        removed_seconds: since,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn config() -> Config {
        Config {
            envs: [("ai".to_string(), Duration::from_secs(8 * 3600))].into(),
            prune_grace: Duration::from_secs(600),
        }
    }

    fn ns(slot: &str, created: i64) -> SlotNamespace {
        SlotNamespace {
            name: format!("shop-{slot}"),
            uid: Some(format!("uid-{slot}")),
            env: "ai".into(),
            slot: slot.into(),
            created: Some(t(created)),
            last_activity: None,
            keep: false,
            terminating: false,
            agent_run: None,
            agent_phase: None,
        }
    }

    fn git(slots: &[(&str, i64)]) -> GitState {
        GitState {
            slots: slots
                .iter()
                .map(|(s, c)| GitSlot {
                    env: "ai".into(),
                    slot: s.to_string(),
                    namespace: Some(format!("shop-{s}")),
                    host: None,
                    last_commit: Some(t(*c)),
                    unreadable: None,
                })
                .collect(),
            removed: BTreeMap::new(),
            tip: None,
        }
    }

    fn removed(mut g: GitState, slot: &str, at: i64) -> GitState {
        g.removed.insert(
            ("ai".into(), slot.into()),
            RemovedSlot { removed_at: t(at), namespace: Some(format!("shop-{slot}")) },
        );
        g
    }

    fn names(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::RemoveFromGit { slot, .. } => format!("git:{slot}"),
                Action::DeleteNamespace { namespace, .. } => format!("delete:{namespace}"),
            })
            .collect()
    }

    #[test]
    fn a_slot_idle_past_its_ttl_is_removed_from_git() {
        let a = decide(t(9 * HOUR), &git(&[("pr-1", 0)]), &[ns("pr-1", 0)], &[], &config());
        assert_eq!(names(&a), ["git:pr-1"]);
        assert!(matches!(a[0], Action::RemoveFromGit { idle_seconds: 32400, ttl_seconds: 28800, .. }));
    }

    #[test]
    fn a_slot_whose_target_json_is_unreadable_is_live_and_kept() {
        let mut g = git(&[("pr-1", 0)]);
        g.slots[0].namespace = None;
        g.slots[0].unreadable = Some("rendered/ai/pr-1/.codex-k8s/target.json: expected value".into());
        // Even with an old removal of the same slot in history: it is at the tip.
        let g = removed(g, "pr-1", 0);
        assert!(decide(t(99 * HOUR), &g, &[ns("pr-1", 0)], &[], &config()).is_empty());
    }

    #[test]
    fn a_slot_within_its_ttl_is_kept() {
        assert!(decide(t(7 * HOUR), &git(&[("pr-1", 0)]), &[ns("pr-1", 0)], &[], &config()).is_empty());
    }

    #[test]
    fn the_latest_of_annotation_commit_and_creation_counts() {
        let cfg = config();
        let now = t(9 * HOUR);
        assert!(decide(now, &git(&[("pr-1", 2 * HOUR)]), &[ns("pr-1", 0)], &[], &cfg).is_empty(), "recent commit");
        assert!(decide(now, &git(&[("pr-1", 0)]), &[ns("pr-1", 2 * HOUR)], &[], &cfg).is_empty(), "recent namespace");
        let mut active = ns("pr-1", 0);
        active.last_activity = Some(t(2 * HOUR));
        assert!(decide(now, &git(&[("pr-1", 0)]), &[active], &[], &cfg).is_empty(), "recent agent activity");
    }

    #[test]
    fn a_running_or_pending_agent_keeps_its_slot() {
        for phase in [Phase::Pending, Phase::Running] {
            let jobs = [AgentJob { namespace: "shop-pr-1".into(), name: "agent-r1".into(), phase }];
            assert!(decide(t(99 * HOUR), &git(&[("pr-1", 0)]), &[ns("pr-1", 0)], &jobs, &config()).is_empty());
        }
        let done = [AgentJob { namespace: "shop-pr-1".into(), name: "agent-r1".into(), phase: Phase::Succeeded }];
        assert_eq!(
            names(&decide(t(99 * HOUR), &git(&[("pr-1", 0)]), &[ns("pr-1", 0)], &done, &config())),
            ["git:pr-1"]
        );
    }

    #[test]
    fn a_pinned_slot_is_never_removed() {
        let mut pinned = ns("pr-1", 0);
        pinned.keep = true;
        assert!(decide(t(99 * HOUR), &git(&[("pr-1", 0)]), &[pinned.clone()], &[], &config()).is_empty());
        assert!(decide(t(99 * HOUR), &removed(git(&[]), "pr-1", 0), &[pinned], &[], &config()).is_empty());
    }

    #[test]
    fn a_namespace_is_deleted_only_after_the_grace_since_its_removal_commit() {
        let g = removed(git(&[]), "pr-1", 10 * HOUR);
        let cfg = config();
        assert!(decide(t(10 * HOUR + 599), &g, &[ns("pr-1", 0)], &[], &cfg).is_empty());
        let a = decide(t(10 * HOUR + 600), &g, &[ns("pr-1", 0)], &[], &cfg);
        assert_eq!(names(&a), ["delete:shop-pr-1"]);
        assert!(matches!(&a[0], Action::DeleteNamespace { uid: Some(u), .. } if u == "uid-pr-1"));
    }

    #[test]
    fn a_namespace_git_never_held_or_held_under_another_name_is_left_alone() {
        assert!(decide(t(99 * HOUR), &git(&[]), &[ns("pr-1", 0)], &[], &config()).is_empty());
        let mut other = ns("pr-1", 0);
        other.name = "impostor".into();
        assert!(decide(t(99 * HOUR), &git(&[("pr-1", 0)]), &[other.clone()], &[], &config()).is_empty());
        assert!(decide(t(99 * HOUR), &removed(git(&[]), "pr-1", 0), &[other], &[], &config()).is_empty());
    }

    #[test]
    fn terminating_namespaces_and_other_envs_are_left_alone() {
        let mut term = ns("pr-1", 0);
        term.terminating = true;
        assert!(decide(t(99 * HOUR), &removed(git(&[]), "pr-1", 0), &[term], &[], &config()).is_empty());
        let mut other_env = ns("pr-1", 0);
        other_env.env = "staging".into();
        assert!(decide(t(99 * HOUR), &git(&[("pr-1", 0)]), &[other_env], &[], &config()).is_empty());
    }

    #[test]
    fn a_restart_between_commit_and_delete_finishes_the_job() {
        // Pass 1 removed pr-1 from git, then the watcher died. Pass 2, built
        // from nothing but git and the cluster, deletes the namespace.
        let cfg = Config { prune_grace: Duration::ZERO, ..config() };
        let before = decide(t(9 * HOUR), &git(&[("pr-1", 0)]), &[ns("pr-1", 0)], &[], &cfg);
        assert_eq!(names(&before), ["git:pr-1"]);
        let after = decide(t(9 * HOUR), &removed(git(&[]), "pr-1", 9 * HOUR), &[ns("pr-1", 0)], &[], &cfg);
        assert_eq!(names(&after), ["delete:shop-pr-1"]);
    }

    #[test]
    fn from_namespace_reads_labels_and_annotations() {
        let n: Namespace = serde_json::from_value(serde_json::json!({"metadata": {
            "name": "shop-pr-1", "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app.kubernetes.io/managed-by": "codex-k8s", "codex-k8s.io/env": "ai", "codex-k8s.io/slot": "pr-1"},
            "annotations": {"codex-k8s.io/keep": "true", "codex-k8s.io/last-activity": "2025-01-01T02:00:00Z"}}}))
        .unwrap();
        let v = SlotNamespace::from_namespace(&n, &config().envs).unwrap();
        assert!(v.keep);
        assert_eq!(v.last_activity.unwrap().to_string(), "2025-01-01T02:00:00Z");
        let mut unpinned = n.clone();
        unpinned.metadata.annotations.as_mut().unwrap().insert("codex-k8s.io/keep".into(), "yes".into());
        assert!(!SlotNamespace::from_namespace(&unpinned, &config().envs).unwrap().keep);
    }
}
