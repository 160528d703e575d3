//! The TTL pass of the watcher: a fresh view of the cluster and of git, the
//! pure decision ([`ttl::decide`]), then its effects — one commit removing
//! the idle slots from git (decided again when the branch moved under it),
//! and, past the prune grace, the deletion of their namespaces. A
//! namespace whose deletion still fails after its retries is skipped, named
//! in the report and the error, and decided again at the next pass.

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::{Client, ResourceExt};

use super::agent;
use super::bounded::{blocking, error_chain, within};
use super::cluster::list_cluster;
use super::context::{Config, Gate, Kept, Report, Skipped};
use super::pass::{Ctx, Pass};
use super::retry;
use super::source::{self, Source};
use super::ttl::{self, Action, AgentJob, SlotNamespace};
use super::{Error, Result};

/// How often a removal is decided again after the branch moved under it
/// (a rejected push) before the pass gives up until the next one.
const REMOVAL_ATTEMPTS: usize = 5;

/// The TTL pass, registered in [`super::PASSES`].
pub(crate) struct Ttl;

impl Pass for Ttl {
    fn name(&self) -> &'static str {
        "ttl"
    }

    fn period(&self, config: &Config) -> Duration {
        config.interval
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'a>, report: &'a mut Report) -> BoxFuture<'a, Result<()>> {
        Box::pin(pass(ctx.client, ctx.config, report, ctx.gate))
    }
}

/// A fresh view of the cluster for the TTL pass: both lists read now (each
/// retried within the request deadline), never the watch mirror, which may
/// be stale when a watch keeps failing.
async fn fresh_view(client: &Client, config: &Config) -> Result<(Vec<SlotNamespace>, Vec<AgentJob>)> {
    let (ns_list, job_list) = list_cluster(client, config).await?;
    let namespaces = ns_list.iter().filter_map(|n| SlotNamespace::from_namespace(n, &config.envs)).collect();
    let jobs = job_list
        .iter()
        .map(|j| AgentJob { namespace: j.namespace().unwrap_or_default(), name: j.name_any(), phase: agent::phase(j) })
        .collect();
    Ok((namespaces, jobs))
}

/// The TTL pass: a fresh view of the cluster and of git, the pure decision,
/// then its effects. A removal whose push is rejected (the branch moved) is
/// decided again from scratch on the new tip and a new cluster view.
pub(super) async fn pass(client: &Client, config: &Config, report: &mut Report, gate: &Gate) -> Result<()> {
    let Some(actions) = remove_idle_from_git(client, config, report, gate).await? else { return Ok(()) };
    let removed = actions.iter().filter(|a| matches!(a, Action::RemoveFromGit { .. })).count();
    let deleted = delete_namespaces(client, config, &actions, gate, report).await;
    config.health.removed(if config.dry_run { 0 } else { removed }, deleted);
    report.actions.extend(actions);
    if report.skipped.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = report.skipped.iter().map(ToString::to_string).collect();
    Err(Error::Skipped(format!("skipped {} slot(s), the next pass retries: {}", list.len(), list.join("; "))))
}

/// Every slot kept this pass because the view or git could not be read.
fn keep_all(config: &Config, report: &mut Report, what: &str, e: &Error) {
    tracing::warn!(error = %error_chain(e), "{what}: keeping every slot this pass");
    config.health.kept(if what.contains("git") { "git unreadable" } else { "stale view" });
    report.kept.push(Kept { env: "*".into(), slot: "*".into(), reason: format!("{what}: {}", error_chain(e)) });
}

/// Decides on a fresh view and removes idle slots from git, deciding again
/// when the branch moved under the removal; `None` when the gate closed.
async fn remove_idle_from_git(
    client: &Client,
    config: &Config,
    report: &mut Report,
    gate: &Gate,
) -> Result<Option<Vec<Action>>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (namespaces, jobs) = match fresh_view(client, config).await {
            Ok(v) => v,
            Err(e) => {
                keep_all(config, report, "the cluster view could not be refreshed", &e);
                return Err(e);
            }
        };
        let candidates: Vec<(String, String)> = namespaces.iter().map(|n| (n.env.clone(), n.slot.clone())).collect();
        let git = match read_git(config, &candidates).await {
            Ok(g) => g,
            Err(e) => {
                keep_all(config, report, "git could not be read", &e);
                return Err(e);
            }
        };
        let mut actions = ttl::decide(config.clock.now(), &git, &namespaces, &jobs, &config.ttl());
        if attempt == 1 {
            config.health.slots_seen(namespaces.len());
            keep_unreadable(config, &git, report);
        }
        let slots = removals(&actions, config.dry_run);
        if slots.is_empty() || config.dry_run {
            return Ok(Some(actions));
        }
        if !gate.open("removing slots from git") {
            return Ok(None);
        }
        match commit_removal(config, slots.clone(), git.tip).await {
            Ok(source::Removal::Committed(oid)) => {
                tracing::info!(commit = %oid, remote = ?config.source.remote, "removal committed");
                report.commit = Some(oid.to_string());
            }
            Ok(source::Removal::Unchanged) => {}
            Ok(source::Removal::Moved) if attempt < REMOVAL_ATTEMPTS => {
                tracing::info!(attempt, "the branch moved under the removal: deciding again on the new tip");
                continue;
            }
            Ok(source::Removal::Moved) => {
                tracing::warn!(attempts = attempt, "the branch kept moving under the removal; the next pass retries");
                return Ok(Some(Vec::new()));
            }
            Err(e) => {
                for (env, slot) in slots {
                    let reason = error_chain(&e);
                    report.skipped.push(Skipped { env, slot, action: "remove from git".into(), reason });
                }
                return Ok(Some(Vec::new()));
            }
        }
        // Git changed: decide again, which may already delete namespaces
        // (prune grace 0) — the same rule a restarted watcher applies.
        let git = read_git(config, &candidates).await?;
        let again = ttl::decide(config.clock.now(), &git, &namespaces, &jobs, &config.ttl());
        actions.retain(|a| matches!(a, Action::RemoveFromGit { .. }));
        actions.extend(again.into_iter().filter(|a| matches!(a, Action::DeleteNamespace { .. })));
        return Ok(Some(actions));
    }
}

