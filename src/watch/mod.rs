//! The cluster watcher (feature `watch`): records what agent Jobs do on
//! their slot's Namespace, and removes slots idle past their TTL — first from
//! git, so the GitOps controller prunes them, then (after a grace period) the
//! Namespace itself if it is still there.
//!
//! It reads the tree and the cluster and never renders. Decisions are pure
//! functions over plain values and an injected clock (`agent`, [`ttl`],
//! [`lease::decide`]); [`run`] wires the kube client, the kube-runtime
//! watchers and git around them. Nothing is kept between passes: every pass
//! rebuilds its view from the cluster and git, so a crash at any point leaves
//! nothing the next pass does not finish.
//!
//! It also records when each stage of a slot became ready (`ready`,
//! `ready_pass`), and [`wait`] polls one slot for `status --wait`.
//!
//! Entry points: [`run::client`] then [`run::run`] (or [`run::once`]),
//! [`status::collect`] for `codex-k8s status` and [`wait::wait`] for
//! `codex-k8s status --wait`.

mod agent;
mod bounded;
mod cluster;
mod context;
pub mod lease;
pub mod metrics;
mod pass;
mod ready;
mod ready_pass;
mod record;
mod retry;
pub mod run;
pub mod serve;
pub mod source;
mod stages;
pub mod status;
pub mod ttl;
mod ttl_pass;
pub mod wait;

/// The passes the watcher runs, in the order `--once` runs them. A new
/// pass is a file implementing [`pass::Pass`], its `mod` line above and
/// one entry here.
pub(crate) const PASSES: &[&dyn pass::Pass] = &[&ttl_pass::Ttl, &ready_pass::Readiness];

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
pub use k8s_openapi::jiff::Timestamp;

use crate::render::labels;

/// Namespace annotations the watcher reads and writes.
pub mod annotations {
    /// The agent run id of the newest agent Job in the namespace.
    pub const AGENT_RUN: &str = "codex-k8s.io/agent-run";
    /// Its phase: `pending`, `running`, `succeeded` or `failed`.
    pub const AGENT_PHASE: &str = "codex-k8s.io/agent-phase";
    /// When it started (RFC 3339).
    pub const AGENT_STARTED_AT: &str = "codex-k8s.io/agent-started-at";
    /// When it finished (RFC 3339); absent while it runs.
    pub const AGENT_FINISHED_AT: &str = "codex-k8s.io/agent-finished-at";
    /// The latest agent activity seen in the slot (RFC 3339).
    pub const LAST_ACTIVITY: &str = "codex-k8s.io/last-activity";
    /// `"true"` pins the slot: the watcher never removes it.
    pub const KEEP: &str = "codex-k8s.io/keep";
}

