//! The watcher against the Kubernetes API emulator, reached through a
//! kubeconfig exactly as in a cluster; git results checked with the `git` CLI.
//!
//! Time: the watcher's clock is injected (`Clock::from_fn` over an offset
//! the test moves), and commits are dated with `GIT_COMMITTER_DATE`, so no
//! test sleeps to let a TTL pass. Waiting happens only for the emulator's
//! watch streams to deliver, bounded by `wait`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use codex_k8s::watch::{self, lease, run, source::Source, Clock, SlotEnvs, Timestamp};
use kube_emulator::{Emulator, EmulatorConfig};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub(crate) const HOUR: i64 = 3600;

/// A temporary git repository holding a minimal project and rendered slots.
pub(crate) struct Repo {
    _tmp: TempDir,
    pub(crate) root: PathBuf,
}

const SERVICES: &str = r#"apiVersion: codex-k8s.io/v1alpha1
kind: ServiceStack
project: shop
environments:
  dev:
    namespace: shop-dev
  ai:
    slots: true
    namespace: "shop-{{ slot }}"
    idleTTL: 1h
services:
  - name: api
    manifests: [manifests/api.yaml.j2]
"#;

const API: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api\ndata:\n  env: \"{{ env }}\"\n";

impl Repo {
    pub(crate) fn new() -> Repo {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::write(root.join("services.yaml"), SERVICES).unwrap();
        std::fs::create_dir_all(root.join("manifests")).unwrap();
        std::fs::write(root.join("manifests/api.yaml.j2"), API).unwrap();
        let repo = Repo { _tmp: tmp, root };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Test"]);
        repo.git(&["config", "user.email", "test@example.com"]);
        repo.commit_all("sources", -10 * HOUR);
        repo
    }

    pub(crate) fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git").args(args).current_dir(&self.root).output().expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Commits everything, dated `offset` seconds from now.
    pub(crate) fn commit_all(&self, message: &str, offset: i64) {
        let date = format!("@{} +0000", Timestamp::now().as_second() + offset);
        self.git(&["add", "-A"]);
        let out = Command::new("git")
            .args(["commit", "-q", "--allow-empty", "-m", message])
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .current_dir(&self.root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// Writes a rendered slot (target.json, a kustomization, its Flux file).
    pub(crate) fn add_slot(&self, env: &str, slot: &str) {
        let dir = self.root.join(format!("rendered/{env}/{slot}"));
        std::fs::create_dir_all(dir.join(".codex-k8s")).unwrap();
        std::fs::create_dir_all(dir.join("00-stateful")).unwrap();
        let meta = json!({"project": "shop", "env": env, "slot": slot, "namespace": format!("shop-{slot}"),
            "host": format!("{slot}.ai.example.com"), "runId": "r1", "sets": {}, "inputsDigest": "x", "outputsDigest": "y"});
        std::fs::write(dir.join(".codex-k8s/target.json"), serde_json::to_string_pretty(&meta).unwrap()).unwrap();
        std::fs::write(dir.join("kustomization.yaml"), "resources: [00-stateful]\n").unwrap();
        std::fs::write(dir.join("00-stateful/namespace.yaml"), format!("kind: Namespace\nname: shop-{slot}\n"))
            .unwrap();
        let flux = self.root.join(format!("rendered/flux/{env}"));
        std::fs::create_dir_all(&flux).unwrap();
        std::fs::write(flux.join(format!("{slot}.yaml")), format!("# {slot}\n")).unwrap();
    }

    fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }

    pub(crate) fn tracked(&self, path: &str) -> bool {
        !self.git(&["ls-tree", "-r", "--name-only", "HEAD", "--", path]).trim().is_empty()
    }

    fn source(&self) -> Source {
        Source {
            repo: self.root.clone(),
            prefix: "rendered".into(),
            remote: None,
            branch: None,
            inventory: self.root.join("services.yaml"),
        }
    }
}

/// Now, in seconds since the epoch.
pub(crate) fn now_seconds() -> i64 {
    Timestamp::now().as_second()
}

/// A clock the test moves: system time plus an offset in seconds.
#[derive(Clone, Default)]
pub(crate) struct TestClock(Arc<AtomicI64>);

impl TestClock {
    pub(crate) fn set(&self, offset: i64) {
        self.0.store(offset, Ordering::SeqCst);
    }

    fn clock(&self) -> Clock {
        let off = self.0.clone();
        Clock::from_fn(move || {
            Timestamp::from_second(Timestamp::now().as_second() + off.load(Ordering::SeqCst)).unwrap()
        })
    }
}

fn envs() -> SlotEnvs {
    [("ai".to_string(), Duration::from_secs(HOUR as u64))].into()
}

pub(crate) fn config(repo: &Repo, clock: &TestClock, grace: Duration) -> run::Config {
    run::Config {
        source: repo.source(),
        envs: envs(),
        prune_grace: grace,
        interval: Duration::from_millis(300),
        dry_run: false,
        lease: None,
        identity: "test-watcher".into(),
        clock: clock.clock(),
        git: Default::default(),
        health: Default::default(),
    }
}

pub(crate) async fn client(emu: &Emulator, dir: &Path) -> kube::Client {
    let path = dir.join(".git/kubeconfig");
    emu.write_kubeconfig(&path).unwrap();
    run::client(&run::Cluster { kubeconfig: Some(path), context: None }).await.unwrap()
}

pub(crate) fn slot_ns(name: &str, env: &str, slot: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {
        "app.kubernetes.io/managed-by": "codex-k8s", "codex-k8s.io/env": env, "codex-k8s.io/slot": slot}}})
}

pub(crate) fn agent_job(ns: &str, run_id: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": format!("agent-{run_id}"), "namespace": ns,
        "labels": {"codex-k8s.io/role": "agent", "app.kubernetes.io/managed-by": "codex-k8s"}},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "agent", "image": "agent", "env": [{"name": "RUN_ID", "value": run_id}]}]}}}})
}

fn annotation(emu: &Emulator, ns: &str, key: &str) -> Option<String> {
    emu.get("Namespace", None, ns)?["metadata"]["annotations"][key].as_str().map(str::to_owned)
}

pub(crate) fn phase(emu: &Emulator, ns: &str) -> Option<String> {
    annotation(emu, ns, watch::annotations::AGENT_PHASE)
}

pub(crate) fn exists(emu: &Emulator, ns: &str) -> bool {
    emu.get("Namespace", None, ns).is_some()
}

pub(crate) fn terminating_or_gone(emu: &Emulator, ns: &str) -> bool {
    emu.get("Namespace", None, ns).is_none_or(|n| n["metadata"]["deletionTimestamp"].is_string())
}

pub(crate) fn event_reasons(emu: &Emulator, ns: &str) -> Vec<String> {
    emu.list("events.events.k8s.io", Some(ns)).iter().filter_map(|e| e["reason"].as_str().map(str::to_owned)).collect()
}

pub(crate) async fn wait(emu: &Emulator, what: &str, cond: impl FnMut(&Emulator) -> bool) {
    assert!(emu.wait_until(Duration::from_secs(15), cond).await, "timed out waiting for {what}");
}

