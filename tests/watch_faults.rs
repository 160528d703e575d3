//! The watcher in production (issue 31, items 1 and 2): transient API
//! errors retried within a pass, only where a repeat is safe; a pass that
//! still fails names the slots it skipped and the next pass picks them
//! up; git on its own deadline, never holding up the recording of agent
//! phases.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use codex_k8s::watch::run;
use kube_emulator::{Emulator, FaultEffect};
use serde_json::json;

use crate::watch::{
    agent_job, client, config, event_reasons, exists, phase, slot_ns, terminating_or_gone, wait, Repo, Running,
    TestClock, HOUR,
};

/// A slot removed from git an hour ago whose namespace is still there:
/// due for deletion at once (grace zero).
fn removed_slot() -> (Emulator, Repo, TestClock) {
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -3 * HOUR);
    repo.git(&["rm", "-rq", "rendered/ai/pr-1", "rendered/flux/ai/pr-1.yaml"]);
    repo.commit_all("remove ai/pr-1", -HOUR);
    (futures::executor::block_on(Emulator::start()), repo, TestClock::default())
}

fn count(emu: &Emulator, method: &str, path: &str) -> usize {
    emu.requests().iter().filter(|r| r.method == method && r.path == path && !r.watch).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_list_errors_and_a_connection_reset_are_retried_within_the_pass() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -5 * HOUR);
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let clock = TestClock::default();
    clock.set(2 * HOUR);
    let client = client(&emu, &repo.root).await;
    emu.fail_next("GET", "/api/v1/namespaces", 503);
    emu.inject("GET", "/apis/batch/v1/jobs", FaultEffect::RetryAfter(429, 1), false);
    emu.inject("GET", "/apis/batch/v1/jobs", FaultEffect::Reset, false);
    let report = run::once(&client, &config(&repo, &clock, Duration::from_secs(HOUR as u64))).await.unwrap();
    assert!(report.commit.is_some(), "the idle slot is removed in the same pass: {report:?}");
    assert!(!repo.tracked("rendered/ai/pr-1"));
    assert!(count(&emu, "GET", "/apis/batch/v1/jobs") >= 3, "the Job list was tried again");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_answered_429_with_retry_after_or_reset_after_landing_is_retried_on_its_uid_precondition() {
    let (emu, repo, clock) = removed_slot();
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let client = client(&emu, &repo.root).await;
    let path = "/api/v1/namespaces/shop-pr-1";
    emu.inject("DELETE", path, FaultEffect::RetryAfter(429, 1), false);
    // The second attempt lands but its answer is lost: the third meets the
    // namespace already terminating (same uid) or gone, which is success.
    emu.inject("DELETE", path, FaultEffect::ResetAfterServing, false);
    let report = run::once(&client, &config(&repo, &clock, Duration::ZERO)).await.unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    wait(&emu, "shop-pr-1 deleted", |e| terminating_or_gone(e, "shop-pr-1")).await;
    let deletes: Vec<_> = emu.requests().into_iter().filter(|r| r.method == "DELETE").collect();
    assert!(deletes.len() >= 3, "retried: {deletes:?}");
    assert!(deletes.iter().all(|r| r.path == path));
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_keeps_failing_is_skipped_by_name_and_the_next_pass_picks_it_up() {
    let (emu, repo, clock) = removed_slot();
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let client = client(&emu, &repo.root).await;
    let cfg = config(&repo, &clock, Duration::ZERO);
    emu.fail_always("DELETE", "/api/v1/namespaces/shop-pr-1", 503);
    let err = run::once(&client, &cfg).await.unwrap_err().to_string();
    assert!(err.contains("ai/pr-1") && err.contains("delete namespace shop-pr-1"), "{err}");
    assert!(err.contains("503") || err.contains("ServiceUnavailable"), "{err}");
    assert!(exists(&emu, "shop-pr-1") && !terminating_or_gone(&emu, "shop-pr-1"));
    assert!(count(&emu, "DELETE", "/api/v1/namespaces/shop-pr-1") > 1, "retried before giving up");
    emu.clear_faults();
    let report = run::once(&client, &cfg).await.unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    wait(&emu, "shop-pr-1 deleted", |e| terminating_or_gone(e, "shop-pr-1")).await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_on_the_phase_patch_and_a_lost_event_answer_record_the_phase_once() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    emu.create(agent_job("shop-pr-1", "r1")).unwrap();
    emu.update_status("Job", Some("shop-pr-1"), "agent-r1", json!({"active": 1})).unwrap();
    let client = client(&emu, &repo.root).await;
    emu.fail_next("PATCH", "/api/v1/namespaces/shop-pr-1", 503);
    // The Event is created but the answer is lost: the repeat finds it.
    emu.inject("POST", "/apis/events.k8s.io/v1/namespaces/shop-pr-1/events", FaultEffect::ResetAfterServing, false);
    let report = run::once(&client, &config(&repo, &TestClock::default(), Duration::from_secs(600))).await.unwrap();
    assert_eq!(report.recorded.len(), 1, "{report:?}");
    assert_eq!(phase(&emu, "shop-pr-1").as_deref(), Some("running"));
    let patches: Vec<_> = emu.requests().into_iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 2, "one failed, one landed: {patches:?}");
    assert_eq!(event_reasons(&emu, "shop-pr-1"), ["AgentRunning"], "one Event, not two");
    emu.shutdown().await;
}

