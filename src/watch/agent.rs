//! Agent Jobs → Namespace annotations: pure decisions over watch events.
//!
//! [`Tracker`] mirrors the managed slot namespaces and the agent Jobs from
//! the two watch streams ([`Input`]); after each event it says which
//! namespaces must record a new agent phase ([`Record`]). The newest agent
//! Job of a namespace (by creation, then name) is the one recorded. What is
//! already recorded comes from the namespace's own annotations, so a
//! restarted watcher neither repeats nor misses a phase: the decision is
//! level-based, not edge-based.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::watcher::Event;
use kube::ResourceExt;
use serde::Serialize;
use serde_json::json;

use super::{annotations, managed_slot, parse_time, SlotEnvs, Timestamp};

/// The phase of an agent Job, derived from its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Created, no pod running yet (or suspended).
    Pending,
    /// A pod is active (or being retried).
    Running,
    /// Completed.
    Succeeded,
    /// Failed for good.
    Failed,
}

impl Phase {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Running => "running",
            Phase::Succeeded => "succeeded",
            Phase::Failed => "failed",
        }
    }

    /// Pending or running: the slot is in use.
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Pending | Phase::Running)
    }

    /// Parses an annotation value.
    pub fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "pending" => Phase::Pending,
            "running" => Phase::Running,
            "succeeded" => Phase::Succeeded,
            "failed" => Phase::Failed,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The phase of a Job: its `Complete`/`Failed` conditions first, then the
/// pod counters against `completions` and `backoffLimit`.
pub fn phase(job: &Job) -> Phase {
    let spec = job.spec.as_ref();
    let Some(st) = job.status.as_ref() else { return Phase::Pending };
    for c in st.conditions.iter().flatten().filter(|c| c.status == "True") {
        match c.type_.as_str() {
            "Complete" | "SuccessCriteriaMet" => return Phase::Succeeded,
            "Failed" | "FailureTarget" => return Phase::Failed,
            _ => {}
        }
    }
    let completions = spec.and_then(|s| s.completions).unwrap_or(1).max(1);
    if st.succeeded.unwrap_or(0) >= completions {
        return Phase::Succeeded;
    }
    if st.failed.unwrap_or(0) > spec.and_then(|s| s.backoff_limit).unwrap_or(6) {
        return Phase::Failed;
    }
    if spec.and_then(|s| s.suspend).unwrap_or(false) {
        return Phase::Pending;
    }
    if st.active.unwrap_or(0) > 0 || st.ready.unwrap_or(0) > 0 || st.failed.unwrap_or(0) > 0 {
        return Phase::Running;
    }
    Phase::Pending
}

/// The agent run id of a Job: its container's `RUN_ID` variable (what the
/// bundled agent template sets), else the Job's name.
pub fn run_id(job: &Job) -> String {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .into_iter()
        .flat_map(|p| p.containers.iter())
        .flat_map(|c| c.env.iter().flatten())
        .find(|e| e.name == "RUN_ID")
        .and_then(|e| e.value.clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| job.name_any())
}

fn started_at(job: &Job) -> Option<Timestamp> {
    job.status.as_ref().and_then(|s| s.start_time.as_ref()).or(job.metadata.creation_timestamp.as_ref()).map(|t| t.0)
}

fn finished_at(job: &Job, phase: Phase) -> Option<Timestamp> {
    let st = job.status.as_ref()?;
    match phase {
        Phase::Succeeded => st.completion_time.as_ref().map(|t| t.0).or_else(|| condition_time(job, "Complete")),
        Phase::Failed => condition_time(job, "Failed").or_else(|| condition_time(job, "FailureTarget")),
        _ => None,
    }
}

fn condition_time(job: &Job, kind: &str) -> Option<Timestamp> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == kind)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// A phase to record on a slot namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The slot namespace.
    pub namespace: String,
    /// Its uid, for the Event's reference.
    pub namespace_uid: Option<String>,
    /// Slot environment.
    pub env: String,
    /// The slot's name, a DNS label such as `pr-42`.
    pub slot: String,
    /// The agent Job.
    pub job: String,
    /// The agent run id.
    pub run: String,
    /// The new phase.
    pub phase: Phase,
    /// The phase recorded before for the same run, if any.
    pub previous: Option<Phase>,
    /// When the Job started.
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// The slot's last activity after this record: the latest of the
    /// previous value and this change's own time.
    pub last_activity: Timestamp,
}

