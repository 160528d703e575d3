//! Writes on a slot Namespace: a merge patch of its annotations, then an
//! `events.k8s.io/v1` Event regarding it (the same object as a core/v1
//! Event: `kubectl get events -n NS` and `kubectl describe ns NS` show it).
//! Used for agent phases and for stage readiness.

use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;

use super::agent::{self, Record, Tracker};
use super::lease::error_chain;
use super::run::{within, Config, Gate, CONTROLLER, REQUEST_TIMEOUT};
use super::Result;

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

/// Merge-patches the Namespace `name`.
pub(crate) async fn patch_namespace(client: &Client, name: &str, patch: serde_json::Value, what: &str) -> Result<()> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let patch = Patch::Merge(patch);
    within(what, REQUEST_TIMEOUT, async { Ok(nss.patch(name, &PatchParams::default(), &patch).await?) }).await?;
    Ok(())
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
    if let Err(e) = within("emitting the Event", REQUEST_TIMEOUT, async {
        Ok(events.create(&PostParams::default(), &event).await?)
    })
    .await
    {
        tracing::warn!(namespace = %note.namespace, error = %error_chain(&e), "emitting the Event failed");
    }
}

/// Records each of `records`, marking the written ones in `tracker`;
/// failures are logged and retried on the next change.
pub(crate) async fn apply_records(
    client: &Client,
    config: &Config,
    tracker: &mut Tracker,
    records: Vec<Record>,
    gate: &Gate<'_>,
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
pub(crate) async fn record(client: &Client, config: &Config, r: &Record, gate: &Gate<'_>) -> Result<bool> {
    tracing::info!(
        namespace = %r.namespace, env = %r.env, slot = %r.slot, job = %r.job, run = %r.run,
        phase = %r.phase, previous = ?r.previous.map(|p| p.as_str()), dry_run = config.dry_run,
        "agent phase"
    );
    if config.dry_run || !gate.open("recording the agent phase") {
        return Ok(false);
    }
    patch_namespace(client, &r.namespace, r.patch(), "recording the agent phase").await?;
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
