//! Stage readiness, pure: what the tree puts in each stage of a slot
//! ([`SlotTree`], read from git by [`super::stages`]) against what the
//! cluster reports ([`Observed`]), judged per workload.
//!
//! A stage is judged on its workloads; other kinds (Services, ConfigMaps,
//! Ingresses, claims) are left to the GitOps controller's own health checks:
//!
//! | kind | ready when | failed when |
//! | --- | --- | --- |
//! | Deployment | the controller observed the current generation, every container runs the tree's image, `updatedReplicas` and `availableReplicas` reach `spec.replicas` (default 1) and no old replica is left | `Progressing` is `False` with `ProgressDeadlineExceeded` |
//! | StatefulSet | observed generation and images as above, `readyReplicas` and `updatedReplicas` reach `spec.replicas`, `currentRevision` = `updateRevision` | never (it only waits) |
//! | DaemonSet | observed generation and images as above, `updatedNumberScheduled` and `numberAvailable` reach `desiredNumberScheduled` | never |
//! | Job | it completed (`Complete`, or `succeeded` reaching `completions`) | it failed (`Failed`, or `failed` past `backoffLimit`) |
//! | the agent Job | it started (running or finished) | it failed |
//!
//! A workload the tree names but the cluster lacks is waited for. A stage
//! is ready when all of its workloads are; it counts as ready only once
//! every stage before it is ([`ready_prefix`]), the order Argo CD waves and
//! Flux `dependsOn` apply them in.
//!
//! What is recorded lives on the slot Namespace ([`decide`]): one
//! annotation per stage, `codex-k8s.io/ready.<NN-stage>: <RFC 3339>`, and
//! `codex-k8s.io/ready-rendering` naming the rendering they belong to (the
//! run id and the inputs digest of `target.json`). A new rendering clears
//! the stage annotations and starts again.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::Job;
use serde::Serialize;
use serde_json::{json, Value};

use super::agent::{self, Phase};
use super::Timestamp;

/// The annotation naming the rendering the stage annotations belong to.
pub const RENDERING: &str = "codex-k8s.io/ready-rendering";
/// The prefix of the per-stage annotations: `codex-k8s.io/ready.<NN-stage>`.
pub const STAGE_PREFIX: &str = "codex-k8s.io/ready.";

/// The kinds readiness judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Kind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
    /// `batch/v1` Job.
    Job,
}

impl Kind {
    /// The kind of a rendered object, if readiness judges it.
    pub fn of(api_version: &str, kind: &str) -> Option<Kind> {
        Some(match (api_version, kind) {
            ("apps/v1", "Deployment") => Kind::Deployment,
            ("apps/v1", "StatefulSet") => Kind::StatefulSet,
            ("apps/v1", "DaemonSet") => Kind::DaemonSet,
            ("batch/v1", "Job") => Kind::Job,
            _ => return None,
        })
    }

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::Job => "Job",
        }
    }
}

/// A workload the tree puts in a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// The agent Job (label `codex-k8s.io/role: agent`): ready once started.
    pub agent: bool,
    /// Container (and init container) name → image, as the tree has them.
    pub images: BTreeMap<String, String>,
}

impl Workload {
    /// `Kind/name`, as messages name it.
    pub fn object(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }
}

/// One stage directory of a slot and its workloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// The stage directory, `NN-stage`.
    pub dir: String,
    /// Its workloads, sorted by kind and name.
    pub workloads: Vec<Workload>,
}

/// A slot as its tree in git has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotTree {
    /// The slot's environment (a slot environment of the inventory).
    pub env: String,
    /// The slot's name, a DNS label such as `pr-42`.
    pub slot: String,
    /// Namespace (`target.json`).
    pub namespace: String,
    /// Public host (`target.json`).
    pub host: Option<String>,
    /// The rendering: `<run id or ->/<first 16 hex of the inputs digest>`.
    pub rendering: String,
    /// Stages in deploy order.
    pub stages: Vec<Stage>,
}

/// The rendering key of a slot's `target.json`.
pub fn rendering(run_id: Option<&str>, inputs_digest: &str) -> String {
    let digest: String = inputs_digest.chars().take(16).collect();
    format!("{}/{digest}", run_id.filter(|r| !r.is_empty()).unwrap_or("-"))
}

/// The workloads of one namespace as the API serves them (wire-form JSON),
/// by name.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Deployments.
    pub deployments: BTreeMap<String, Value>,
    /// StatefulSets.
    pub statefulsets: BTreeMap<String, Value>,
    /// DaemonSets.
    pub daemonsets: BTreeMap<String, Value>,
    /// Jobs.
    pub jobs: BTreeMap<String, Job>,
}

