//! Wiring: the kube client, the two kube-runtime watch streams (managed slot
//! namespaces, agent Jobs), the lease, the registered passes
//! ([`super::PASSES`]) and the recording of agent phases.
//!
//! The main task follows the watch streams and records agent phases as
//! they change, each write on its own deadline. Each pass (TTL,
//! readiness) runs on a task of its own, every period, while leading, so a
//! TTL pass waiting on a git fetch or push never delays the recording.
//! Only the leader writes; followers keep watching so they can take over
//! at once.

use std::future::Future;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use tokio::sync::watch as channel;

use super::agent::{Input, Tracker};
use super::bounded::error_chain;
pub use super::bounded::{within, GitTimeouts, FETCH_TIMEOUT, PUSH_TIMEOUT, REQUEST_TIMEOUT};
use super::cluster::list_cluster;
pub use super::cluster::{client, Cluster, WATCH_TIMEOUT_SECS};
pub(crate) use super::context::Gate;
pub use super::context::{Config, Kept, Report, Skipped, CONTROLLER};
use super::lease::{self, Elector};
use super::pass::{Ctx, Pass};
use super::record::{apply_records, record};
use super::retry;
use super::{agent_selector, namespace_selector, Result, PASSES};

/// One pass without watching or election (`--once`): list namespaces and
/// agent Jobs, record missing phases, then run every registered pass once,
/// in order. The first pass error is returned once all have run.
pub async fn once(client: &Client, config: &Config) -> Result<Report> {
    let mut tracker = Tracker::new(config.envs.clone());
    let (ns_list, job_list) = list_cluster(client, config).await?;
    for ev in relist(ns_list) {
        tracker.apply(Input::Namespace(Box::new(ev)));
    }
    for ev in relist(job_list) {
        tracker.apply(Input::Job(Box::new(ev)));
    }
    let mut report = Report::default();
    for r in tracker.pending() {
        if record(client, config, &r, &Gate::Alone).await? {
            tracker.mark_recorded(&r);
        }
        report.recorded.push(r);
    }
    let ctx = Ctx { client, config, gate: &Gate::Alone };
    let mut first_error = None;
    for pass in PASSES {
        let started = tokio::time::Instant::now();
        let outcome = pass.run(&ctx, &mut report).await;
        config.health.pass(pass.name(), outcome.is_ok(), started.elapsed());
        if let Err(e) = outcome {
            tracing::warn!(pass = pass.name(), error = %error_chain(&e), "pass failed");
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

fn relist<K>(items: Vec<K>) -> Vec<watcher::Event<K>> {
    std::iter::once(watcher::Event::Init)
        .chain(items.into_iter().map(watcher::Event::InitApply))
        .chain(std::iter::once(watcher::Event::InitDone))
        .collect()
}

/// Runs until `shutdown` resolves: follows the watch streams, records agent
/// phases, runs every registered pass on its own task while leading, and
/// releases the lease on the way out.
///
/// Shutdown is bounded: whatever the loop and the passes wait for (an API
/// call, a git fetch or push) is abandoned when `shutdown` resolves, and
/// the lease is released within [`lease::RELEASE_TIMEOUT`]. Git work
/// already handed to a blocking thread finishes or is abandoned with the
/// runtime (the CLI gives it [`SHUTDOWN_GRACE`]); a removal is a
/// compare-and-swap, so an abandoned one either landed whole or not at all.
pub async fn run(client: Client, config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let election = Election::start(&client, &config);
    let mut leader_rx = election.leader.clone();
    let mut inputs = streams(&client, &config);
    let mut tracker = Tracker::new(config.envs.clone());
    let (lists_tx, lists_rx) = channel::channel(false);
    let elected = config.lease.is_some();
    let passes: Vec<_> = PASSES
        .iter()
        .map(|p| tokio::spawn(drive(*p, client.clone(), config.clone(), leader_rx.clone(), lists_rx.clone(), elected)))
        .collect();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    tokio::pin!(shutdown);
    tracing::info!(identity = %config.identity, envs = ?config.envs.keys().collect::<Vec<_>>(), dry_run = config.dry_run, "watching");
    loop {
        let leading = *leader_rx.borrow();
        config.health.beat();
        config.health.leader(leading);
        let records = tokio::select! {
            _ = &mut shutdown => break,
            _ = heartbeat.tick() => continue,
            item = inputs.next() => match item {
                Some(Ok(input)) => {
                    let was_ready = tracker.ready();
                    let records = tracker.apply(input);
                    config.health.views(tracker.ready());
                    if tracker.ready() != was_ready {
                        lists_tx.send_replace(tracker.ready());
                        if tracker.ready() {
                            tracing::info!(namespaces = tracker.namespaces().count(), jobs = tracker.jobs().count(), "initial lists done");
                        }
                    }
                    if leading { records } else { Vec::new() }
                }
                Some(Err(e)) => {
                    // A failing stream is a stale view: not ready until it recovers.
                    config.health.views(false);
                    config.health.api_error(&watch_error_code(&e));
                    tracing::warn!(error = %error_chain(&e), "watch error; the stream retries");
                    continue;
                }
                None => break,
            },
            changed = leader_rx.changed() => {
                if changed.is_err() {
                    // The election task ended: nobody leads here any more.
                    break;
                }
                let now_leading = *leader_rx.borrow();
                config.health.leader(now_leading);
                tracing::info!(identity = %config.identity, leader = now_leading, "leadership changed");
                if now_leading && tracker.ready() { tracker.pending() } else { Vec::new() }
            }
        };
        if records.is_empty() {
            continue;
        }
        let gate = if elected { Gate::Leader(leader_rx.clone()) } else { Gate::Alone };
        // Recording done as leader is abandoned as soon as leadership is
        // lost; any work is abandoned on shutdown.
        let lost = leadership_lost(leader_rx.clone(), elected);
        tokio::select! {
            _ = &mut shutdown => break,
            _ = lost => tracing::warn!(identity = %config.identity, "leadership lost: abandoning the work in flight"),
            _ = apply_records(&client, &config, &mut tracker, records, &gate) => {}
        }
    }
    for p in passes {
        p.abort();
    }
    election.stop().await;
    tracing::info!(identity = %config.identity, "stopped");
    Ok(())
}

/// How often the main loop turns when nothing happens (for `/healthz`).
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// Runs `pass` every period (and at once when the lists are done or
/// leadership is gained) while leading with listed views; the work of a
/// pass is abandoned when leadership goes.
async fn drive(
    pass: &'static dyn Pass,
    client: Client,
    config: Config,
    leader: channel::Receiver<bool>,
    lists: channel::Receiver<bool>,
    elected: bool,
) {
    let mut ticker = tokio::time::interval(pass.period(&config));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut leader_w, mut lists_w) = (leader.clone(), lists.clone());
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            r = leader_w.changed() => if r.is_err() { return },
            r = lists_w.changed() => if r.is_err() { return },
        }
        if !*leader.borrow() || !*lists.borrow() {
            continue;
        }
        let gate = if elected { Gate::Leader(leader.clone()) } else { Gate::Alone };
        if !gate.open(pass.name()) {
            continue;
        }
        let ctx = Ctx { client: &client, config: &config, gate: &gate };
        let mut report = Report::default();
        let started = tokio::time::Instant::now();
        let outcome = tokio::select! {
            r = pass.run(&ctx, &mut report) => r,
            _ = leadership_lost(leader.clone(), elected) => {
                tracing::warn!(pass = pass.name(), "leadership lost: abandoning the pass in flight");
                continue;
            }
        };
        config.health.pass(pass.name(), outcome.is_ok(), started.elapsed());
        if let Err(e) = outcome {
            tracing::warn!(pass = pass.name(), error = %error_chain(&e), "{} pass failed; the next pass retries", pass.name());
        }
        ticker.reset();
    }
}