/// A running watcher task and the handle that stops it.
pub(crate) struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<watch::Result<()>>,
}

impl Running {
    pub(crate) fn start(client: kube::Client, config: run::Config) -> Running {
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(run::run(client, config, async {
            let _ = rx.await;
        }));
        Running { stop: Some(tx), task }
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("watcher stops").unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_phases_are_recorded_as_annotations_and_events() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    let client = client(&emu, &repo.root).await;
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let w = Running::start(client, config(&repo, &TestClock::default(), Duration::from_secs(600)));

    emu.create(agent_job("shop-pr-1", "r1")).unwrap();
    wait(&emu, "pending", |e| phase(e, "shop-pr-1").as_deref() == Some("pending")).await;
    emu.update_status("Job", Some("shop-pr-1"), "agent-r1", json!({"active": 1, "startTime": "2030-01-01T00:00:00Z"}))
        .unwrap();
    wait(&emu, "running", |e| phase(e, "shop-pr-1").as_deref() == Some("running")).await;
    assert_eq!(annotation(&emu, "shop-pr-1", watch::annotations::AGENT_RUN).as_deref(), Some("r1"));
    assert_eq!(
        annotation(&emu, "shop-pr-1", watch::annotations::AGENT_STARTED_AT).as_deref(),
        Some("2030-01-01T00:00:00Z")
    );
    assert_eq!(annotation(&emu, "shop-pr-1", watch::annotations::AGENT_FINISHED_AT), None);
    emu.update_status(
        "Job",
        Some("shop-pr-1"),
        "agent-r1",
        json!({"succeeded": 1, "startTime": "2030-01-01T00:00:00Z", "completionTime": "2030-01-01T00:10:00Z",
               "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2030-01-01T00:10:00Z"}]}),
    )
    .unwrap();
    wait(&emu, "succeeded", |e| phase(e, "shop-pr-1").as_deref() == Some("succeeded")).await;
    assert_eq!(
        annotation(&emu, "shop-pr-1", watch::annotations::AGENT_FINISHED_AT).as_deref(),
        Some("2030-01-01T00:10:00Z")
    );
    assert_eq!(
        annotation(&emu, "shop-pr-1", watch::annotations::LAST_ACTIVITY).as_deref(),
        Some("2030-01-01T00:10:00Z")
    );
    wait(&emu, "three events", |e| event_reasons(e, "shop-pr-1").len() >= 3).await;
    let mut reasons = event_reasons(&emu, "shop-pr-1");
    reasons.sort();
    assert_eq!(reasons, ["AgentPending", "AgentRunning", "AgentSucceeded"], "one Event per phase change");
    let ev = emu.list("events.events.k8s.io", Some("shop-pr-1")).remove(0);
    assert_eq!(ev["regarding"]["kind"], "Namespace");
    assert_eq!(ev["reportingController"], run::CONTROLLER);

    // Followed with watches (list + watch), not polling; written with merge patches.
    let log = emu.requests();
    assert!(log.iter().any(|r| r.watch && r.path == "/apis/batch/v1/jobs"), "jobs are watched");
    assert!(log.iter().any(|r| r.watch && r.path == "/api/v1/namespaces"), "namespaces are watched");
    // Agent phases follow the watch; the lists here are the TTL passes' own
    // fresh views (one per pass, never one per event).
    let job_lists = log.iter().filter(|r| !r.watch && r.path == "/apis/batch/v1/jobs").count();
    assert!(job_lists >= 1, "the TTL pass lists Jobs itself");
    let patches: Vec<_> = log.iter().filter(|r| r.method == "PATCH").collect();
    assert!(patches.iter().all(|r| r.path == "/api/v1/namespaces/shop-pr-1"
        && r.content_type.as_deref() == Some("application/merge-patch+json")));
    assert_eq!(patches.len(), 3);
    w.stop().await;
    emu.shutdown().await;
}