impl Record {
    /// The merge patch that records this phase on the Namespace
    /// (`agent-finished-at` is removed while the run is not finished).
    pub fn patch(&self) -> serde_json::Value {
        let fmt = |t: Option<Timestamp>| t.map(|t| json!(t.to_string())).unwrap_or(serde_json::Value::Null);
        json!({"metadata": {"annotations": {
            annotations::AGENT_RUN: self.run,
            annotations::AGENT_PHASE: self.phase.as_str(),
            annotations::AGENT_STARTED_AT: fmt(self.started_at),
            annotations::AGENT_FINISHED_AT: fmt(self.finished_at),
            annotations::LAST_ACTIVITY: self.last_activity.to_string(),
        }}})
    }

    /// The Event reason: `AgentPending`, `AgentRunning`, `AgentSucceeded`, `AgentFailed`.
    pub fn reason(&self) -> &'static str {
        match self.phase {
            Phase::Pending => "AgentPending",
            Phase::Running => "AgentRunning",
            Phase::Succeeded => "AgentSucceeded",
            Phase::Failed => "AgentFailed",
        }
    }

    /// The Event's human-readable note.
    pub fn note(&self) -> String {
        match self.previous {
            Some(p) => format!("agent run {} (job {}): {} -> {}", self.run, self.job, p, self.phase),
            None => format!("agent run {} (job {}): {}", self.run, self.job, self.phase),
        }
    }
}

/// One item of the merged watch streams.
#[derive(Debug, Clone)]
pub enum Input {
    /// A Namespace watch event (the stream is filtered by the slot labels).
    Namespace(Box<Event<Namespace>>),
    /// An agent Job watch event.
    Job(Box<Event<Job>>),
}

/// Objects of one watch stream, keyed by `namespace/name`, with the
/// buffer kube-runtime's `Init … InitDone` relist needs.
#[derive(Debug)]
struct Mirror<K> {
    items: BTreeMap<String, K>,
    buffer: Option<BTreeMap<String, K>>,
    ready: bool,
}

impl<K> Default for Mirror<K> {
    fn default() -> Self {
        Mirror { items: BTreeMap::new(), buffer: None, ready: false }
    }
}

impl<K: kube::Resource> Mirror<K> {
    fn key(o: &K) -> String {
        format!("{}/{}", o.meta().namespace.as_deref().unwrap_or(""), o.meta().name.as_deref().unwrap_or(""))
    }

    /// Applies an event; returns the keys that changed (all of them on InitDone).
    fn apply(&mut self, ev: Event<K>) -> Vec<String> {
        match ev {
            Event::Init => {
                self.buffer = Some(BTreeMap::new());
                vec![]
            }
            Event::InitApply(o) => {
                self.buffer.get_or_insert_with(BTreeMap::new).insert(Self::key(&o), o);
                vec![]
            }
            Event::InitDone => {
                let new = self.buffer.take().unwrap_or_default();
                let old = std::mem::replace(&mut self.items, new);
                self.ready = true;
                old.into_keys().chain(self.items.keys().cloned()).collect::<BTreeSet<_>>().into_iter().collect()
            }
            Event::Apply(o) => {
                let k = Self::key(&o);
                self.items.insert(k.clone(), o);
                vec![k]
            }
            Event::Delete(o) => {
                let k = Self::key(&o);
                self.items.remove(&k);
                vec![k]
            }
        }
    }
}

/// The watcher's view of managed slot namespaces and agent Jobs, and what
/// has been recorded on them.
#[derive(Debug)]
pub struct Tracker {
    envs: SlotEnvs,
    namespaces: Mirror<Namespace>,
    jobs: Mirror<Job>,
    /// (run, phase) recorded by this process, ahead of the namespace watch.
    recorded: BTreeMap<String, (String, Phase, Timestamp)>,
}

impl Tracker {
    /// An empty tracker for these slot environments.
    pub fn new(envs: SlotEnvs) -> Self {
        Tracker { envs, namespaces: Mirror::default(), jobs: Mirror::default(), recorded: BTreeMap::new() }
    }

