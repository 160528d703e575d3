//! Benchmarks of the watcher at scale: `cargo bench --bench watch`
//! (optionally `-- 1000` to run only the cases whose name contains `1000`).
//!
//! * `read_state/5000-slots-100-per-commit` and
//!   `read_state/1000-slots-1-per-commit`: `watch::source::read_state`, the
//!   git side of a TTL pass (every slot at the tip, its `target.json`, and
//!   the last commit touching it, from one history walk);
//! * `once/…`: one whole `--once --dry-run` pass over the same repository
//!   against the Kubernetes API emulator holding one managed namespace per
//!   slot, every slot idle past its TTL: list namespaces and agent Jobs,
//!   read git, recompute each slot's namespace from the inventory, decide
//!   (5,000 removals reported, none written).
//!
//! Histories are written with `git fast-import` (seconds for a thousand
//! commits). Each case prints the median of 5 runs; run without `--bench`
//! (`cargo test --bench watch`) it does one run of each as a smoke test.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codex_k8s::watch::{run, source, source::Source, Clock, SlotEnvs, Timestamp};
use kube_emulator::Emulator;
use serde_json::json;
use tempfile::TempDir;

const SERVICES: &str = r#"apiVersion: codex-k8s.io/v1alpha1
kind: ServiceStack
project: shop
environments:
  ai:
    slots: true
    namespace: "shop-{{ slot }}"
    idleTTL: 1h
services:
  - name: api
    manifests: [manifests/api.yaml.j2]
"#;

struct Fixture {
    _tmp: TempDir,
    root: PathBuf,
    slots: usize,
}

/// A repository whose `main` holds `slots` rendered slots of env `ai`,
/// `per_commit` of them added by each commit, 10 h ago and older.
fn fixture(slots: usize, per_commit: usize) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::write(root.join("services.yaml"), SERVICES).unwrap();
    std::fs::create_dir_all(root.join("manifests")).unwrap();
    std::fs::write(root.join("manifests/api.yaml.j2"), "kind: ConfigMap\n").unwrap();
    let git = |args: &[&str]| {
        let ok = Command::new("git").args(args).current_dir(&root).status().unwrap().success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    let mut stream = Vec::new();
    let blob = |s: &mut Vec<u8>, mark: usize, data: &str| {
        write!(s, "blob\nmark :{mark}\ndata {}\n{data}\n", data.len()).unwrap();
    };
    blob(&mut stream, 1, "resources: [00-stateful]\n");
    blob(&mut stream, 2, "apiVersion: v1\nkind: Namespace\n");
    blob(&mut stream, 3, "# flux\n");
    let start = Timestamp::now().as_second() - 10 * 3600 - (slots / per_commit) as i64;
    let mut commit = 0;
    for first in (0..slots).step_by(per_commit) {
        commit += 1;
        let msg = format!("render {first}");
        write!(
            stream,
            "commit refs/heads/main\nmark :{}\ncommitter CI <ci@example.com> {} +0000\ndata {}\n{msg}\n",
            100 + commit,
            start + commit as i64,
            msg.len()
        )
        .unwrap();
        if commit > 1 {
            writeln!(stream, "from :{}", 99 + commit).unwrap();
        }
        for i in first..(first + per_commit).min(slots) {
            let dir = format!("rendered/ai/pr-{i}");
            let meta = json!({"project": "shop", "env": "ai", "slot": format!("pr-{i}"),
                "namespace": format!("shop-pr-{i}"), "host": format!("pr-{i}.ai.example.com"),
                "runId": "r1", "sets": {}, "inputsDigest": "x", "outputsDigest": "y"})
            .to_string();
            write!(stream, "M 100644 inline {dir}/.codex-k8s/target.json\ndata {}\n{meta}\n", meta.len()).unwrap();
            writeln!(stream, "M 100644 :1 {dir}/kustomization.yaml").unwrap();
            writeln!(stream, "M 100644 :2 {dir}/00-stateful/namespace.yaml").unwrap();
            writeln!(stream, "M 100644 :3 rendered/flux/ai/pr-{i}.yaml").unwrap();
        }
    }
    let mut child =
        Command::new("git").args(["fast-import", "--quiet"]).current_dir(&root).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    assert!(child.wait().unwrap().success(), "git fast-import");
    Fixture { _tmp: tmp, root, slots }
}

fn source(f: &Fixture) -> Source {
    Source {
        repo: f.root.clone(),
        prefix: "rendered".into(),
        remote: None,
        branch: None,
        inventory: f.root.join("services.yaml"),
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn report(name: &str, times: Vec<Duration>) {
    let runs: Vec<String> = times.iter().map(|t| format!("{:.3}s", t.as_secs_f64())).collect();
    println!("watch/{name}: median {:.3}s (runs: {})", median(times).as_secs_f64(), runs.join(", "));
}

fn bench_read_state(f: &Fixture, name: &str, runs: usize) {
    let envs = vec!["ai".to_string()];
    let times = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let state = source::read_state(&source(f), &envs, &[]).unwrap();
            let took = started.elapsed();
            assert_eq!(state.slots.len(), f.slots);
            assert!(state.slots.iter().all(|s| s.last_commit.is_some() && s.unreadable.is_none()));
            took
        })
        .collect();
    report(&format!("read_state/{name}"), times);
}

fn bench_once(f: &Fixture, name: &str, runs: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let emu = Emulator::start().await;
        for i in 0..f.slots {
            emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("shop-pr-{i}"),
                "labels": {"app.kubernetes.io/managed-by": "codex-k8s", "codex-k8s.io/env": "ai",
                           "codex-k8s.io/slot": format!("pr-{i}")}}}))
                .unwrap();
        }
        let kubeconfig = f.root.join(".git/kubeconfig");
        emu.write_kubeconfig(&kubeconfig).unwrap();
        let client = run::client(&run::Cluster { kubeconfig: Some(kubeconfig), context: None }).await.unwrap();
        let envs: SlotEnvs = [("ai".to_string(), Duration::from_secs(3600))].into();
        let config = run::Config {
            source: source(f),
            envs,
            prune_grace: Duration::from_secs(600),
            interval: Duration::from_secs(30),
            dry_run: true,
            lease: None,
            identity: "bench".into(),
            // Two hours on: every namespace (created now) is idle past 1 h.
            clock: Clock::from_fn(|| {
                let ahead = k8s_openapi::jiff::SignedDuration::from_hours(2);
                Timestamp::now().saturating_add(ahead).expect("two hours from now is a valid time")
            }),
            git: Default::default(),
            health: Default::default(),
        };
        let mut times = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let report = run::once(&client, &config).await.unwrap();
            times.push(started.elapsed());
            assert_eq!(report.actions.len(), f.slots, "every slot is due");
        }
        report(&format!("once/{name}"), times);
        emu.shutdown().await;
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = if args.iter().any(|a| a == "--bench") { 5 } else { 1 };
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    for (slots, per_commit) in [(5000, 100), (1000, 1)] {
        let name = format!("{slots}-slots-{per_commit}-per-commit");
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        let f = fixture(slots, per_commit);
        println!("fixture {name}: {:.1}s", started.elapsed().as_secs_f64());
        bench_read_state(&f, &name, runs);
        bench_once(&f, &name, runs);
    }
}