/// A git server that accepts connections and answers nothing for `hold`,
/// then closes them; `released` says when it let go.
fn silent_git_server(hold: Duration) -> (String, Arc<AtomicBool>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("git://{}/shop.git", listener.local_addr().unwrap());
    let released = Arc::new(AtomicBool::new(false));
    let flag = released.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let start = std::time::Instant::now();
        while start.elapsed() < hold {
            if let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        flag.store(true, Ordering::SeqCst);
        drop(held);
    });
    (url, released)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_remote_that_never_answers_fails_the_pass_at_the_fetch_timeout() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -5 * HOUR);
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let (url, released) = silent_git_server(Duration::from_secs(8));
    repo.git(&["remote", "add", "origin", &url]);
    let client = client(&emu, &repo.root).await;
    let mut cfg = config(&repo, &TestClock::default(), Duration::from_secs(600));
    cfg.source.remote = Some("origin".into());
    cfg.git.fetch = Duration::from_secs(1);
    let err = run::once(&client, &cfg).await.unwrap_err().to_string();
    assert!(err.contains("reading git (fetch) did not answer within 1s"), "{err}");
    assert!(!released.load(Ordering::SeqCst), "ended by the fetch deadline, not by the server");
    assert!(repo.tracked("rendered/ai/pr-1"));
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_phases_are_recorded_while_the_ttl_pass_waits_on_git() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let (url, released) = silent_git_server(Duration::from_secs(12));
    repo.git(&["remote", "add", "origin", &url]);
    let mut cfg = config(&repo, &TestClock::default(), Duration::from_secs(600));
    cfg.source.remote = Some("origin".into());
    cfg.git.fetch = Duration::from_secs(10);
    let w = Running::start(client(&emu, &repo.root).await, cfg);
    // The first TTL pass is now stuck in its fetch.
    wait(&emu, "the watcher listed the cluster", |e| e.requests().iter().any(|r| r.path == "/apis/batch/v1/jobs"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    emu.create(agent_job("shop-pr-1", "r1")).unwrap();
    assert!(
        emu.wait_until(Duration::from_secs(5), |e| phase(e, "shop-pr-1").as_deref() == Some("pending")).await,
        "the phase waited for git"
    );
    assert!(!released.load(Ordering::SeqCst), "recorded while git still held the fetch");
    w.stop().await;
    emu.shutdown().await;
}

/// SIGTERM stays prompt while the TTL pass waits on a git remote that
/// never answers: the pass task is abandoned, the lease released, and the
/// blocking fetch gets only the shutdown grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stays_prompt_while_a_fetch_hangs() {
    let emu = Emulator::start().await;
    let repo = Repo::new();
    repo.add_slot("ai", "pr-1");
    repo.commit_all("render", -HOUR / 2);
    emu.create(slot_ns("shop-pr-1", "ai", "pr-1")).unwrap();
    let (url, released) = silent_git_server(Duration::from_secs(40));
    repo.git(&["remote", "add", "origin", &url]);
    let kubeconfig = repo.root.join(".git/kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let log = repo.root.join(".git/watch.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_codex-k8s"))
        .arg("-C")
        .arg(&repo.root)
        .args(["watch", "--interval", "1s", "--lease-namespace", "default", "--lease-duration", "2s"])
        .args(["--remote", "origin", "--git-fetch-timeout", "30s", "--health-addr", "127.0.0.1:0"])
        .args(["--identity", "cli", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait(&emu, "the binary leads", |e| crate::watch::holder(e).as_deref() == Some("cli")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // the first TTL pass is in its fetch
    let started = std::time::Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("still running 20 s after SIGTERM:\n{}", text());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = started.elapsed();
    let bound = codex_k8s::watch::lease::RELEASE_TIMEOUT + run::SHUTDOWN_GRACE + Duration::from_secs(1);
    assert!(took < bound, "stopped {took:?} after SIGTERM (bound {bound:?}):\n{}", text());
    assert!(status.success(), "{status:?}:\n{}", text());
    assert!(!released.load(Ordering::SeqCst), "the fetch was still hanging");
    assert!(crate::watch::holder(&emu).as_deref() != Some("cli"), "the lease was released");
    emu.shutdown().await;
}
