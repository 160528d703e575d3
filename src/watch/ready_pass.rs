//! The readiness pass of the watcher: for each managed slot namespace whose
//! tree is at the tip, judge its stages ([`ready`]) and record, once per
//! stage and rendering, when each became ready — an annotation on the
//! Namespace and a `StageReady` Event. Never part of the TTL pass: a
//! failure here is logged and retried on the next pass.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::bounded::{blocking, error_chain, within};
use super::context::{Config, Gate, Report};
use super::metrics::Health;
use super::pass::{Ctx, Pass};
use super::ready::{self, Kind, Observed, SlotTree, StageReady, StageState};
use super::record::{emit, patch_namespace, Note};
use super::retry;
use super::{managed_slot, namespace_selector, stages, Result};

/// The readiness pass, registered in [`super::PASSES`].
pub(crate) struct Readiness;

impl Pass for Readiness {
    fn name(&self) -> &'static str {
        "readiness"
    }

    fn period(&self, config: &Config) -> std::time::Duration {
        READY_INTERVAL.min(config.interval)
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'a>, report: &'a mut Report) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            report.ready.extend(pass(ctx.client, ctx.config, ctx.gate).await?);
            Ok(())
        })
    }
}

/// Period of the readiness pass (or `--interval`, if shorter).
pub const READY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The workloads of `namespace`, listing only the `kinds` wanted (each
/// list retried within the request deadline).
pub async fn observe(client: &Client, h: &Health, namespace: &str, kinds: &BTreeSet<Kind>) -> Result<Observed> {
    let mut o = Observed::default();
    for kind in kinds {
        match kind {
            Kind::Deployment => o.deployments = wire(list::<Deployment>(client, h, namespace).await?),
            Kind::StatefulSet => o.statefulsets = wire(list::<StatefulSet>(client, h, namespace).await?),
            Kind::DaemonSet => o.daemonsets = wire(list::<DaemonSet>(client, h, namespace).await?),
            Kind::Job => o.jobs = list::<Job>(client, h, namespace).await?,
        }
    }
    Ok(o)
}

/// Typed objects back to their wire form, which [`ready`] judges.
fn wire<K: Serialize>(items: BTreeMap<String, K>) -> BTreeMap<String, serde_json::Value> {
    items.into_iter().filter_map(|(n, o)| Some((n, serde_json::to_value(o).ok()?))).collect()
}

async fn list<K>(client: &Client, h: &Health, namespace: &str) -> Result<BTreeMap<String, K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let what = format!("listing {} in {namespace}", K::plural(&Default::default()));
    let lp = ListParams::default();
    let items = retry::call(h, &what, || api.list(&lp)).await?.items;
    Ok(items.into_iter().map(|o| (o.name_any(), o)).collect())
}

/// The kinds a tree's stages hold.
pub fn kinds(tree: &SlotTree) -> BTreeSet<Kind> {
    tree.stages.iter().flat_map(|s| s.workloads.iter().map(|w| w.kind)).collect()
}

/// Every stage of `tree` already recorded for its rendering.
fn all_recorded(annotations: &BTreeMap<String, String>, tree: &SlotTree) -> bool {
    annotations.get(ready::RENDERING) == Some(&tree.rendering)
        && tree.stages.iter().all(|s| annotations.contains_key(&ready::stage_key(&s.dir)))
}

/// One readiness pass: returns what was recorded (or would be, dry run).
pub(crate) async fn pass(client: &Client, config: &Config, gate: &Gate) -> Result<Vec<StageReady>> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let lp = ListParams::default().labels(&namespace_selector(&config.envs));
    let listed = retry::call(&config.health, "listing namespaces", || nss.list(&lp)).await?.items;
    let slots: Vec<(Namespace, (String, String))> = listed
        .into_iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .filter_map(|n| managed_slot(&n, &config.envs).map(|s| (n, s)))
        .collect();
    let keys: Vec<(String, String)> = slots.iter().map(|(_, s)| s.clone()).collect();
    let src = config.source.clone();
    let trees = within(
        "reading the slots' stages from git",
        config.git.fetch,
        blocking(move || stages::read(&src, None, &keys)),
    )
    .await?;
    let mut out = Vec::new();
    for (ns, key) in &slots {
        let Some(tree) = trees.get(key) else { continue };
        let tree = match tree {
            Ok(t) if t.namespace == ns.name_any() => t,
            Ok(_) => continue,
            Err(why) => {
                tracing::debug!(namespace = %ns.name_any(), reason = %why, "slot tree unreadable: readiness not judged");
                continue;
            }
        };
        match slot(client, config, gate, ns, tree).await {
            Ok(recorded) => out.extend(recorded),
            Err(e) => {
                tracing::warn!(namespace = %ns.name_any(), error = %error_chain(&e), "readiness not recorded; the next pass retries")
            }
        }
    }
    Ok(out)
}

/// Judges and records one slot.
async fn slot(
    client: &Client,
    config: &Config,
    gate: &Gate,
    ns: &Namespace,
    tree: &SlotTree,
) -> Result<Vec<StageReady>> {
    let annotations: BTreeMap<String, String> = ns.annotations().clone();
    if all_recorded(&annotations, tree) {
        return Ok(Vec::new());
    }
    let name = ns.name_any();
    let observed = observe(client, &config.health, &name, &kinds(tree)).await?;
    let states = ready::evaluate(tree, &observed);
    let now = config.clock.now();
    let Some(rec) = ready::decide(&annotations, tree, &states, now) else { return Ok(Vec::new()) };
    for s in &rec.ready {
        tracing::info!(namespace = %name, env = %tree.env, slot = %tree.slot, stage = %s, rendering = %tree.rendering, dry_run = config.dry_run, "stage ready");
    }
    let recorded: Vec<StageReady> = rec
        .ready
        .iter()
        .map(|s| StageReady {
            namespace: name.clone(),
            env: tree.env.clone(),
            slot: tree.slot.clone(),
            rendering: tree.rendering.clone(),
            stage: s.clone(),
            at: now,
        })
        .collect();
    if config.dry_run || !gate.open("recording stage readiness") {
        return Ok(recorded);
    }
    patch_namespace(client, config, &name, rec.patch, "recording stage readiness").await?;
    for s in &rec.ready {
        emit(client, config, stage_note(ns, tree, &states, s)).await;
    }
    Ok(recorded)
}

/// The `StageReady` Event of `stage`.
fn stage_note(ns: &Namespace, tree: &SlotTree, states: &[StageState], stage: &str) -> Note {
    let workloads: Vec<String> = tree
        .stages
        .iter()
        .find(|s| s.dir == stage)
        .map(|s| s.workloads.iter().map(|w| w.object()).collect())
        .unwrap_or_default();
    let position = states.iter().position(|s| s.stage == stage).map_or(0, |i| i + 1);
    let what = if workloads.is_empty() { "no workloads".to_owned() } else { workloads.join(", ") };
    let agent = tree.stages.iter().find(|s| s.dir == stage).and_then(|s| s.workloads.iter().find(|w| w.agent));
    Note {
        namespace: ns.name_any(),
        namespace_uid: ns.metadata.uid.clone(),
        name: format!("stage-{stage}"),
        action: "RecordStageReady",
        reason: "StageReady",
        note: format!("stage {stage} ready ({position} of {}; rendering {}): {what}", states.len(), tree.rendering),
        warning: false,
        related: agent.map(|w| ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: Some(w.name.clone()),
            namespace: Some(ns.name_any()),
            ..Default::default()
        }),
    }
}