/// Namespaces created, a watcher pass run with the clock `offset` seconds ahead.
async fn once(emu: &Emulator, repo: &Repo, clock: &TestClock, grace: Duration) -> run::Report {
    let client = client(emu, &repo.root).await;
    run::once(&client, &config(repo, clock, grace)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_slot_is_removed_from_git_and_its_namespace_deleted_after_the_grace() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.add_slot("ai", "pr-2");
    repo.commit_all("render slots", -3 * HOUR);
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    emu.create(slot_ns("shop-pr-2", "ai", "pr-2")).unwrap();
    emu.create(agent_job("shop-pr-2", "r7")).unwrap();
    emu.update_status("Job", Some("shop-pr-2"), "agent-r7", json!({"active": 1})).unwrap();

    // Two hours on: both namespaces are 2 h old, the commit 5 h; pr-2's agent runs.
    let clock = TestClock::default();
    clock.set(2 * HOUR);
    let grace = Duration::from_secs(3 * HOUR as u64);
    let report = once(&emu, &repo, &clock, grace).await;
    assert!(report.commit.is_some(), "{report:?}");
    assert!(!repo.tracked("rendered/ai/pr-1"), "pr-1 left git");
    assert!(!repo.tracked("rendered/flux/ai/pr-1.yaml"), "with its Flux file");
    assert!(repo.tracked("rendered/ai/pr-2/.codex-k8s/target.json"), "a running agent keeps its slot");
    let subject = repo.git(&["log", "-1", "--format=%s%n%b"]);
    assert!(subject.starts_with("remove slot(s) ai/pr-1 (idle past idleTTL)"), "{subject}");
    assert!(subject.contains("Removed-By: codex-k8s watch (test-watcher)"), "{subject}");
    assert_eq!(repo.git(&["status", "--porcelain"]), "", "the work tree follows the commit");
    assert!(!repo.root.join("rendered/ai/pr-1").exists());
    // Within the grace the GitOps controller gets to prune it first.
    assert!(exists(&emu, "shop-pr-1") && !terminating_or_gone(&emu, "shop-pr-1"));
    assert_eq!(phase(&emu, "shop-pr-2").as_deref(), Some("running"));

    // Still within the grace (the removal commit is 2.5 h old): nothing new.
    let head = repo.head();
    clock.set(2 * HOUR + 1800);
    let report = once(&emu, &repo, &clock, grace).await;
    assert!(report.actions.is_empty(), "{report:?}");
    assert_eq!(repo.head(), head);

    // Past the grace: the namespace goes; pr-2 (still running) stays.
    clock.set(3 * HOUR + 60);
    once(&emu, &repo, &clock, grace).await;
    wait(&emu, "shop-pr-1 deleted", |e| !exists(e, "shop-pr-1")).await;
    assert!(exists(&emu, "shop-pr-2"));
    assert_eq!(repo.head(), head, "no further commit");
    let deletes: Vec<_> = emu.requests().into_iter().filter(|r| r.method == "DELETE").map(|r| r.path).collect();
    assert_eq!(deletes, ["/api/v1/namespaces/shop-pr-1"]);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_commits_recent_activity_and_pins_keep_their_slots() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    for s in ["old", "fresh", "active", "pinned"] {
        repo.add_slot("ai", s);
    }
    repo.commit_all("render slots", -3 * HOUR);
    // "fresh" was re-rendered 10 minutes before the (shifted) clock.
    std::fs::write(repo.root.join("rendered/ai/fresh/kustomization.yaml"), "resources: [00-stateful] # v2\n").unwrap();
    repo.commit_all("render ai/fresh", 2 * HOUR - 600);
    for s in ["old", "fresh", "active", "pinned"] {
        emu.create(slot_ns(&format!("shop-{s}"), "ai", s)).unwrap();
    }
    let recent = Timestamp::from_second(Timestamp::now().as_second() + 2 * HOUR - 300).unwrap().to_string();
    emu.patch(
        "Namespace",
        None,
        "shop-active",
        json!({"metadata": {"annotations": {"codex-k8s.io/last-activity": recent}}}),
    )
    .unwrap();
    emu.patch("Namespace", None, "shop-pinned", json!({"metadata": {"annotations": {"codex-k8s.io/keep": "true"}}}))
        .unwrap();

    let clock = TestClock::default();
    clock.set(2 * HOUR);
    let report = once(&emu, &repo, &clock, Duration::ZERO).await;
    let removed: Vec<String> = report
        .actions
        .iter()
        .filter_map(|a| match a {
            watch::ttl::Action::RemoveFromGit { slot, .. } => Some(slot.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(removed, ["old"]);
    assert!(!repo.tracked("rendered/ai/old"));
    for s in ["fresh", "active", "pinned"] {
        assert!(repo.tracked(&format!("rendered/ai/{s}/.codex-k8s/target.json")), "{s} kept in git");
        assert!(exists(&emu, &format!("shop-{s}")));
    }
    // Grace 0: the removed slot's namespace goes in the same pass.
    wait(&emu, "shop-old deleted", |e| terminating_or_gone(e, "shop-old")).await;

    // Much later the pinned slot is still there.
    clock.set(50 * HOUR);
    once(&emu, &repo, &clock, Duration::ZERO).await;
    assert!(repo.tracked("rendered/ai/pinned/.codex-k8s/target.json"));
    assert!(exists(&emu, "shop-pinned") && !terminating_or_gone(&emu, "shop-pinned"));
    assert!(!repo.tracked("rendered/ai/fresh"), "fresh expired meanwhile");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_namespaces_are_never_touched_even_when_they_look_like_slots() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    for s in ["no-manager", "no-env", "no-slot", "helm", "plain-env", "claimed"] {
        repo.add_slot("ai", s);
    }
    repo.commit_all("render slots", -30 * HOUR);
    // Slots later removed from git, whose namespaces lack a label.
    for s in ["no-manager", "no-env", "no-slot", "helm", "plain-env"] {
        repo.git(&["rm", "-rq", &format!("rendered/ai/{s}")]);
    }
    repo.commit_all("remove", -20 * HOUR);
    for s in ["no-manager", "no-env", "no-slot", "helm", "plain-env"] {
        repo.add_slot("ai", &format!("{s}-live"));
    }
    repo.commit_all("render more", -20 * HOUR);

    let labelled = |name: &str, labels: Value| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
    let m = "app.kubernetes.io/managed-by";
    let (e, s) = ("codex-k8s.io/env", "codex-k8s.io/slot");
    for suffix in ["", "-live"] {
        emu.create(labelled(&format!("shop-no-manager{suffix}"), json!({e: "ai", s: format!("no-manager{suffix}")})))
            .unwrap();
        emu.create(labelled(&format!("shop-no-env{suffix}"), json!({m: "codex-k8s", s: format!("no-env{suffix}")})))
            .unwrap();
        emu.create(labelled(&format!("shop-no-slot{suffix}"), json!({m: "codex-k8s", e: "ai"}))).unwrap();
        emu.create(labelled(&format!("shop-helm{suffix}"), json!({m: "Helm", e: "ai", s: format!("helm{suffix}")})))
            .unwrap();
        emu.create(labelled(
            &format!("shop-plain-env{suffix}"),
            json!({m: "codex-k8s", e: "dev", s: format!("plain-env{suffix}")}),
        ))
        .unwrap();
    }
    // Fully labelled, but git never held its slot.
    emu.create(slot_ns("shop-stray", "ai", "stray")).unwrap();
    // Fully labelled, but target.json names another namespace for the slot.
    emu.create(slot_ns("impostor", "ai", "claimed")).unwrap();
    for ns in ["shop-no-env-live", "shop-helm-live", "shop-plain-env-live"] {
        emu.create(agent_job(ns, "r1")).unwrap();
        emu.update_status("Job", Some(ns), "agent-r1", json!({"active": 1})).unwrap();
    }

    let head = repo.head();
    let before: Vec<Value> = emu.list("Namespace", None);
    let clock = TestClock::default();
    clock.set(100 * HOUR);
    let report = once(&emu, &repo, &clock, Duration::ZERO).await;
    assert!(report.actions.is_empty() && report.recorded.is_empty(), "{report:?}");
    assert_eq!(repo.head(), head, "git untouched");
    assert_eq!(emu.list("Namespace", None), before, "namespaces untouched");
    let writes: Vec<_> = emu.requests().into_iter().filter(|r| r.method != "GET").map(|r| (r.method, r.path)).collect();
    assert!(writes.is_empty(), "{writes:?}");
    emu.shutdown().await;
}

/// A namespace labelled as slot ai/pr-9 whose name is not the one the
/// inventory gives that slot (`shop-{{ slot }}` → `shop-pr-9`) is never
/// deleted, even when the slot's committed `target.json` claims it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_alike_namespace_with_the_wrong_name_is_never_deleted() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    for slot in ["pr-8", "pr-9"] {
        repo.add_slot("ai", slot);
        let meta = repo.root.join(format!("rendered/ai/{slot}/.codex-k8s/target.json"));
        let text = std::fs::read_to_string(&meta).unwrap().replace(&format!("shop-{slot}"), &format!("victim-{slot}"));
        std::fs::write(&meta, text).unwrap();
    }
    repo.commit_all("render slots claiming other namespaces", -30 * HOUR);
    repo.git(&["rm", "-rq", "rendered/ai/pr-9"]);
    repo.commit_all("remove pr-9", -20 * HOUR);
    // pr-8 idle in git, pr-9 removed long ago: both would be acted on by name.
    emu.create(slot_ns("victim-pr-8", "ai", "pr-8")).unwrap();
    emu.create(slot_ns("victim-pr-9", "ai", "pr-9")).unwrap();
    let head = repo.head();
    let clock = TestClock::default();
    clock.set(100 * HOUR);
    let report = once(&emu, &repo, &clock, Duration::ZERO).await;
    assert!(report.actions.is_empty(), "{report:?}");
    assert_eq!(repo.head(), head, "git untouched");
    assert!(exists(&emu, "victim-pr-8") && exists(&emu, "victim-pr-9"));
    let writes: Vec<_> = emu.requests().into_iter().filter(|r| r.method != "GET").map(|r| (r.method, r.path)).collect();
    assert!(writes.is_empty(), "{writes:?}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_and_a_410_recover() {
    // No bookmarks: a bookmark carrying the RV advanced by expire_watches()
    // would let the client resume without the 410 this test wants.
    let emu =
        Emulator::start_with(EmulatorConfig { bookmark_interval: Duration::from_secs(3600), ..Default::default() })
            .await;
    let repo = Repo::new();
    let client = client(&emu, &repo.root).await;
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    emu.create(agent_job("shop-pr-1", "r1")).unwrap();
    let w = Running::start(client, config(&repo, &TestClock::default(), Duration::from_secs(600)));
    wait(&emu, "pending", |e| phase(e, "shop-pr-1").as_deref() == Some("pending")).await;
    wait(&emu, "two watches", |e| e.open_watches() == 2).await;

    emu.drop_watches();
    emu.update_status("Job", Some("shop-pr-1"), "agent-r1", json!({"active": 1})).unwrap();
    wait(&emu, "running after a dropped watch", |e| phase(e, "shop-pr-1").as_deref() == Some("running")).await;

    wait(&emu, "watches back", |e| e.open_watches() == 2).await;
    emu.clear_requests();
    emu.expire_watches();
    // The re-watch from the old resourceVersion gets 410 Expired: relist.
    let relisted = |e: &Emulator| e.requests().iter().any(|r| !r.watch && r.path == "/apis/batch/v1/jobs");
    wait(&emu, "jobs relisted after 410", relisted).await;
    emu.update_status("Job", Some("shop-pr-1"), "agent-r1", json!({"failed": 1})).unwrap();
    wait(&emu, "failed after 410", |e| phase(e, "shop-pr-1").as_deref() == Some("failed")).await;
    // A job created while relisting is seen too.
    emu.create(slot_ns("shop-pr-2", "ai", "pr-2")).unwrap();
    emu.create(agent_job("shop-pr-2", "r2")).unwrap();
    wait(&emu, "new slot recorded", |e| phase(e, "shop-pr-2").as_deref() == Some("pending")).await;
    let mut reasons = event_reasons(&emu, "shop-pr-1");
    reasons.sort();
    assert_eq!(reasons, ["AgentFailed", "AgentPending", "AgentRunning"], "no duplicates after the relist");
    w.stop().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_the_git_commit_and_the_namespace_delete_finishes_the_job() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -5 * HOUR);
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();

    // The first watcher removed the slot from git, then died before deleting.
    let clock = TestClock::default();
    clock.set(2 * HOUR);
    let oid = watch::source::remove_slots(
        &repo.source(),
        &[("ai".into(), "pr-1".into())],
        "idle",
        "first",
        Some(git2::Oid::from_str(&repo.head()).unwrap()),
    )
    .unwrap();
    assert!(matches!(oid, watch::source::Removal::Committed(_)));
    assert!(!repo.tracked("rendered/ai/pr-1"));
    assert!(exists(&emu, "shop-pr-1"));

    // A new watcher, from nothing but git and the cluster, deletes it once
    // the grace has passed since the removal commit.
    let client = client(&emu, &repo.root).await;
    let w = Running::start(client, config(&repo, &clock, Duration::from_secs(HOUR as u64)));
    wait(&emu, "shop-pr-1 deleted", |e| terminating_or_gone(e, "shop-pr-1")).await;
    w.stop().await;
    assert_eq!(repo.git(&["rev-list", "--count", "HEAD"]).trim(), "3", "no second removal commit");
    emu.shutdown().await;
}

pub(crate) fn holder(emu: &Emulator) -> Option<String> {
    emu.get("Lease", Some("default"), "codex-k8s-watcher")?["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_watchers_elect_one_leader_and_the_second_takes_over_when_the_first_stops() {
    let emu =
        Emulator::start_with(EmulatorConfig { bookmark_interval: Duration::from_millis(500), ..Default::default() })
            .await;
    let repo = Repo::new();
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let clock = TestClock::default();
    let start = |id: &str, client: kube::Client| {
        let mut c = config(&repo, &clock, Duration::from_secs(600));
        let mut l = lease::Config::new("default", "codex-k8s-watcher", id);
        l.duration = Duration::from_secs(2);
        l.renew_every = Duration::from_millis(200);
        c.lease = Some(l);
        c.identity = id.into();
        Running::start(client, c)
    };
    let a = start("a", client(&emu, &repo.root).await);
    wait(&emu, "a leads", |e| holder(e).as_deref() == Some("a")).await;
    let b = start("b", client(&emu, &repo.root).await);
    wait(&emu, "b watches", |e| e.open_watches() == 4).await;

    emu.create(agent_job("shop-pr-1", "r1")).unwrap();
    wait(&emu, "pending", |e| phase(e, "shop-pr-1").as_deref() == Some("pending")).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // let a follower misbehave, if it would
    assert_eq!(holder(&emu).as_deref(), Some("a"), "the lease stays with a while it renews");
    let events = emu.list("events.events.k8s.io", Some("shop-pr-1"));
    assert_eq!(events.len(), 1, "only the leader acts: {events:#?}");
    assert_eq!(events[0]["reportingInstance"], "a");

    // a stops and releases the lease; b takes over and acts.
    a.stop().await;
    wait(&emu, "b leads", |e| holder(e).as_deref() == Some("b")).await;
    emu.update_status("Job", Some("shop-pr-1"), "agent-r1", json!({"active": 1})).unwrap();
    wait(&emu, "running", |e| phase(e, "shop-pr-1").as_deref() == Some("running")).await;
    wait(&emu, "b's event", |e| e.list("events.events.k8s.io", Some("shop-pr-1")).len() == 2).await;
    let by_b = emu
        .list("events.events.k8s.io", Some("shop-pr-1"))
        .into_iter()
        .filter(|e| e["reportingInstance"] == "b")
        .count();
    assert_eq!(by_b, 1);
    let lease = emu.get("Lease", Some("default"), "codex-k8s-watcher").unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease:#}");
    b.stop().await;
    assert_eq!(holder(&emu), None, "b released the lease");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_dies_without_releasing_is_replaced_after_the_lease_expires() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    // A lease held by a crashed pod, renewed long ago.
    emu.create(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "codex-k8s-watcher", "namespace": "default"},
        "spec": {"holderIdentity": "crashed", "leaseDurationSeconds": 2, "renewTime": "2020-01-01T00:00:00.000000Z"}}))
        .unwrap();
    let mut c = config(&repo, &TestClock::default(), Duration::from_secs(600));
    let mut l = lease::Config::new("default", "codex-k8s-watcher", "b");
    l.duration = Duration::from_secs(2);
    l.renew_every = Duration::from_millis(200);
    c.lease = Some(l);
    let b = Running::start(client(&emu, &repo.root).await, c);
    wait(&emu, "b takes the expired lease", |e| holder(e).as_deref() == Some("b")).await;
    b.stop().await;
    emu.shutdown().await;
}