/// The leader election task (none without a lease: this process leads
/// alone) and the channel saying whether this process leads.
struct Election {
    leader: channel::Receiver<bool>,
    stop: channel::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Without election the sender is kept, so leadership never changes.
    _alone: Option<channel::Sender<bool>>,
}

impl Election {
    fn start(client: &Client, config: &Config) -> Election {
        let (leader_tx, leader) = channel::channel(config.lease.is_none());
        let (stop, stop_rx) = channel::channel(false);
        match config.lease.clone() {
            Some(l) => {
                tracing::info!(lease = %l.name, namespace = %l.namespace, identity = %l.identity, "joining leader election");
                let elector = Elector::new(client.clone(), l, config.clock.clone());
                let task = Some(tokio::spawn(lease::run(elector, leader_tx, stop_rx)));
                Election { leader, stop, task, _alone: None }
            }
            None => Election { leader, stop, task: None, _alone: Some(leader_tx) },
        }
    }

    /// Asks the election task to stop (releasing the lease) and waits for it.
    async fn stop(self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }
}

/// The two watch streams (managed slot namespaces, agent Jobs), merged.
fn streams(client: &Client, config: &Config) -> futures::stream::BoxStream<'static, Result<Input, watcher::Error>> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let jobs: Api<Job> = Api::all(client.clone());
    let ns_stream =
        watcher(nss, watcher::Config::default().labels(&namespace_selector(&config.envs)).timeout(WATCH_TIMEOUT_SECS))
            .default_backoff()
            .map_ok(|e| Input::Namespace(Box::new(e)));
    let job_stream = watcher(jobs, watcher::Config::default().labels(&agent_selector()).timeout(WATCH_TIMEOUT_SECS))
        .default_backoff()
        .map_ok(|e| Input::Job(Box::new(e)));
    futures::stream::select(ns_stream.boxed(), job_stream.boxed()).boxed()
}

/// The metrics label of a watch stream's failure (as [`retry::code_of`]).
fn watch_error_code(e: &watcher::Error) -> String {
    match e {
        watcher::Error::InitialListFailed(k) | watcher::Error::WatchStartFailed(k) | watcher::Error::WatchFailed(k) => {
            retry::code_of(k)
        }
        watcher::Error::WatchError(s) => s.code.to_string(),
        #[allow(unreachable_patterns)]
        _ => "other".to_owned(),
    }
}

/// Resolves when leadership goes, if `watch` is set; else never.
async fn leadership_lost(mut leadership: channel::Receiver<bool>, watch: bool) {
    if watch {
        let _ = leadership.wait_for(|l| !*l).await;
    } else {
        futures::future::pending::<()>().await;
    }
}

/// Period of the readiness pass (or `--interval`, if shorter).
pub use super::ready_pass::READY_INTERVAL;

/// How long the CLI lets git work on blocking threads finish after
/// [`run`] returned, before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
