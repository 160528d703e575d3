//! `codex-k8s status`: slots as the cluster sees them — each managed slot
//! namespace with its host, agent run and phase, last activity, TTL left and
//! pin — plus slots git holds whose namespace does not exist (yet).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use super::source::{self, Source};
use super::ttl::{self, AgentJob, GitSlot, GitState, SlotNamespace};
use super::{agent, agent_selector, namespace_selector, seconds_between, Result, SlotEnvs, Timestamp};

/// One slot in `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotStatus {
    /// The slot's environment (a slot environment of the inventory).
    pub env: String,
    /// The slot's name, a DNS label such as `pr-42`.
    pub slot: String,
    /// Namespace (from the cluster, else from `target.json`).
    pub namespace: String,
    /// The namespace exists in the cluster.
    pub in_cluster: bool,
    /// The slot is in git at the tip.
    pub in_git: bool,
    /// The namespace is being deleted.
    pub terminating: bool,
    /// Public host (`target.json`, else the first Ingress rule).
    pub host: Option<String>,
    /// Agent run (namespace annotation, else the newest agent Job).
    pub agent_run: Option<String>,
    /// Agent phase.
    pub agent_phase: Option<String>,
    /// Last activity (RFC 3339).
    pub last_activity: Option<String>,
    /// Seconds since then.
    pub idle_seconds: Option<u64>,
    /// The environment's idle TTL in seconds.
    pub ttl_seconds: u64,
    /// Seconds left before the watcher removes the slot (0 when due).
    pub ttl_left_seconds: Option<u64>,
    /// Pinned by `codex-k8s.io/keep: "true"`.
    pub pinned: bool,
}

/// Joins git, namespaces, Jobs and Ingress hosts (by namespace) into one
/// row per slot, sorted by env and slot.
pub fn compose(
    now: Timestamp,
    git: &GitState,
    namespaces: &[SlotNamespace],
    jobs: &[(AgentJob, String)],
    ingress_hosts: &BTreeMap<String, String>,
    envs: &SlotEnvs,
) -> Vec<SlotStatus> {
    let mut rows: BTreeMap<(String, String), SlotStatus> = BTreeMap::new();
    // Indexes, so thousands of slots stay linear.
    let at_tip: BTreeMap<(&str, &str), &GitSlot> =
        git.slots.iter().map(|s| ((s.env.as_str(), s.slot.as_str()), s)).collect();
    let busy_namespaces: BTreeSet<&str> =
        jobs.iter().filter(|(j, _)| j.phase.is_active()).map(|(j, _)| j.namespace.as_str()).collect();
    // The newest Job of each namespace (`jobs` is sorted oldest first).
    let newest_job: BTreeMap<&str, &(AgentJob, String)> = jobs.iter().map(|j| (j.0.namespace.as_str(), j)).collect();
    for ns in namespaces {
        let g = at_tip
            .get(&(ns.env.as_str(), ns.slot.as_str()))
            .copied()
            .filter(|g| g.namespace.as_ref().is_none_or(|n| *n == ns.name));
        let ttl = envs.get(&ns.env).copied().unwrap_or_default();
        let last = ttl::last_activity(ns, g);
        let idle = last.map(|l| seconds_between(l, now));
        let busy = busy_namespaces.contains(ns.name.as_str());
        let newest = newest_job.get(ns.name.as_str()).copied();
        rows.insert(
            (ns.env.clone(), ns.slot.clone()),
            SlotStatus {
                env: ns.env.clone(),
                slot: ns.slot.clone(),
                namespace: ns.name.clone(),
                in_cluster: true,
                in_git: g.is_some(),
                terminating: ns.terminating,
                host: g.and_then(|g| g.host.clone()).or_else(|| ingress_hosts.get(&ns.name).cloned()),
                agent_run: ns.agent_run.clone().or_else(|| newest.map(|(_, run)| run.clone())),
                agent_phase: ns.agent_phase.clone().or_else(|| newest.map(|(j, _)| j.phase.to_string())),
                last_activity: last.map(|t| t.to_string()),
                idle_seconds: idle,
                ttl_seconds: ttl.as_secs(),
                ttl_left_seconds: if busy || ns.keep { None } else { idle.map(|i| ttl.as_secs().saturating_sub(i)) },
                pinned: ns.keep,
            },
        );
    }
    for g in &git.slots {
        let key = (g.env.clone(), g.slot.clone());
        if rows.contains_key(&key) {
            continue;
        }
        let ttl = envs.get(&g.env).copied().unwrap_or_default();
        let idle = g.last_commit.map(|l| seconds_between(l, now));
        rows.insert(
            key,
            SlotStatus {
                env: g.env.clone(),
                slot: g.slot.clone(),
                namespace: g.namespace.clone().unwrap_or_default(),
                in_cluster: false,
                in_git: true,
                terminating: false,
                host: g.host.clone(),
                agent_run: None,
                agent_phase: None,
                last_activity: g.last_commit.map(|t| t.to_string()),
                idle_seconds: idle,
                ttl_seconds: ttl.as_secs(),
                ttl_left_seconds: idle.map(|i| ttl.as_secs().saturating_sub(i)),
                pinned: false,
            },
        );
    }
    rows.into_values().collect()
}

/// Lists the managed slot namespaces, agent Jobs and Ingresses, reads git
/// (when `src` is given) and composes the rows for the environments in `envs`.
pub async fn collect(
    client: &Client,
    src: Option<&Source>,
    envs: &SlotEnvs,
    now: Timestamp,
) -> Result<Vec<SlotStatus>> {
    if envs.is_empty() {
        return Ok(Vec::new());
    }
    let nss: Api<Namespace> = Api::all(client.clone());
    let namespaces: Vec<SlotNamespace> = nss
        .list(&ListParams::default().labels(&namespace_selector(envs)))
        .await?
        .items
        .iter()
        .filter_map(|n| SlotNamespace::from_namespace(n, envs))
        .collect();
    let jobs_api: Api<Job> = Api::all(client.clone());
    let mut jobs = jobs_api.list(&ListParams::default().labels(&agent_selector())).await?.items;
    jobs.sort_by_key(|j| (j.metadata.creation_timestamp.as_ref().map(|t| t.0), j.name_any()));
    let jobs: Vec<(AgentJob, String)> = jobs
        .iter()
        .map(|j| {
            (
                AgentJob { namespace: j.namespace().unwrap_or_default(), name: j.name_any(), phase: agent::phase(j) },
                agent::run_id(j),
            )
        })
        .collect();
    // Hosts from Ingresses are a fallback; a cluster (or emulator) without
    // the permission or the API still gets a status.
    let mut hosts = BTreeMap::new();
    let ing: Api<Ingress> = Api::all(client.clone());
    if let Ok(list) = ing.list(&ListParams::default().labels(&namespace_selector(envs))).await {
        for i in list.items {
            let host = i.spec.as_ref().and_then(|s| s.rules.as_ref()?.iter().find_map(|r| r.host.clone()));
            if let (Some(ns), Some(h)) = (i.namespace(), host) {
                hosts.entry(ns).or_insert(h);
            }
        }
    }
    let git = match src {
        Some(src) => {
            let src = src.clone();
            let env_names: Vec<String> = envs.keys().cloned().collect();
            tokio::task::spawn_blocking(move || source::read_state(&src, &env_names, &[]))
                .await
                .map_err(|e| super::Error::Task(e.to_string()))??
        }
        None => GitState::default(),
    };
    Ok(compose(now, &git, &namespaces, &jobs, &hosts, envs))
}