/// The binary, as an operator runs it: `watch --once` and `status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_runs_one_pass_and_reports_status() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.add_slot("ai", "pr-2");
    repo.commit_all("render", -HOUR / 2);
    repo.git(&["rm", "-rq", "rendered/ai/pr-2", "rendered/flux/ai/pr-2.yaml"]);
    repo.commit_all("remove ai/pr-2", -60);
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    emu.create(slot_ns("shop-pr-2", "ai", "pr-2")).unwrap();
    emu.create(agent_job("shop-pr-1", "r1")).unwrap();
    emu.update_status("Job", Some("shop-pr-1"), "agent-r1", json!({"active": 1})).unwrap();
    let kubeconfig = repo.root.join(".git/kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let bin = env!("CARGO_BIN_EXE_codex-k8s");
    let root = repo.root.clone();
    let kc = kubeconfig.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["-C"])
            .arg(&root)
            .args(["watch", "--once", "--prune-grace", "30s", "--log-format", "json", "--kubeconfig"])
            .arg(&kc)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let logs: Vec<Value> = stderr.lines().map(|l| serde_json::from_str(l).expect("JSON log lines")).collect();
    assert!(logs.iter().any(|l| l["message"] == "agent phase" && l["phase"] == "running"), "{stderr}");
    assert!(
        logs.iter().any(|l| l["namespace"] == "shop-pr-2" && l["message"].as_str().unwrap().contains("deleting")),
        "{stderr}"
    );
    wait(&emu, "shop-pr-2 deleted", |e| terminating_or_gone(e, "shop-pr-2")).await;
    assert_eq!(phase(&emu, "shop-pr-1").as_deref(), Some("running"));

    emu.patch("Namespace", None, "shop-pr-1", json!({"metadata": {"annotations": {"codex-k8s.io/keep": "true"}}}))
        .unwrap();
    let root = repo.root.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .arg("-C")
            .arg(&root)
            .args(["status", "--format", "json", "--kubeconfig"])
            .arg(&kubeconfig)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pr1 = rows.as_array().unwrap().iter().find(|r| r["slot"] == "pr-1").unwrap();
    assert_eq!(pr1["namespace"], "shop-pr-1");
    assert_eq!(pr1["host"], "pr-1.ai.example.com");
    assert_eq!(pr1["agentRun"], "r1");
    assert_eq!(pr1["agentPhase"], "running");
    assert_eq!(pr1["pinned"], true);
    assert_eq!(pr1["inGit"], true);
    assert_eq!(pr1["ttlSeconds"], 3600);
    emu.shutdown().await;
}