/// Failures of the watcher and of `status`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No usable kubeconfig or in-cluster configuration: check `KUBECONFIG`,
    /// `--kubeconfig` and `--context`, or the pod's ServiceAccount.
    #[error("cannot configure the Kubernetes client")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A Kubernetes API call failed (RBAC, connectivity, validation).
    #[error("Kubernetes API call failed")]
    Kube(#[from] kube::Error),
    /// Reading or committing the repository failed.
    #[error("git")]
    Git(#[from] crate::git::Error),
    /// The tree lock could not be taken (another run holds it).
    #[error(transparent)]
    Publish(#[from] crate::publish::Error),
    /// Reading or writing the rendered tree failed.
    #[error("rendered tree")]
    Io(#[from] std::io::Error),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
    /// The watcher refused to write into a checkout holding work of
    /// someone else (uncommitted changes under a slot it would remove).
    #[error("{0}")]
    LocalWork(String),
    /// A slot `status --wait` cannot judge: absent from the rendered tree
    /// at the revision read, or its tree unreadable.
    #[error("{0}")]
    Slot(String),
    /// The `/healthz` endpoint could not listen (address in use, no permission).
    #[error("cannot serve /healthz, /readyz and /metrics on {addr}")]
    Serve {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A pass could not act on some slots (named, with the reason) even
    /// after retrying; the next pass decides them again.
    #[error("{0}")]
    Skipped(String),
    /// An API call, a git fetch or push did not answer in time.
    #[error("{what} did not answer within {after:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The deadline.
        after: std::time::Duration,
    },
}

/// Result of watcher operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The time source. Decisions take `now` as an argument; the loops read it
/// from here so tests can move time without sleeping.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(Arc::new(Timestamp::now))
    }

    /// A clock reading `f()`.
    pub fn from_fn(f: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Clock(Arc::new(f))
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Slot environments and their idle TTL: the only environments whose
/// namespaces the watcher touches.
pub type SlotEnvs = BTreeMap<String, Duration>;

/// The inventory's slot environments with their idle TTL
/// (`idleTTL`, else [`crate::inventory::DEFAULT_IDLE_TTL`]).
pub fn slot_envs(inventory: &crate::inventory::Inventory) -> SlotEnvs {
    inventory
        .environments
        .iter()
        .filter(|(_, e)| e.slots)
        .map(|(n, e)| (n.clone(), e.idle_ttl.unwrap_or(crate::inventory::DEFAULT_IDLE_TTL)))
        .collect()
}

/// The slot a namespace belongs to, if it carries all three labels of a slot
/// environment: `app.kubernetes.io/managed-by: codex-k8s`,
/// `codex-k8s.io/env: <a slot environment>` and a non-empty
/// `codex-k8s.io/slot`. Every other namespace is never touched.
pub fn managed_slot(ns: &Namespace, envs: &SlotEnvs) -> Option<(String, String)> {
    let l = ns.metadata.labels.as_ref()?;
    if l.get(labels::MANAGED_BY).map(String::as_str) != Some(labels::MANAGER) {
        return None;
    }
    let env = l.get(labels::ENV).filter(|e| envs.contains_key(*e))?;
    let slot = l.get(labels::SLOT).filter(|s| !s.is_empty())?;
    Some((env.clone(), slot.clone()))
}

/// The label selector that lists candidate slot namespaces server-side
/// (each is still checked with [`managed_slot`]).
pub fn namespace_selector(envs: &SlotEnvs) -> String {
    let names: Vec<&str> = envs.keys().map(String::as_str).collect();
    format!("{}={},{} in ({}),{}", labels::MANAGED_BY, labels::MANAGER, labels::ENV, names.join(","), labels::SLOT)
}

/// The label selector of agent Jobs.
pub fn agent_selector() -> String {
    format!("{}=agent", labels::ROLE)
}

/// Parses an RFC 3339 annotation value.
pub(crate) fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

/// Seconds between two instants, never negative.
pub(crate) fn seconds_between(earlier: Timestamp, later: Timestamp) -> u64 {
    (later.as_second() - earlier.as_second()).max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(labels: &[(&str, &str)]) -> Namespace {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()}
        }))
        .unwrap()
    }

    #[test]
    fn only_namespaces_with_all_three_labels_of_a_slot_env_are_managed() {
        let envs: SlotEnvs = [("ai".to_string(), Duration::from_secs(1))].into();
        let full = [(labels::MANAGED_BY, "codex-k8s"), (labels::ENV, "ai"), (labels::SLOT, "pr-1")];
        assert_eq!(managed_slot(&ns(&full), &envs), Some(("ai".into(), "pr-1".into())));
        for skip in 0..3 {
            let partial: Vec<_> = full.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, p)| *p).collect();
            assert_eq!(managed_slot(&ns(&partial), &envs), None, "without {:?}", full[skip]);
        }
        assert_eq!(managed_slot(&ns(&[full[0], (labels::ENV, "staging"), full[2]]), &envs), None);
        assert_eq!(managed_slot(&ns(&[(labels::MANAGED_BY, "helm"), full[1], full[2]]), &envs), None);
        assert_eq!(managed_slot(&ns(&[full[0], full[1], (labels::SLOT, "")]), &envs), None);
    }

    #[test]
    fn namespace_selector_names_every_slot_env() {
        let envs: SlotEnvs = [("ai".to_string(), Duration::ZERO), ("review".to_string(), Duration::ZERO)].into();
        assert_eq!(
            namespace_selector(&envs),
            "app.kubernetes.io/managed-by=codex-k8s,codex-k8s.io/env in (ai,review),codex-k8s.io/slot"
        );
    }
}
