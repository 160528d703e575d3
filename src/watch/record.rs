//! Writes on a slot Namespace: a merge patch of its annotations, then an
//! `events.k8s.io/v1` Event regarding it (the same object as a core/v1
//! Event: `kubectl get events -n NS` and `kubectl describe ns NS` show it).
//! Used for agent phases and for stage readiness.
//!
//! Both writes are retried ([`super::retry`]) because each carries what
//! makes a repeat safe: the patch is sent with the `resourceVersion` of the
//! Namespace just read (a repeat after a write that landed gets 409, and
//! the Namespace read again shows the annotations already there), the
//! Event has a fixed name (a repeat gets `AlreadyExists`, counted as done).

use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;

use super::agent::{self, Record, Tracker};
use super::bounded::error_chain;
use super::context::{Config, Gate, CONTROLLER};
use super::retry;
use super::{Error, Result};

/// How often a patch is tried again on a Namespace that changed between
/// the read and the write (409 Conflict on its `resourceVersion`).
const CONFLICT_ROUNDS: usize = 3;

/// An Event about a slot Namespace.
#[derive(Debug, Clone)]
pub(crate) struct Note {
    /// The namespace (the Event lives in it and regards it).
    pub namespace: String,
    /// Its uid.
    pub namespace_uid: Option<String>,
    /// The Event's name before `.<µs hex>`: a DNS subdomain.
    pub name: String,
    /// `RecordAgentPhase`, `RecordStageReady`.
    pub action: &'static str,
    /// `AgentRunning`, `StageReady`, …
    pub reason: &'static str,
    /// The human-readable text.
    pub note: String,
    /// A `Warning` rather than `Normal`.
    pub warning: bool,
    /// The object it is about besides the Namespace.
    pub related: Option<ObjectReference>,
}

/// Whether `ns` already carries every annotation of the merge `patch`
/// (a `null` is an absent annotation).
fn applied(ns: &Namespace, patch: &serde_json::Value) -> bool {
    let have = ns.metadata.annotations.clone().unwrap_or_default();
    let Some(want) = patch["metadata"]["annotations"].as_object() else { return false };
    want.iter().all(|(k, v)| match v {
        serde_json::Value::Null => !have.contains_key(k),
        v => v.as_str().is_some_and(|v| have.get(k).map(String::as_str) == Some(v)),
    })
}

/// Merge-patches the Namespace `name` on the `resourceVersion` just read,
/// unless its annotations already say what `patch` says.
pub(crate) async fn patch_namespace(
    client: &Client,
    config: &Config,
    name: &str,
    patch: serde_json::Value,
    what: &str,
) -> Result<()> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let h = &config.health;
    for _ in 0..CONFLICT_ROUNDS {
        let ns = retry::call(h, what, || nss.get(name)).await?;
        if applied(&ns, &patch) {
            return Ok(());
        }
        let mut body = patch.clone();
        body["metadata"]["resourceVersion"] = serde_json::json!(ns.metadata.resource_version);
        let (body, pp) = (Patch::Merge(body), PatchParams::default());
        match retry::call(h, what, || nss.patch(name, &pp, &body)).await {
            Ok(_) => return Ok(()),
            // Changed since read, or an earlier attempt landed: read again.
            Err(Error::Kube(kube::Error::Api(s))) if s.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Timeout {
        what: format!("{what} (the namespace kept changing)"),
        after: super::bounded::REQUEST_TIMEOUT,
    })
}

/// Emits `note`; a lost Event is only logged (the annotations are what
/// matters).
pub(crate) async fn emit(client: &Client, config: &Config, note: Note) {
    let now = config.clock.now();
    let event = KubeEvent {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", note.name, now.as_microsecond())),
            namespace: Some(note.namespace.clone()),
            ..Default::default()
        },
        event_time: Some(MicroTime(now)),
        action: Some(note.action.into()),
        reason: Some(note.reason.into()),
        note: Some(note.note),
        type_: Some(if note.warning { "Warning" } else { "Normal" }.into()),
        reporting_controller: Some(CONTROLLER.into()),
        reporting_instance: Some(config.identity.clone()),
        regarding: Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Namespace".into()),
            name: Some(note.namespace.clone()),
            uid: note.namespace_uid,
            ..Default::default()
        }),
        related: note.related,
        ..Default::default()
    };
    let events: Api<KubeEvent> = Api::namespaced(client.clone(), &note.namespace);
    let pp = PostParams::default();
    match retry::call(&config.health, "emitting the Event", || events.create(&pp, &event)).await {
        Ok(_) => {}
        // A repeat of a create that landed: the Event is there.
        Err(Error::Kube(kube::Error::Api(s))) if s.code == 409 => {}
        Err(e) => tracing::warn!(namespace = %note.namespace, error = %error_chain(&e), "emitting the Event failed"),
    }
}

/// Records each of `records`, marking the written ones in `tracker`;
/// failures are logged and retried on the next change.
pub(crate) async fn apply_records(
    client: &Client,
    config: &Config,
    tracker: &mut Tracker,
    records: Vec<Record>,
    gate: &Gate,
) {
    for r in records {
        match record(client, config, &r, gate).await {
            Ok(true) => tracker.mark_recorded(&r),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(namespace = %r.namespace, error = %error_chain(&e), "recording the agent phase failed")
            }
        }
    }
}

/// Records one agent phase: a merge patch of the namespace annotations, then
/// an Event on the namespace. Returns false on a dry run.
pub(crate) async fn record(client: &Client, config: &Config, r: &Record, gate: &Gate) -> Result<bool> {
    tracing::info!(
        namespace = %r.namespace, env = %r.env, slot = %r.slot, job = %r.job, run = %r.run,
        phase = %r.phase, previous = ?r.previous.map(|p| p.as_str()), dry_run = config.dry_run,
        "agent phase"
    );
    if config.dry_run || !gate.open("recording the agent phase") {
        return Ok(false);
    }
    patch_namespace(client, config, &r.namespace, r.patch(), "recording the agent phase").await?;
    config.health.agent_phase_recorded();
    let note = Note {
        namespace: r.namespace.clone(),
        namespace_uid: r.namespace_uid.clone(),
        name: format!("{}.{}", r.job, r.phase),
        action: "RecordAgentPhase",
        reason: r.reason(),
        note: r.note(),
        warning: r.phase == agent::Phase::Failed,
        related: Some(ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: Some(r.job.clone()),
            namespace: Some(r.namespace.clone()),
            ..Default::default()
        }),
    };
    emit(client, config, note).await;
    Ok(true)
}