// ---- faults (issue: the watcher under faults) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_list_that_fails_keeps_every_slot() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -5 * HOUR);
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let clock = TestClock::default();
    clock.set(2 * HOUR);
    let client = client(&emu, &repo.root).await;
    let cfg = config(&repo, &clock, Duration::from_secs(HOUR as u64));
    // The Job view cannot be refreshed: no decision on a stale view.
    emu.fail_always("GET", "/apis/batch/v1", 503);
    assert!(run::once(&client, &cfg).await.is_err());
    assert!(repo.tracked("rendered/ai/pr-1"), "kept on a stale Job view");
    emu.clear_faults();
    emu.fail_always("GET", "/api/v1/namespaces", 500);
    assert!(run::once(&client, &cfg).await.is_err());
    assert!(repo.tracked("rendered/ai/pr-1"), "kept on a stale Namespace view");
    emu.clear_faults();
    let report = run::once(&client, &cfg).await.unwrap();
    assert!(report.commit.is_some(), "removed once the view is fresh: {report:?}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_that_never_answers_fails_the_pass_within_the_request_timeout() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -5 * HOUR);
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let clock = TestClock::default();
    clock.set(2 * HOUR);
    let client = client(&emu, &repo.root).await;
    emu.hang_always("GET", "/apis/batch/v1");
    let started = std::time::Instant::now();
    let err = run::once(&client, &config(&repo, &clock, Duration::from_secs(HOUR as u64))).await.unwrap_err();
    assert!(started.elapsed() < run::REQUEST_TIMEOUT + Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(err.to_string().contains("did not answer"), "{err}");
    assert!(repo.tracked("rendered/ai/pr-1"));
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_with_an_unreadable_target_json_is_live_and_reported() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -9 * HOUR);
    std::fs::write(repo.root.join("rendered/ai/pr-1/.codex-k8s/target.json"), "{ not json").unwrap();
    repo.commit_all("break metadata", -8 * HOUR);
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let clock = TestClock::default();
    clock.set(3 * HOUR);
    let report = once(&emu, &repo, &clock, Duration::ZERO).await;
    assert!(report.actions.is_empty(), "{report:?}");
    assert!(exists(&emu, "shop-pr-1") && !terminating_or_gone(&emu, "shop-pr-1"), "its namespace stays");
    assert!(repo.tracked("rendered/ai/pr-1"));
    assert!(report.kept.iter().any(|k| k.slot == "pr-1" && k.reason.contains("target.json")), "{report:?}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_uncommitted_changes_under_a_slot_are_never_overwritten() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -5 * HOUR);
    std::fs::write(repo.root.join("rendered/ai/pr-1/kustomization.yaml"), "resources: [] # local edit\n").unwrap();
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let clock = TestClock::default();
    clock.set(2 * HOUR);
    let client = client(&emu, &repo.root).await;
    let err = run::once(&client, &config(&repo, &clock, Duration::from_secs(HOUR as u64))).await.unwrap_err();
    assert!(err.to_string().contains("uncommitted changes"), "{err}");
    let kept = std::fs::read_to_string(repo.root.join("rendered/ai/pr-1/kustomization.yaml")).unwrap();
    assert!(kept.contains("local edit"));
    assert!(repo.tracked("rendered/ai/pr-1"));
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_remote_the_local_branch_and_work_tree_are_never_moved() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -5 * HOUR);
    let bare = tempfile::tempdir().unwrap();
    let bare_path = bare.path().to_str().unwrap().to_owned();
    repo.git(&["clone", "-q", "--bare", repo.root.to_str().unwrap(), &bare_path]);
    repo.git(&["remote", "add", "origin", &bare_path]);
    // An unpushed local commit and an uncommitted edit.
    std::fs::write(repo.root.join("notes.txt"), "mine\n").unwrap();
    repo.commit_all("local work", -HOUR);
    let local = repo.head();
    std::fs::write(repo.root.join("rendered/ai/pr-1/kustomization.yaml"), "# edit\n").unwrap();
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let clock = TestClock::default();
    clock.set(2 * HOUR);
    let mut cfg = config(&repo, &clock, Duration::from_secs(HOUR as u64));
    cfg.source.remote = Some("origin".into());
    let client = client(&emu, &repo.root).await;
    let report = run::once(&client, &cfg).await.unwrap();
    assert!(report.commit.is_some(), "{report:?}");
    assert_eq!(repo.head(), local, "the local branch keeps its commit");
    assert!(std::fs::read_to_string(repo.root.join("rendered/ai/pr-1/kustomization.yaml")).unwrap().contains("edit"));
    let remote_tree =
        Command::new("git").args(["--git-dir", &bare_path, "ls-tree", "-r", "--name-only", "main"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&remote_tree.stdout).contains("rendered/ai/pr-1/"), "removed on the remote");
    emu.shutdown().await;
}

