//! Health and metrics (issue 31, item 4): `/healthz`, `/readyz` and
//! `/metrics` of a running watcher, and the bundled watcher Deployment
//! declaring the port and probing it.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use codex_k8s::watch::{metrics::Health, serve};
use kube_emulator::Emulator;
use serde_json::Value;

use crate::watch::{client, config, slot_ns, wait, Repo, Running, TestClock, HOUR};

/// `GET path` over plain HTTP/1.1: the status code and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (code, body)
}

async fn fetch(addr: SocketAddr, path: &str) -> (u16, String) {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || get(addr, &path)).await.unwrap()
}

/// The value of a sample line `name{labels} value` in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_watcher_is_alive_ready_and_counts_its_passes_and_errors() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -5 * HOUR);
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let clock = TestClock::default();
    clock.set(2 * HOUR);
    let health = Health::default();
    let (addr, server) = serve::start("127.0.0.1:0".parse().unwrap(), health.clone()).await.unwrap();
    let (code, _) = fetch(addr, "/healthz").await;
    assert_eq!(code, 503, "no loop yet: not alive");

    emu.fail_next("GET", "/apis/batch/v1/jobs", 503);
    let mut cfg = config(&repo, &clock, Duration::from_secs(HOUR as u64));
    cfg.health = health.clone();
    let w = Running::start(client(&emu, &repo.root).await, cfg);
    wait(&emu, "the idle slot removed", |_| !repo.tracked("rendered/ai/pr-1")).await;
    assert_eq!(fetch(addr, "/healthz").await.0, 200);
    assert_eq!(fetch(addr, "/readyz").await.0, 200);
    // The pass is counted when it ends, just after its commit.
    let ttl_ok = "codex_k8s_watch_passes_total{pass=\"ttl\",outcome=\"ok\"}";
    let mut text = String::new();
    for _ in 0..100 {
        let (code, body) = fetch(addr, "/metrics").await;
        assert_eq!(code, 200);
        text = body;
        if sample(&text, ttl_ok).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sample(&text, ttl_ok).unwrap_or(0.0) >= 1.0, "{text}");
    assert!(sample(&text, "codex_k8s_watch_pass_duration_seconds_count{pass=\"ttl\"}").is_some(), "{text}");
    assert!(sample(&text, "codex_k8s_watch_slots_removed_total").unwrap_or(0.0) >= 1.0, "{text}");
    assert!(sample(&text, "codex_k8s_watch_slots_seen_total").unwrap_or(0.0) >= 1.0, "{text}");
    assert_eq!(sample(&text, "codex_k8s_watch_api_errors_total{code=\"503\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "codex_k8s_watch_leader"), Some(1.0), "{text}");
    assert!(text.contains("# TYPE codex_k8s_watch_git_errors_total counter"), "{text}");
    assert_eq!(fetch(addr, "/nope").await.0, 404);
    w.stop().await;
    server.abort();
    emu.shutdown().await;
}

/// The bundled Deployment (as committed under `rendered/`) serves the
/// endpoint on a named port and probes it.
#[test]
fn the_bundled_watcher_deployment_declares_the_port_and_its_probes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("rendered/platform/20-internal/codex-k8s-watcher/deployment-codex-k8s-watcher.yaml");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let d: Value = serde_json::to_value(yaml).unwrap();
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    let port = c["ports"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "http")).cloned();
    let port = port.unwrap_or_else(|| panic!("a port named http: {c}"));
    assert_eq!(port["containerPort"], 8080, "{c}");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{c}");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http", "{c}");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{c}");
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/healthz", "the first clone gets its time: {c}");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http", "{c}");
    let args: Vec<&str> = c["args"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let at = args.iter().position(|a| *a == "--health-addr").map(|i| args[i + 1]);
    assert_eq!(at, Some("0.0.0.0:8080"), "{args:?}");
}