    /// Both streams have listed at least once.
    pub fn ready(&self) -> bool {
        self.namespaces.ready && self.jobs.ready
    }

    /// Applies one watch event; returns the phases to record, by namespace name.
    pub fn apply(&mut self, input: Input) -> Vec<Record> {
        let touched: BTreeSet<String> = match input {
            Input::Namespace(ev) => {
                self.namespaces.apply(*ev).into_iter().map(|k| k.trim_start_matches('/').to_owned()).collect()
            }
            Input::Job(ev) => self
                .jobs
                .apply(*ev)
                .into_iter()
                .filter_map(|k| k.split_once('/').map(|(ns, _)| ns.to_owned()))
                .collect(),
        };
        if !self.ready() {
            return vec![];
        }
        touched.iter().filter_map(|ns| self.decide(ns)).collect()
    }

    /// Every record still missing (after becoming leader, or for `--once`).
    pub fn pending(&self) -> Vec<Record> {
        self.namespaces.items.keys().filter_map(|k| self.decide(k.trim_start_matches('/'))).collect()
    }

    /// Notes that `r` was written, so the next event does not record it again
    /// before the namespace watch shows the new annotations.
    pub fn mark_recorded(&mut self, r: &Record) {
        self.recorded.insert(r.namespace.clone(), (r.run.clone(), r.phase, r.last_activity));
    }

    /// Managed slot namespaces, by name.
    pub fn namespaces(&self) -> impl Iterator<Item = &Namespace> {
        self.namespaces.items.values().filter(|ns| managed_slot(ns, &self.envs).is_some())
    }

    /// Agent Jobs.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.items.values()
    }

    fn decide(&self, ns_name: &str) -> Option<Record> {
        let ns = self.namespaces.items.get(&format!("/{ns_name}"))?;
        let (env, slot) = managed_slot(ns, &self.envs)?;
        if ns.metadata.deletion_timestamp.is_some() {
            return None;
        }
        let prefix = format!("{ns_name}/");
        let job = self
            .jobs
            .items
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, j)| j)
            .max_by_key(|j| (j.metadata.creation_timestamp.as_ref().map(|t| t.0), j.name_any()))?;
        decide(ns, job, self.recorded.get(ns_name)).map(|mut r| {
            r.env = env;
            r.slot = slot;
            r
        })
    }
}

/// What to record on `ns` for its newest agent Job `job`, if anything:
/// nothing when the namespace already shows this run in this phase.
/// `memory` is what this process wrote last, which wins over annotations
/// the namespace watch has not delivered yet.
pub fn decide(ns: &Namespace, job: &Job, memory: Option<&(String, Phase, Timestamp)>) -> Option<Record> {
    let a = ns.metadata.annotations.clone().unwrap_or_default();
    let run = run_id(job);
    let phase = phase(job);
    let (rec_run, rec_phase, rec_activity) = match memory {
        Some((r, p, t)) => (Some(r.clone()), Some(*p), Some(*t)),
        None => (
            a.get(annotations::AGENT_RUN).cloned(),
            a.get(annotations::AGENT_PHASE).and_then(|p| Phase::parse(p)),
            a.get(annotations::LAST_ACTIVITY).and_then(|t| parse_time(t)),
        ),
    };
    if rec_run.as_deref() == Some(run.as_str()) && rec_phase == Some(phase) {
        return None;
    }
    let started = started_at(job);
    let finished = finished_at(job, phase);
    // The change's own time, so a watcher that restarts hours later does
    // not make an old run look recent.
    let own = match phase {
        Phase::Pending => job.metadata.creation_timestamp.as_ref().map(|t| t.0),
        Phase::Running => started,
        _ => finished.or(started),
    };
    let last_activity = [own, rec_activity].into_iter().flatten().max().or(started).unwrap_or(Timestamp::UNIX_EPOCH);
    Some(Record {
        namespace: ns.name_any(),
        namespace_uid: ns.metadata.uid.clone(),
        env: String::new(),
        slot: String::new(),
        job: job.name_any(),
        previous: if rec_run.as_deref() == Some(run.as_str()) { rec_phase } else { None },
        run,
        phase,
        started_at: started,
        finished_at: finished,
        last_activity,
    })
}