/// A bare clone of `repo` as its `origin`.
fn bare_origin(repo: &Repo) -> (TempDir, String) {
    let bare = tempfile::tempdir().unwrap();
    let bare_path = bare.path().to_str().unwrap().to_owned();
    repo.git(&["clone", "-q", "--bare", repo.root.to_str().unwrap(), &bare_path]);
    repo.git(&["remote", "add", "origin", &bare_path]);
    (bare, bare_path)
}

fn git_in(dir: &str, args: &[&str]) -> String {
    let out = Command::new("git").arg("--git-dir").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Item: a removal retried after a rejected push is decided again on the
/// new tip. The remote's `update` hook re-renders the slot (a new commit on
/// the remote branch) while the watcher's removal is being pushed, so the
/// push's compare-and-swap fails; the watcher must read the new tip, see
/// the fresh commit, and keep the slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_re_rendered_while_its_removal_is_pushed_is_decided_again_and_kept() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -5 * HOUR);
    let (_bare, bare_path) = bare_origin(&repo);
    // The re-render is dated at the watcher's (shifted) now: 2 h ahead.
    let date = Timestamp::now().as_second() + 2 * HOUR;
    let hook = format!(
        r#"#!/bin/sh
[ "$1" = refs/heads/main ] || exit 0
[ -f rerendered ] && exit 0
touch rerendered
tip=$(git rev-parse refs/heads/main)
export GIT_INDEX_FILE="$PWD/rerender.index"
git read-tree "$tip"
blob=$(echo 'resources: [00-stateful] # re-rendered' | git hash-object -w --stdin)
git update-index --add --cacheinfo 100644,"$blob",rendered/ai/pr-1/kustomization.yaml
tree=$(git write-tree)
c=$(GIT_AUTHOR_NAME=ci GIT_AUTHOR_EMAIL=ci@example.com GIT_COMMITTER_NAME=ci GIT_COMMITTER_EMAIL=ci@example.com \
    GIT_AUTHOR_DATE="@{date} +0000" GIT_COMMITTER_DATE="@{date} +0000" git commit-tree "$tree" -p "$tip" -m 'render ai/pr-1')
git update-ref refs/heads/main "$c" "$tip"
"#
    );
    let hook_path = Path::new(&bare_path).join("hooks/update");
    std::fs::write(&hook_path, hook).unwrap();
    Command::new("chmod").arg("+x").arg(&hook_path).status().unwrap();
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let clock = TestClock::default();
    clock.set(2 * HOUR);
    let mut cfg = config(&repo, &clock, Duration::ZERO);
    cfg.source.remote = Some("origin".into());
    let client = client(&emu, &repo.root).await;
    let report = run::once(&client, &cfg).await.unwrap();
    assert!(Path::new(&bare_path).join("rerendered").exists(), "the removal was pushed once and rejected");
    assert_eq!(report.commit, None, "{report:?}");
    assert!(report.actions.is_empty(), "decided again on the new tip: {report:?}");
    let log = git_in(&bare_path, &["log", "--format=%s", "main"]);
    assert_eq!(log.lines().next(), Some("render ai/pr-1"), "{log}");
    assert!(!log.contains("watch"), "no removal landed: {log}");
    let tree = git_in(&bare_path, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(tree.contains("rendered/ai/pr-1/.codex-k8s/target.json"), "{tree}");
    assert!(exists(&emu, "shop-pr-1") && !terminating_or_gone(&emu, "shop-pr-1"));
    emu.shutdown().await;
}

/// Item: `Retry-After` is honoured only up to its cap (5 s): a 429 asking
/// for 600 s fails the pass at once (the next pass retries), well inside
/// the request timeout, with no retry inside the pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_600_fails_the_pass_at_once() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -5 * HOUR);
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let clock = TestClock::default();
    clock.set(2 * HOUR);
    let client = client(&emu, &repo.root).await;
    emu.inject("GET", "/apis/batch/v1", kube_emulator::FaultEffect::RetryAfter(429, 600), true);
    let started = std::time::Instant::now();
    let err = run::once(&client, &config(&repo, &clock, Duration::ZERO)).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "waited {took:?} for Retry-After");
    let text = format!("{err}: {:?}", std::error::Error::source(&err));
    assert!(!text.contains("did not answer"), "{text}");
    assert!(repo.tracked("rendered/ai/pr-1"), "nothing decided on a failed view");
    let job_lists = emu.requests().iter().filter(|r| r.path == "/apis/batch/v1/jobs").count();
    assert_eq!(job_lists, 1, "no retry inside the pass");
    emu.shutdown().await;
}

fn lease_config(name: &str, id: &str) -> lease::Config {
    let mut l = lease::Config::new("default", name, id);
    l.duration = Duration::from_secs(2);
    l.renew_every = Duration::from_millis(200);
    l
}

/// Item: a leader whose Lease renewals hang steps down before its lease
/// can expire for the others, and writes nothing after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_renewals_hang_steps_down_before_the_lease_expires_and_removes_nothing() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -5 * HOUR);
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let clock = TestClock::default();

    // The elector alone: its published leadership.
    let probe = lease::Elector::new(client(&emu, &repo.root).await, lease_config("probe", "p"), clock.clock());
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let probe_task = tokio::spawn(lease::run(probe, tx, stop_rx));
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|l| *l)).await.expect("probe leads").unwrap();

    // The whole watcher, leading; its slot is not idle yet (namespace just created).
    let mut c = config(&repo, &clock, Duration::ZERO);
    c.lease = Some(lease_config("codex-k8s-watcher", "a"));
    c.identity = "a".into();
    let w = Running::start(client(&emu, &repo.root).await, c);
    wait(&emu, "a leads", |e| holder(e).as_deref() == Some("a")).await;

    emu.hang_always("PUT", "/apis/coordination.k8s.io/");
    let hung = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|l| !*l)).await.expect("probe steps down").unwrap();
    let stepped_down = hung.elapsed();
    assert!(stepped_down < Duration::from_secs(2), "stepped down after {stepped_down:?}, lease duration 2s");

    // Past the watcher's step-down too, make the slot idle: a leader would
    // remove it at its next pass (every 300 ms).
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(hung.elapsed())).await;
    clock.set(2 * HOUR);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!*rx.borrow(), "still not leading while renewals hang");
    assert!(repo.tracked("rendered/ai/pr-1"), "a leader that could not renew removed a slot");
    assert!(exists(&emu, "shop-pr-1"));

    stop_tx.send_replace(true);
    tokio::time::timeout(Duration::from_secs(5), probe_task).await.expect("probe stops").unwrap();
    w.stop().await;
    emu.shutdown().await;
}