/// How a stage (or a workload) stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum State {
    /// Ready.
    Ready,
    /// Not yet: `object` is what it waits for, `why` says what is missing.
    Waiting {
        /// `Kind/name`.
        object: String,
        /// What is missing.
        why: String,
    },
    /// Failed for good: `object` failed, `why` says how.
    Failed {
        /// `Kind/name`.
        object: String,
        /// How.
        why: String,
    },
}

/// The state of one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageState {
    /// The stage directory.
    pub stage: String,
    /// Its state.
    #[serde(flatten)]
    pub state: State,
}

/// Each stage's own state, in deploy order: the first failed workload of
/// the stage, else the first one not ready, else ready.
pub fn evaluate(tree: &SlotTree, observed: &Observed) -> Vec<StageState> {
    tree.stages
        .iter()
        .map(|stage| {
            let checks: Vec<State> = stage.workloads.iter().map(|w| check(w, observed)).collect();
            let state = checks
                .iter()
                .find(|s| matches!(s, State::Failed { .. }))
                .or_else(|| checks.iter().find(|s| matches!(s, State::Waiting { .. })))
                .cloned()
                .unwrap_or(State::Ready);
            StageState { stage: stage.dir.clone(), state }
        })
        .collect()
}

/// The stages that count as ready: the longest run of ready stages from
/// the first one.
pub fn ready_prefix(states: &[StageState]) -> impl Iterator<Item = &StageState> {
    states.iter().take_while(|s| s.state == State::Ready)
}

fn waiting(w: &Workload, why: impl Into<String>) -> State {
    State::Waiting { object: w.object(), why: why.into() }
}

fn failed(w: &Workload, why: impl Into<String>) -> State {
    State::Failed { object: w.object(), why: why.into() }
}

/// One workload against the cluster.
pub fn check(w: &Workload, observed: &Observed) -> State {
    let missing = || waiting(w, "not in the cluster yet");
    match w.kind {
        Kind::Deployment => observed.deployments.get(&w.name).map_or_else(missing, |d| deployment(w, d)),
        Kind::StatefulSet => observed.statefulsets.get(&w.name).map_or_else(missing, |s| statefulset(w, s)),
        Kind::DaemonSet => observed.daemonsets.get(&w.name).map_or_else(missing, |d| daemonset(w, d)),
        Kind::Job => observed.jobs.get(&w.name).map_or_else(missing, |j| job(w, j)),
    }
}

/// The first container whose image differs from the tree's, as a reason.
fn image_mismatch(w: &Workload, obj: &Value) -> Option<String> {
    let pod = &obj["spec"]["template"]["spec"];
    let running: BTreeMap<&str, &str> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod[*k].as_array())
        .flatten()
        .filter_map(|c| Some((c["name"].as_str()?, c["image"].as_str().unwrap_or(""))))
        .collect();
    w.images.iter().find_map(|(name, image)| match running.get(name.as_str()) {
        Some(have) if have == image => None,
        Some(have) => Some(format!("container {name} runs {have}, the tree has {image}: not applied yet")),
        None => Some(format!("no container {name}: not applied yet")),
    })
}

/// An integer field (absent: 0).
fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The images, then the generation the controller has not observed yet, as a reason.
fn not_applied(w: &Workload, obj: &Value) -> Option<String> {
    if let Some(why) = image_mismatch(w, obj) {
        return Some(why);
    }
    let (g, o) = (int(&obj["metadata"]["generation"]), int(&obj["status"]["observedGeneration"]));
    (o < g).then(|| format!("generation {g} not observed yet (observed {o})"))
}

/// `spec.replicas`, 1 when absent.
fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn deployment(w: &Workload, d: &Value) -> State {
    let st = &d["status"];
    let stuck =
        st["conditions"].as_array().into_iter().flatten().find(|c| {
            c["type"] == "Progressing" && c["status"] == "False" && c["reason"] == "ProgressDeadlineExceeded"
        });
    if let Some(c) = stuck {
        return failed(w, format!("progress deadline exceeded: {}", c["message"].as_str().unwrap_or("")));
    }
    if let Some(why) = not_applied(w, d) {
        return waiting(w, why);
    }
    let want = replicas(d);
    let (updated, available, total) =
        (int(&st["updatedReplicas"]), int(&st["availableReplicas"]), int(&st["replicas"]));
    if updated < want {
        return waiting(w, format!("{updated} of {want} replicas updated"));
    }
    if total > updated {
        return waiting(w, format!("{} old replicas pending termination", total - updated));
    }
    if available < want {
        return waiting(w, format!("{available} of {want} replicas available"));
    }
    State::Ready
}

