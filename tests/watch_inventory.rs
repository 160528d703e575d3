//! The inventory the command line names (issue 31, item 3): `-f` and `-C`
//! are honoured wherever the watcher loads the inventory — the namespaces
//! of the TTL pass, the readiness pass, `status` and `status --wait` — with
//! a renamed inventory and with a project in a subdirectory of its
//! repository.

use std::path::PathBuf;
use std::process::Command;

use kube_emulator::Emulator;
use serde_json::{json, Value};

use crate::watch::{event_reasons, objects_in as objects, slot_ns, terminating_or_gone, wait, HOUR};

const STACK: &str = r#"apiVersion: codex-k8s.io/v1alpha1
kind: ServiceStack
project: shop
images:
  api: {repository: registry.example.com/api, tag: "1.0"}
environments:
  ai:
    slots: true
    namespace: "stack-{{ slot }}"
    domain: "{{ slot }}.ai.example.com"
    idleTTL: 1h
services:
  - name: api
    image: api
    manifests: [manifests/api.yaml.j2]
"#;

const API: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n        - name: api\n          image: \"{{ images.api }}\"\n";

/// A repository whose project lives in `dir` (`.` for the root) with its
/// inventory named `file`; the binary renders slot ai/pr-1 and commits it.
struct Project {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dir: String,
    file: String,
}

impl Project {
    fn new(dir: &str, file: &str) -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let project = root.join(dir);
        std::fs::create_dir_all(project.join("manifests")).unwrap();
        std::fs::write(project.join(file), STACK).unwrap();
        std::fs::write(project.join("manifests/api.yaml.j2"), API).unwrap();
        let p = Project { _tmp: tmp, root, dir: dir.to_owned(), file: file.to_owned() };
        p.git(&["init", "-q", "-b", "main"]);
        p.git(&["add", "-A"]);
        p.git(&["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "sources"]);
        let out = p.bin(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1", "--commit"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        p
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git").args(args).current_dir(&self.root).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// The binary run as `-C <root> -f <dir>/<file> ARGS` (the project named
    /// from the repository root).
    fn bin(&self, args: &[&str]) -> std::process::Output {
        let file = if self.dir == "." { self.file.clone() } else { format!("{}/{}", self.dir, self.file) };
        Command::new(env!("CARGO_BIN_EXE_codex-k8s"))
            .arg("-C")
            .arg(&self.root)
            .args(["-f", &file])
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    fn rendered(&self) -> PathBuf {
        self.root.join(&self.dir).join("rendered/ai/pr-1")
    }

    fn kubeconfig(&self, emu: &Emulator) -> PathBuf {
        let path = self.root.join(".git/kubeconfig");
        emu.write_kubeconfig(&path).unwrap();
        path
    }

    /// Removes slot pr-1 from git with a commit `ago` seconds old, as a
    /// watcher before would have.
    fn remove_slot(&self, ago: i64) {
        let prefix = if self.dir == "." { String::new() } else { format!("{}/", self.dir) };
        self.git(&["rm", "-rq", &format!("{prefix}rendered/ai/pr-1"), &format!("{prefix}rendered/flux/ai/pr-1.yaml")]);
        let date = format!("@{} +0000", crate::watch::now_seconds() - ago);
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "remove ai/pr-1"])
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .current_dir(&self.root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The TTL pass deletes the namespace of a slot gone from git past the
/// grace only when its name is the one the inventory gives the slot; with
/// the inventory renamed (or in a subdirectory) it must still find it.
async fn ttl_pass_finds_the_namespace(dir: &str, file: &str) {
    let emu = Emulator::start().await;
    let p = Project::new(dir, file);
    p.remove_slot(HOUR);
    emu.create(slot_ns("stack-pr-1", "ai", "pr-1")).unwrap();
    let kc = p.kubeconfig(&emu);
    let kc = kc.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        p.bin(&["watch", "--once", "--prune-grace", "30s", "--log-format", "json", "--kubeconfig", &kc])
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    wait(&emu, "stack-pr-1 deleted", |e| terminating_or_gone(e, "stack-pr-1")).await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_inventory_gives_the_ttl_pass_its_namespaces() {
    ttl_pass_finds_the_namespace(".", "stack.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_in_a_subdirectory_gives_the_ttl_pass_its_namespaces() {
    ttl_pass_finds_the_namespace("app", "stack.yaml").await;
}

/// Readiness (`watch --once`), `status` and `status --wait` read the slot's
/// namespace from the inventory the command line names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_status_follow_a_renamed_inventory_in_a_subdirectory() {
    let emu = Emulator::start().await;
    let p = Project::new("app", "stack.yaml");
    for obj in objects(&p.rendered()) {
        emu.create(obj).unwrap();
    }
    let status = json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1});
    emu.update_status("Deployment", Some("stack-pr-1"), "api", status).unwrap();
    let kc = p.kubeconfig(&emu).to_str().unwrap().to_owned();
    let p = std::sync::Arc::new(p);
    let run = |args: Vec<String>| {
        let p = p.clone();
        tokio::task::spawn_blocking(move || p.bin(&args.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).chain(["--kubeconfig".into(), kc.clone()]).collect();

    let out = run(args(&["watch", "--once", "--prune-grace", "10m"])).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ns = emu.get("Namespace", None, "stack-pr-1").unwrap();
    let annotations = &ns["metadata"]["annotations"];
    assert!(annotations["codex-k8s.io/ready-rendering"].is_string(), "readiness recorded: {annotations}");
    wait(&emu, "a StageReady Event", |e| event_reasons(e, "stack-pr-1").iter().any(|r| r == "StageReady")).await;

    let out = run(args(&["status", "--env", "ai", "--slot", "pr-1", "--wait", "--timeout", "5s", "--format", "json"]))
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(0), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(report["outcome"], "ready", "{report}");

    let out = run(args(&["status", "--format", "json"])).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pr1 = rows.as_array().unwrap().iter().find(|r| r["slot"] == "pr-1").unwrap();
    assert_eq!(pr1["namespace"], "stack-pr-1", "{rows}");
    assert_eq!(pr1["inGit"], true, "{rows}");
    assert_eq!(pr1["inCluster"], true, "{rows}");
    emu.shutdown().await;
}