/// Item: SIGTERM stops the watcher (the binary) in bounded time even while
/// every API request hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_watcher_in_bounded_time_while_requests_hang() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -HOUR / 2);
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let kubeconfig = repo.root.join(".git/kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_codex-k8s"))
        .arg("-C")
        .arg(&repo.root)
        .args(["watch", "--interval", "1s", "--lease-namespace", "default", "--lease-duration", "2s"])
        .args(["--identity", "cli", "--health-addr", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(repo.root.join(".git/watch.log")).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(repo.root.join(".git/watch.log")).unwrap_or_default();
    wait(&emu, "the binary leads", |e| holder(e).as_deref() == Some("cli")).await;
    emu.hang_always("*", "/");
    tokio::time::sleep(Duration::from_millis(1500)).await; // requests now hang in flight
    let started = std::time::Instant::now();
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("still running 20 s after SIGTERM:\n{}", log());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = started.elapsed();
    let bound = lease::RELEASE_TIMEOUT + run::SHUTDOWN_GRACE + Duration::from_secs(1);
    assert!(took < bound, "stopped {took:?} after SIGTERM (bound {bound:?}):\n{}", log());
    assert!(status.success(), "{status:?}:\n{}", log());
    emu.shutdown().await;
}

/// Item: leader election tolerates clock skew. A dead holder whose clock
/// ran 2 h ahead left a `renewTime` 2 h in the future; the lease is taken
/// over once the lease duration has passed on the candidate's own clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_whose_clock_ran_two_hours_ahead_is_replaced_after_the_lease_duration() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    let ahead = Timestamp::from_second(Timestamp::now().as_second() + 2 * HOUR).unwrap();
    let renew = format!("{}.000000Z", ahead.strftime("%Y-%m-%dT%H:%M:%S"));
    emu.create(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "codex-k8s-watcher", "namespace": "default"},
        "spec": {"holderIdentity": "skewed", "leaseDurationSeconds": 2, "renewTime": renew, "acquireTime": renew}}))
        .unwrap();
    let mut c = config(&repo, &TestClock::default(), Duration::from_secs(600));
    c.lease = Some(lease_config("codex-k8s-watcher", "b"));
    let started = std::time::Instant::now();
    let b = Running::start(client(&emu, &repo.root).await, c);
    wait(&emu, "b takes over the skewed lease", |e| holder(e).as_deref() == Some("b")).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1800), "took over after {took:?}, before the lease duration");
    b.stop().await;
    emu.shutdown().await;
}

/// Everything of a checkout a dry run must leave alone: its refs (with the
/// watcher's own), HEAD, FETCH_HEAD, the index, and the work tree.
fn checkout_snapshot(repo: &Repo) -> Vec<(String, Vec<u8>)> {
    let mut out =
        vec![("refs".to_owned(), repo.git(&["for-each-ref", "--format=%(refname) %(objectname)"]).into_bytes())];
    for f in ["HEAD", "FETCH_HEAD", "ORIG_HEAD", "index", "packed-refs"] {
        out.push((format!(".git/{f}"), std::fs::read(repo.root.join(".git").join(f)).unwrap_or_default()));
    }
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&repo.root)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    for f in files {
        out.push((f.display().to_string(), std::fs::read(&f).unwrap()));
    }
    out
}

/// Item: `--dry-run` changes nothing, locally included: refs, index, work
/// tree and the remote are byte-identical after a pass that would remove a
/// slot and delete a namespace, without and with `--remote`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_changes_nothing_locally_or_on_the_remote() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.add_slot("ai", "pr-2");
    repo.commit_all("render", -5 * HOUR);
    repo.git(&["rm", "-rq", "rendered/ai/pr-2", "rendered/flux/ai/pr-2.yaml"]);
    repo.commit_all("remove ai/pr-2", -4 * HOUR);
    let (_bare, bare_path) = bare_origin(&repo);
    // The remote moved on since the checkout last fetched.
    let other = tempfile::tempdir().unwrap();
    let other_path = other.path().to_str().unwrap();
    repo.git(&["clone", "-q", &bare_path, other_path]);
    let other_git = format!("{other_path}/.git");
    Command::new("git")
        .args([
            "-C",
            other_path,
            "-c",
            "user.name=o",
            "-c",
            "user.email=o@e",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ])
        .env("GIT_COMMITTER_DATE", format!("@{} +0000", Timestamp::now().as_second() - 4 * HOUR))
        .status()
        .unwrap();
    git_in(&other_git, &["push", "-q", "origin", "main"]);
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    emu.create(slot_ns("shop-pr-2", "ai", "pr-2")).unwrap();
    let client = client(&emu, &repo.root).await;
    let clock = TestClock::default();
    clock.set(2 * HOUR);
    let before = checkout_snapshot(&repo);
    let remote_before = git_in(&bare_path, &["for-each-ref", "--format=%(refname) %(objectname)"]);
    for remote in [None, Some("origin".to_owned())] {
        let mut cfg = config(&repo, &clock, Duration::from_secs(60));
        cfg.dry_run = true;
        cfg.source.remote = remote.clone();
        let report = run::once(&client, &cfg).await.unwrap();
        let kinds: Vec<&str> = report
            .actions
            .iter()
            .map(|a| match a {
                watch::ttl::Action::RemoveFromGit { .. } => "remove",
                watch::ttl::Action::DeleteNamespace { .. } => "delete",
            })
            .collect();
        assert_eq!(kinds, ["remove", "delete"], "a pass that would act ({remote:?}): {report:?}");
        assert_eq!(report.commit, None);
        let after = checkout_snapshot(&repo);
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(
                (&b.0, String::from_utf8_lossy(&b.1)),
                (&a.0, String::from_utf8_lossy(&a.1)),
                "changed by a dry run ({remote:?})"
            );
        }
        assert_eq!(before.len(), after.len(), "files added by a dry run ({remote:?})");
        assert_eq!(git_in(&bare_path, &["for-each-ref", "--format=%(refname) %(objectname)"]), remote_before);
    }
    assert!(exists(&emu, "shop-pr-1") && !terminating_or_gone(&emu, "shop-pr-2"));
    let writes: Vec<_> = emu.requests().into_iter().filter(|r| r.method != "GET").map(|r| (r.method, r.path)).collect();
    assert!(writes.is_empty(), "{writes:?}");
    emu.shutdown().await;
}

/// The one history walk gives every slot the date of the last commit that
/// touched it (added, changed), and a removed candidate its removal commit
/// and the namespace its `target.json` had.
#[test]
fn read_state_dates_every_slot_from_one_walk() {
    let repo = Repo::new();
    for i in 0..12 {
        repo.add_slot("ai", &format!("pr-{i}"));
        repo.commit_all(&format!("render ai/pr-{i}"), -20 * HOUR + i * 60);
    }
    std::fs::write(repo.root.join("rendered/ai/pr-3/kustomization.yaml"), "resources: [] # v2\n").unwrap();
    repo.commit_all("re-render ai/pr-3", -2 * HOUR);
    repo.git(&["rm", "-rq", "rendered/ai/pr-7", "rendered/flux/ai/pr-7.yaml"]);
    repo.commit_all("remove ai/pr-7", -HOUR);
    repo.commit_all("unrelated", -60);
    let now = Timestamp::now().as_second();
    let state =
        watch::source::read_state(&repo.source(), &["ai".to_string()], &[("ai".into(), "pr-7".into())]).unwrap();
    assert_eq!(state.slots.len(), 11);
    for s in &state.slots {
        let i: i64 = s.slot.trim_start_matches("pr-").parse().unwrap();
        let expected = if i == 3 { now - 2 * HOUR } else { now - 20 * HOUR + i * 60 };
        let got = s.last_commit.unwrap().as_second();
        assert!((got - expected).abs() <= 2, "{}: {got} vs {expected}", s.slot);
    }
    let removed = &state.removed[&("ai".to_string(), "pr-7".to_string())];
    assert!((removed.removed_at.as_second() - (now - HOUR)).abs() <= 2);
    assert_eq!(removed.namespace.as_deref(), Some("shop-pr-7"));
}