fn statefulset(w: &Workload, s: &Value) -> State {
    if let Some(why) = not_applied(w, s) {
        return waiting(w, why);
    }
    let st = &s["status"];
    let want = replicas(s);
    let (ready, updated) = (int(&st["readyReplicas"]), int(&st["updatedReplicas"]));
    if ready < want {
        return waiting(w, format!("{ready} of {want} replicas ready"));
    }
    if updated < want {
        return waiting(w, format!("{updated} of {want} replicas updated"));
    }
    if let (Some(cur), Some(upd)) = (st["currentRevision"].as_str(), st["updateRevision"].as_str()) {
        if cur != upd {
            return waiting(w, format!("revision {upd} rolling out (current {cur})"));
        }
    }
    State::Ready
}

fn daemonset(w: &Workload, d: &Value) -> State {
    if let Some(why) = not_applied(w, d) {
        return waiting(w, why);
    }
    let st = &d["status"];
    if st.is_null() {
        return waiting(w, "no status yet");
    }
    let want = int(&st["desiredNumberScheduled"]);
    let (updated, available) = (int(&st["updatedNumberScheduled"]), int(&st["numberAvailable"]));
    if updated < want {
        return waiting(w, format!("{updated} of {want} pods updated"));
    }
    if available < want {
        return waiting(w, format!("{available} of {want} pods available"));
    }
    State::Ready
}

fn job(w: &Workload, j: &Job) -> State {
    let why_failed = || {
        let st = j.status.as_ref();
        let c = st.and_then(|s| s.conditions.iter().flatten().find(|c| c.type_ == "Failed" && c.status == "True"));
        match c {
            Some(c) => format!(
                "failed: {}{}",
                c.reason.as_deref().unwrap_or("Failed"),
                c.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
            ),
            None => format!("failed: {} failed pods", st.and_then(|s| s.failed).unwrap_or(0)),
        }
    };
    match (agent::phase(j), w.agent) {
        (Phase::Failed, _) => failed(w, why_failed()),
        (Phase::Succeeded, _) | (Phase::Running, true) => State::Ready,
        (Phase::Pending, true) => waiting(w, "not started yet"),
        (_, false) => {
            let active = j.status.as_ref().and_then(|s| s.active).unwrap_or(0);
            waiting(w, format!("not complete yet ({active} active)"))
        }
    }
}

/// The annotation key of a stage: `codex-k8s.io/ready.<NN-stage>`, cut to
/// the 63 characters a key's name allows (`NN` keeps it unique).
pub fn stage_key(dir: &str) -> String {
    let name: String = format!("ready.{dir}").chars().take(63).collect();
    format!("codex-k8s.io/{}", name.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
}

/// What to write on the slot Namespace after a look at its stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recording {
    /// The merge patch of the Namespace's annotations.
    pub patch: Value,
    /// Stages recorded ready by this patch, in order.
    pub ready: Vec<String>,
    /// The annotations belonged to another rendering and are cleared.
    pub reset: bool,
}

/// What to record, given the Namespace's annotations, the slot's tree and
/// its stages' states: nothing when every ready stage is already recorded
/// for this rendering. Each stage is recorded once per rendering, at `now`.
pub fn decide(
    annotations: &BTreeMap<String, String>,
    tree: &SlotTree,
    states: &[StageState],
    now: Timestamp,
) -> Option<Recording> {
    let reset = annotations.get(RENDERING) != Some(&tree.rendering);
    let recorded: BTreeSet<&str> = if reset {
        BTreeSet::new()
    } else {
        annotations.keys().filter(|k| k.starts_with(STAGE_PREFIX)).map(String::as_str).collect()
    };
    let ready: Vec<String> = ready_prefix(states)
        .filter(|s| !recorded.contains(stage_key(&s.stage).as_str()))
        .map(|s| s.stage.clone())
        .collect();
    if !reset && ready.is_empty() {
        return None;
    }
    let mut set = serde_json::Map::new();
    if reset {
        for k in annotations.keys().filter(|k| k.starts_with(STAGE_PREFIX)) {
            set.insert(k.clone(), Value::Null);
        }
        set.insert(RENDERING.into(), json!(tree.rendering));
    }
    for s in &ready {
        set.insert(stage_key(s), json!(now.to_string()));
    }
    Some(Recording { patch: json!({"metadata": {"annotations": set}}), ready, reset })
}

/// A stage recorded ready (or, on a dry run, that would be).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageReady {
    /// The slot namespace.
    pub namespace: String,
    /// The slot's environment (a slot environment of the inventory).
    pub env: String,
    /// The slot's name, a DNS label such as `pr-42`.
    pub slot: String,
    /// The rendering (`ready-rendering`).
    pub rendering: String,
    /// The stage directory.
    pub stage: String,
    /// When it was seen ready.
    pub at: Timestamp,
}

#[cfg(test)]
#[path = "ready_tests.rs"]
mod tests;