/// Slots whose `target.json` cannot be read are in git, so live: kept, and said so.
fn keep_unreadable(config: &Config, git: &ttl::GitState, report: &mut Report) {
    for g in git.slots.iter().filter(|g| g.unreadable.is_some()) {
        let why = g.unreadable.clone().unwrap_or_default();
        tracing::warn!(env = %g.env, slot = %g.slot, reason = %why, "slot metadata unreadable: the slot is in git, so it is live and kept");
        config.health.kept("unreadable target.json");
        report.kept.push(Kept {
            env: g.env.clone(),
            slot: g.slot.clone(),
            reason: format!("unreadable target.json: {why}"),
        });
    }
}

/// The slots the actions remove from git, each logged.
fn removals(actions: &[Action], dry_run: bool) -> Vec<(String, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::RemoveFromGit { env, slot, idle_seconds, ttl_seconds, namespace } => {
                tracing::info!(env = %env, slot = %slot, namespace = %namespace, idle_seconds, ttl_seconds, dry_run, "slot idle past its TTL: removing it from git");
                Some((env.clone(), slot.clone()))
            }
            Action::DeleteNamespace { .. } => None,
        })
        .collect()
}

/// One commit removing `slots`, built on `base` and pushed, within the push timeout.
async fn commit_removal(
    config: &Config,
    slots: Vec<(String, String)>,
    base: Option<git2::Oid>,
) -> Result<source::Removal> {
    let src = config.source.clone();
    let identity = config.identity.clone();
    let outcome = within(
        "removing slots from git (commit and push)",
        config.git.push,
        blocking(move || source::remove_slots(&src, &slots, "idle past idleTTL", &identity, base)),
    )
    .await;
    if let Err(e) = &outcome {
        config.health.git_error("push", matches!(e, Error::Timeout { .. }));
    }
    outcome
}

/// Deletes the namespaces the actions name (never one recreated since it
/// was seen); a deletion that fails after its retries is skipped and
/// reported, and the others go on. Returns how many were deleted.
async fn delete_namespaces(
    client: &Client,
    config: &Config,
    actions: &[Action],
    gate: &Gate,
    report: &mut Report,
) -> usize {
    let mut deleted = 0;
    for a in actions {
        let Action::DeleteNamespace { env, slot, namespace, uid, removed_seconds } = a else { continue };
        tracing::info!(env = %env, slot = %slot, namespace = %namespace, removed_seconds, dry_run = config.dry_run, "slot gone from git for longer than the prune grace: deleting its namespace");
        if config.dry_run {
            continue;
        }
        if !gate.open("deleting a namespace") {
            break;
        }
        let nss: Api<Namespace> = Api::all(client.clone());
        let dp = DeleteParams {
            // Never delete a namespace that was recreated since we looked;
            // this precondition is also what makes a retry safe.
            preconditions: uid.clone().map(|uid| Preconditions { uid: Some(uid), resource_version: None }),
            ..Default::default()
        };
        let what = format!("deleting namespace {namespace}");
        match retry::call(&config.health, &what, || nss.delete(namespace, &dp)).await {
            Ok(_) => deleted += 1,
            Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 || s.code == 409 => {
                tracing::info!(namespace = %namespace, code = s.code, "namespace already gone or replaced")
            }
            Err(e) => {
                tracing::warn!(env = %env, slot = %slot, namespace = %namespace, error = %error_chain(&e), "deleting the namespace failed; the next pass retries");
                config.health.kept("delete failed");
                report.skipped.push(Skipped {
                    env: env.clone(),
                    slot: slot.clone(),
                    action: format!("delete namespace {namespace}"),
                    reason: error_chain(&e),
                });
            }
        }
    }
    deleted
}

async fn read_git(config: &Config, candidates: &[(String, String)]) -> Result<ttl::GitState> {
    let src = config.source.clone();
    let envs: Vec<String> = config.envs.keys().cloned().collect();
    let candidates = candidates.to_vec();
    // A dry run writes no ref, not even the watcher's own.
    let fetch = if config.dry_run { source::Fetch::NoRefs } else { source::Fetch::OwnRef };
    let outcome = within(
        "reading git (fetch)",
        config.git.fetch,
        blocking(move || {
            let mut state = source::read_state_with(&src, &envs, &candidates, fetch)?;
            expected_namespaces(&src, &mut state);
            Ok(state)
        }),
    )
    .await;
    if let Err(e) = &outcome {
        config.health.git_error("fetch", matches!(e, Error::Timeout { .. }));
    }
    outcome
}

/// Replaces the namespace git reports for each slot (from its `target.json`,
/// which a pull request can write) with the one the inventory
/// the source names (`Source::inventory`) computes for that slot. When the
/// inventory cannot say (unreadable, the template fails), the slot gets the
/// empty name, which no namespace has: a namespace is only ever acted on
/// when its name is exactly the one its slot must have.
fn expected_namespaces(src: &Source, state: &mut ttl::GitState) {
    let namespaces = source::SlotNamespaces::load(src);
    for s in &mut state.slots {
        s.namespace = Some(namespaces.of(&s.env, &s.slot));
    }
    for ((env, slot), removed) in &mut state.removed {
        removed.namespace = Some(namespaces.of(env, slot));
    }
}
