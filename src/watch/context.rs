//! The nouns every part of the watcher shares: what it is asked to do
//! ([`Config`]), what a pass did ([`Report`], [`Kept`], [`Skipped`]), and
//! whether it may write ([`Gate`]). It sits below the passes, the loop and
//! the recording code, so none of them imports another for these.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch as channel;

use super::agent::Record;
use super::bounded::GitTimeouts;
use super::lease;
use super::metrics::Health;
use super::ready::StageReady;
use super::source::Source;
use super::ttl::{self, Action};
use super::{Clock, SlotEnvs};

/// The reporting controller name in Events.
pub const CONTROLLER: &str = "codex-k8s.io/watcher";

/// What the watcher does, as typed values (the CLI builds it from flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// The repository and the rendered tree in it.
    pub source: Source,
    /// Slot environments and their idle TTL (from the inventory).
    pub envs: SlotEnvs,
    /// Delete a namespace this long after its slot left git, if the GitOps
    /// controller has not pruned it.
    pub prune_grace: Duration,
    /// Period of the TTL pass.
    pub interval: Duration,
    /// Report, change nothing.
    pub dry_run: bool,
    /// Leader election; none: act alone (a single replica, `--once`).
    pub lease: Option<lease::Config>,
    /// This watcher, in Events and commit trailers.
    pub identity: String,
    /// The time source.
    pub clock: Clock,
    /// Deadlines of git fetch and push.
    pub git: GitTimeouts,
    /// Metrics and liveness, shared with `/metrics`, `/healthz`, `/readyz`.
    pub health: Health,
}

impl Config {
    pub(super) fn ttl(&self) -> ttl::Config {
        ttl::Config { envs: self.envs.clone(), prune_grace: self.prune_grace }
    }
}

/// What a pass did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Agent phases recorded.
    pub recorded: Vec<Record>,
    /// TTL actions taken.
    pub actions: Vec<Action>,
    /// The removal commit, if any.
    pub commit: Option<String>,
    /// Slots kept for a reason worth reporting (unreadable metadata, a view
    /// that could not be refreshed).
    pub kept: Vec<Kept>,
    /// Slots whose action failed after its retries; the next pass decides
    /// them again.
    pub skipped: Vec<Skipped>,
    /// Stages recorded ready.
    pub ready: Vec<StageReady>,
}

/// A slot the TTL pass kept although it might have acted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kept {
    /// The slot's environment (a slot environment of the inventory).
    pub env: String,
    /// The slot's name, a DNS label such as `pr-42`.
    pub slot: String,
    /// Why it was kept.
    pub reason: String,
}

/// A slot whose action a pass could not carry out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    /// The slot's environment (`*`: every slot).
    pub env: String,
    /// The slot's name (`*`: every slot).
    pub slot: String,
    /// What was not done (`delete namespace shop-pr-1`, `remove from git`).
    pub action: String,
    /// The error, with its causes.
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({}: {})", self.env, self.slot, self.action, self.reason)
    }
}

/// Whether this process may write now: alone (`--once`, no election) it
/// always may; in an election only while the lease is held. Checked right
/// before every write, so a leader that lost its lease mid-pass stops there.
#[derive(Debug, Clone)]
pub(crate) enum Gate {
    Alone,
    Leader(channel::Receiver<bool>),
}

impl Gate {
    /// Whether this process may write now, without a log line.
    pub(crate) fn open_quietly(&self) -> bool {
        match self {
            Gate::Alone => true,
            Gate::Leader(rx) => *rx.borrow(),
        }
    }

    pub(crate) fn open(&self, what: &str) -> bool {
        let open = self.open_quietly();
        if !open {
            tracing::warn!(what, "no longer leading: not writing");
        }
        open
    }
}