// ---------------------------------------------------------------- readiness

const READY_SERVICES: &str = r#"apiVersion: codex-k8s.io/v1alpha1
kind: ServiceStack
project: shop
images:
  api: {repository: registry.example.com/api, tag: "1.0"}
  agent: {repository: registry.example.com/agent, tag: "2.0"}
environments:
  ai:
    slots: true
    namespace: "shop-{{ slot }}"
    domain: "{{ slot }}.ai.example.com"
services:
  - name: api
    image: api
    manifests: [manifests/api.yaml.j2]
agent:
  envs: [ai]
  image: agent
  manifests: [manifests/agent.yaml.j2]
"#;

const READY_API: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n        - name: api\n          image: \"{{ images.api }}\"\n";

const READY_AGENT: &str = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: \"agent-{{ run.id }}\"\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: agent\n          image: \"{{ images.agent }}\"\n";

/// The slot's rendered objects as a GitOps controller applies them.
fn rendered_objects(root: &Path, target: &str) -> Vec<Value> {
    objects_in(&root.join("rendered").join(target))
}

/// The objects of a rendered target directory, the Namespace first, as
/// Argo CD's waves and Flux apply them.
pub(crate) fn objects_in(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy();
        if !entry.file_type().is_file() || !name.ends_with(".yaml") || name == "kustomization.yaml" {
            continue;
        }
        let yaml: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        out.push(serde_json::to_value(yaml).unwrap());
    }
    out.sort_by_key(|o| o["kind"] != "Namespace");
    out
}

fn run_bin(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_codex-k8s"))
        .arg("-C")
        .arg(root)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// `status --wait` as CI runs it after a slot's render, off the test's runtime.
async fn status_wait(root: &Path, kubeconfig: &Path, timeout: &str) -> (Option<i32>, Value, String) {
    let (root, kc, timeout) = (root.to_path_buf(), kubeconfig.display().to_string(), timeout.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        let args = [
            "status",
            "--env",
            "ai",
            "--slot",
            "pr-1",
            "--wait",
            "--timeout",
            &timeout,
            "--format",
            "json",
            "--kubeconfig",
            &kc,
        ];
        run_bin(&root, &args)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("status --wait prints JSON ({e}):\n{stdout}\n{stderr}"));
    (out.status.code(), report, stderr)
}

/// Readiness end to end: a slot rendered and committed by the binary, its
/// objects applied to the cluster as they are in git. `status --wait` times
/// out (exit 4) while the Deployment rolls out; once it and the agent Job
/// run, the watcher records each stage on the Namespace (annotation and
/// Event, in stage order, once per rendering) and `status --wait` exits 0
/// with the slot's URL; a failed agent Job is exit 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_are_recorded_ready_in_order_and_status_wait_follows_them() {
    let emu = Emulator::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("manifests")).unwrap();
    std::fs::write(root.join("services.yaml"), READY_SERVICES).unwrap();
    std::fs::write(root.join("manifests/api.yaml.j2"), READY_API).unwrap();
    std::fs::write(root.join("manifests/agent.yaml.j2"), READY_AGENT).unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "sources"],
    ] {
        assert!(Command::new("git").args(args).current_dir(&root).status().unwrap().success());
    }
    let render = run_bin(&root, &["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1", "--commit"]);
    assert!(render.status.success(), "{}", String::from_utf8_lossy(&render.stderr));
    for obj in rendered_objects(&root, "ai/pr-1") {
        emu.create(obj).unwrap();
    }
    let kubeconfig = root.join(".git/kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();

    // Nothing rolled out yet: the first stage waits on its Deployment.
    let (code, report, stderr) = status_wait(&root, &kubeconfig, "1s").await;
    assert_eq!(code, Some(4), "{report}\n{stderr}");
    assert_eq!(report["outcome"], "timedOut", "{report}");
    assert_eq!(report["object"], "Deployment/api", "{report}");

    // The Deployment rolls out and the agent Job starts.
    let status = json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2});
    emu.update_status("Deployment", Some("shop-pr-1"), "api", status).unwrap();
    emu.update_status("Job", Some("shop-pr-1"), "agent-r1", json!({"active": 1})).unwrap();

    let source = Source {
        repo: root.clone(),
        prefix: "rendered".into(),
        remote: None,
        branch: None,
        inventory: root.join("services.yaml"),
    };
    let config = run::Config {
        source,
        envs: envs(),
        prune_grace: Duration::from_secs(600),
        interval: Duration::from_millis(300),
        dry_run: false,
        lease: None,
        identity: "test-watcher".into(),
        clock: Clock::system(),
        git: Default::default(),
        health: Default::default(),
    };
    let client = run::client(&run::Cluster { kubeconfig: Some(kubeconfig.clone()), context: None }).await.unwrap();
    let pass = run::once(&client, &config).await.unwrap();
    let stages: Vec<&str> = pass.ready.iter().map(|r| r.stage.as_str()).collect();
    let mut in_tree: Vec<String> = std::fs::read_dir(root.join("rendered/ai/pr-1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.as_bytes()[0].is_ascii_digit())
        .collect();
    in_tree.sort();
    assert_eq!(stages, in_tree, "every stage recorded ready, in stage order");
    let ns = emu.get("Namespace", None, "shop-pr-1").unwrap();
    let annotations = &ns["metadata"]["annotations"];
    for stage in &in_tree {
        let at = annotations[format!("codex-k8s.io/ready.{stage}")].as_str().unwrap_or_default();
        assert!(at.parse::<Timestamp>().is_ok(), "ready.{stage} is a time: {annotations}");
    }
    assert!(
        annotations["codex-k8s.io/ready-rendering"].as_str().unwrap_or_default().starts_with("r1"),
        "{annotations}"
    );
    wait(&emu, "one StageReady Event per stage", |e| {
        event_reasons(e, "shop-pr-1").iter().filter(|r| r.as_str() == "StageReady").count() == in_tree.len()
    })
    .await;
    // A second pass records nothing new: once per stage and rendering.
    let again = run::once(&client, &config).await.unwrap();
    assert!(again.ready.is_empty(), "{:?}", again.ready);

    let (code, report, stderr) = status_wait(&root, &kubeconfig, "5s").await;
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert_eq!(report["outcome"], "ready", "{report}");
    assert_eq!(report["url"], "http://pr-1.ai.example.com/", "{report}");

    // The agent Job fails: the wait says which stage and exits 5.
    let failed =
        json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]});
    emu.update_status("Job", Some("shop-pr-1"), "agent-r1", failed).unwrap();
    let (code, report, stderr) = status_wait(&root, &kubeconfig, "5s").await;
    assert_eq!(code, Some(5), "{report}\n{stderr}");
    assert_eq!(report["outcome"], "failed", "{report}");
    assert_eq!(report["object"], "Job/agent-r1", "{report}");
    emu.shutdown().await;
}