/// The records a stream of watch events leads to, each marked recorded as
/// soon as it is produced (the shape of the watcher's loop without the API
/// calls). No clock: every time in a record comes from the Job itself.
#[cfg(test)]
fn records<S>(inputs: S, envs: SlotEnvs) -> impl futures::Stream<Item = Record>
where
    S: futures::Stream<Item = Input>,
{
    let mut tracker = Tracker::new(envs);
    futures::StreamExt::flat_map(inputs, move |input| {
        let out = tracker.apply(input);
        for r in &out {
            tracker.mark_recorded(r);
        }
        futures::stream::iter(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{stream, StreamExt};
    use std::time::Duration;

    fn ns(name: &str, slot: &str, annotations: serde_json::Value) -> Namespace {
        serde_json::from_value(json!({"metadata": {
            "name": name, "uid": format!("uid-{name}"),
            "labels": {"app.kubernetes.io/managed-by": "codex-k8s", "codex-k8s.io/env": "ai", "codex-k8s.io/slot": slot},
            "annotations": annotations,
        }}))
        .unwrap()
    }

    fn job(ns: &str, name: &str, created: &str, status: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created,
                         "labels": {"codex-k8s.io/role": "agent"}},
            "spec": {"backoffLimit": 0, "template": {"spec": {"containers": [
                {"name": "agent", "image": "a", "env": [{"name": "RUN_ID", "value": name.trim_start_matches("agent-")}]}]}}},
            "status": status,
        }))
        .unwrap()
    }

    fn envs() -> SlotEnvs {
        [("ai".to_string(), Duration::from_secs(3600))].into()
    }

    fn collect(inputs: Vec<Input>) -> Vec<(String, String, Phase)> {
        let s = records(stream::iter(inputs), envs());
        futures::executor::block_on(s.map(|r| (r.namespace, r.run, r.phase)).collect())
    }

    fn init<K>(items: Vec<K>) -> Vec<Event<K>> {
        let mut v = vec![Event::Init];
        v.extend(items.into_iter().map(Event::InitApply));
        v.push(Event::InitDone);
        v
    }

    fn listed(nss: Vec<Namespace>, jobs: Vec<Job>) -> Vec<Input> {
        init(nss)
            .into_iter()
            .map(|e| Input::Namespace(Box::new(e)))
            .chain(init(jobs).into_iter().map(|e| Input::Job(Box::new(e))))
            .collect()
    }

    const T0: &str = "2025-01-01T00:00:00Z";

    #[test]
    fn phase_follows_conditions_then_counters() {
        assert_eq!(phase(&job("n", "j", T0, json!({}))), Phase::Pending);
        assert_eq!(phase(&job("n", "j", T0, json!({"active": 1}))), Phase::Running);
        assert_eq!(phase(&job("n", "j", T0, json!({"succeeded": 1}))), Phase::Succeeded);
        assert_eq!(phase(&job("n", "j", T0, json!({"failed": 1}))), Phase::Failed, "backoffLimit 0");
        assert_eq!(
            phase(&job("n", "j", T0, json!({"active": 1, "conditions": [{"type": "Failed", "status": "True"}]}))),
            Phase::Failed
        );
        assert_eq!(
            phase(&job("n", "j", T0, json!({"conditions": [{"type": "Complete", "status": "False"}], "active": 1}))),
            Phase::Running
        );
    }

    #[test]
    fn each_phase_change_is_recorded_once() {
        let mut inputs = listed(vec![ns("shop-pr-1", "pr-1", json!({}))], vec![]);
        for status in [json!({}), json!({"active": 1}), json!({"active": 1, "ready": 1}), json!({"succeeded": 1})] {
            inputs.push(Input::Job(Box::new(Event::Apply(job("shop-pr-1", "agent-r1", T0, status)))));
        }
        assert_eq!(
            collect(inputs),
            [
                ("shop-pr-1".into(), "r1".into(), Phase::Pending),
                ("shop-pr-1".into(), "r1".into(), Phase::Running),
                ("shop-pr-1".into(), "r1".into(), Phase::Succeeded),
            ]
        );
    }

    #[test]
    fn a_restart_does_not_repeat_what_the_namespace_already_shows() {
        let recorded = json!({annotations::AGENT_RUN: "r1", annotations::AGENT_PHASE: "running"});
        let inputs = listed(
            vec![ns("shop-pr-1", "pr-1", recorded)],
            vec![job("shop-pr-1", "agent-r1", T0, json!({"active": 1}))],
        );
        assert_eq!(collect(inputs), []);
    }

    #[test]
    fn a_restart_records_what_happened_while_it_was_down() {
        let recorded = json!({annotations::AGENT_RUN: "r1", annotations::AGENT_PHASE: "running"});
        let inputs = listed(
            vec![ns("shop-pr-1", "pr-1", recorded)],
            vec![job("shop-pr-1", "agent-r1", T0, json!({"succeeded": 1, "completionTime": "2025-01-01T01:00:00Z"}))],
        );
        let out: Vec<Record> = futures::executor::block_on(records(stream::iter(inputs), envs()).collect());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].previous, Some(Phase::Running));
        assert_eq!(out[0].last_activity.to_string(), "2025-01-01T01:00:00Z", "the completion time, not the clock");
        let patch = out[0].patch();
        assert_eq!(patch["metadata"]["annotations"][annotations::AGENT_FINISHED_AT], "2025-01-01T01:00:00Z");
    }

    #[test]
    fn the_newest_job_of_a_namespace_is_the_one_recorded() {
        let mut inputs = listed(vec![ns("shop-pr-1", "pr-1", json!({}))], vec![]);
        inputs.push(Input::Job(Box::new(Event::Apply(job(
            "shop-pr-1",
            "agent-r2",
            "2025-01-02T00:00:00Z",
            json!({"active": 1}),
        )))));
        // An older run finishing later does not overwrite the newer one.
        inputs.push(Input::Job(Box::new(Event::Apply(job("shop-pr-1", "agent-r1", T0, json!({"succeeded": 1}))))));
        assert_eq!(collect(inputs), [("shop-pr-1".into(), "r2".into(), Phase::Running)]);
    }

    #[test]
    fn jobs_outside_managed_namespaces_are_ignored() {
        let mut unmanaged = ns("other", "pr-9", json!({}));
        unmanaged.metadata.labels.as_mut().unwrap().remove("codex-k8s.io/slot");
        let mut inputs = listed(vec![unmanaged], vec![]);
        inputs.push(Input::Job(Box::new(Event::Apply(job("other", "agent-r1", T0, json!({"active": 1}))))));
        inputs.push(Input::Job(Box::new(Event::Apply(job("nowhere", "agent-r1", T0, json!({"active": 1}))))));
        assert_eq!(collect(inputs), []);
    }

    #[test]
    fn nothing_is_decided_before_both_streams_listed() {
        let inputs = vec![
            Input::Namespace(Box::new(Event::Apply(ns("shop-pr-1", "pr-1", json!({}))))),
            Input::Job(Box::new(Event::Apply(job("shop-pr-1", "agent-r1", T0, json!({"active": 1}))))),
        ];
        assert_eq!(collect(inputs), []);
    }

    #[test]
    fn a_namespace_that_arrives_after_its_job_is_recorded_then() {
        let mut inputs = listed(vec![], vec![job("shop-pr-1", "agent-r1", T0, json!({"active": 1}))]);
        inputs.push(Input::Namespace(Box::new(Event::Apply(ns("shop-pr-1", "pr-1", json!({}))))));
        assert_eq!(collect(inputs), [("shop-pr-1".into(), "r1".into(), Phase::Running)]);
    }

    #[test]
    fn a_relist_forgets_jobs_deleted_while_the_watch_was_down() {
        let mut t = Tracker::new(envs());
        for i in listed(vec![ns("a", "pr-1", json!({}))], vec![job("a", "agent-r1", T0, json!({"active": 1}))]) {
            t.apply(i);
        }
        assert_eq!(t.jobs().count(), 1);
        for ev in init(vec![]) {
            t.apply(Input::Job(Box::new(ev)));
        }
        assert_eq!(t.jobs().count(), 0);
    }
}
