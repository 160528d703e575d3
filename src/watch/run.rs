//! Wiring: the kube client, the two kube-runtime watch streams (managed slot
//! namespaces, agent Jobs), the lease, git, and the effects of the pure
//! decisions in `agent` and [`super::ttl`].
//!
//! One task owns everything and handles one thing at a time: a watch event
//! (maybe recording an agent phase), a tick of the TTL pass, a change of
//! leadership, or shutdown. Only the leader writes; followers keep watching
//! so they can take over at once.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde::Serialize;
use tokio::sync::watch as channel;

use super::agent::{Input, Record, Tracker};
pub(crate) use super::bounded::blocking;
pub use super::bounded::{within, GIT_TIMEOUT, REQUEST_TIMEOUT};
use super::lease::{self, error_chain, Elector};
use super::ready_pass::{self, StageReady};
use super::record::{apply_records, record};
use super::source::Source;
use super::ttl::{self, Action};
use super::ttl_pass;
use super::{agent_selector, namespace_selector, Clock, Error, Result, SlotEnvs};

/// How to reach the cluster.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// A kubeconfig file; none: `KUBECONFIG`, `~/.kube/config`, then the
    /// in-cluster ServiceAccount (`kube::Config::infer`).
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig other than the current one.
    pub context: Option<String>,
}

/// A client for `cluster`.
pub async fn client(cluster: &Cluster) -> Result<Client> {
    let boxed = |e: Box<dyn std::error::Error + Send + Sync>| Error::Config(e);
    let options = KubeConfigOptions { context: cluster.context.clone(), ..Default::default() };
    let config = match (&cluster.kubeconfig, &cluster.context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| boxed(Box::new(e)))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await.map_err(|e| boxed(Box::new(e)))?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options).await.map_err(|e| boxed(Box::new(e)))?,
        (None, None) => kube::Config::infer().await.map_err(|e| boxed(Box::new(e)))?,
    };
    let mut config = config;
    // Every call is bounded: connecting, each read (a watch is closed by the
    // server after WATCH_TIMEOUT, so a read silent for longer is a hang).
    config.connect_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    config.read_timeout = Some(Duration::from_secs(u64::from(WATCH_TIMEOUT_SECS)) + REQUEST_TIMEOUT);
    // kube's built-in retry honours `Retry-After` uncapped (up to 1000 s);
    // the watcher retries at its own pace instead (next pass, watch backoff).
    config.default_retry = false;
    Client::try_from(config).map_err(Error::Kube)
}

/// What the watcher does, as typed values (the CLI builds it from flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// The repository and the rendered tree in it.
    pub source: Source,
    /// Slot environments and their idle TTL (from the inventory).
    pub envs: SlotEnvs,
    /// Delete a namespace this long after its slot left git, if the GitOps
    /// controller has not pruned it.
    pub prune_grace: Duration,
    /// Period of the TTL pass.
    pub interval: Duration,
    /// Report, change nothing.
    pub dry_run: bool,
    /// Leader election; none: act alone (a single replica, `--once`).
    pub lease: Option<lease::Config>,
    /// This watcher, in Events and commit trailers.
    pub identity: String,
    /// The time source.
    pub clock: Clock,
}

impl Config {
    pub(super) fn ttl(&self) -> ttl::Config {
        ttl::Config { envs: self.envs.clone(), prune_grace: self.prune_grace }
    }
}

/// What a pass did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Agent phases recorded.
    pub recorded: Vec<Record>,
    /// TTL actions taken.
    pub actions: Vec<Action>,
    /// The removal commit, if any.
    pub commit: Option<String>,
    /// Slots kept for a reason worth reporting (unreadable metadata, a view
    /// that could not be refreshed).
    pub kept: Vec<Kept>,
    /// Stages recorded ready.
    pub ready: Vec<StageReady>,
}

/// Server-side timeout of a watch request; the watch is then re-opened (and
/// re-listed on 410). A read silent for longer than this plus
/// [`REQUEST_TIMEOUT`] fails the stream, which then re-lists.
pub const WATCH_TIMEOUT_SECS: u32 = 60;

/// A slot the TTL pass kept although it might have acted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kept {
    /// The slot's environment (a slot environment of the inventory).
    pub env: String,
    /// The slot's name, a DNS label such as `pr-42`.
    pub slot: String,
    /// Why it was kept.
    pub reason: String,
}

/// The reporting controller name in Events.
pub const CONTROLLER: &str = "codex-k8s.io/watcher";

/// One pass without watching or election (`--once`): list namespaces and
/// agent Jobs, record missing phases, then run the TTL pass.
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
    ttl_pass::pass(client, config, &mut report, &Gate::Alone).await?;
    report.ready = guarded_ready_pass(client, config, &Gate::Alone).await;
    Ok(report)
}

/// The managed slot namespaces and the agent Jobs, listed now (each list
/// within [`REQUEST_TIMEOUT`]).
pub(super) async fn list_cluster(client: &Client, config: &Config) -> Result<(Vec<Namespace>, Vec<Job>)> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let jobs: Api<Job> = Api::all(client.clone());
    let ns_lp = ListParams::default().labels(&namespace_selector(&config.envs));
    let job_lp = ListParams::default().labels(&agent_selector());
    let ns_list = within("listing namespaces", REQUEST_TIMEOUT, async { Ok(nss.list(&ns_lp).await?) }).await?;
    let job_list = within("listing agent Jobs", REQUEST_TIMEOUT, async { Ok(jobs.list(&job_lp).await?) }).await?;
    Ok((ns_list.items, job_list.items))
}

/// Whether this process may write now: alone (`--once`, no election) it
/// always may; in an election only while the lease is held. Checked right
/// before every write, so a leader that lost its lease mid-pass stops there.
pub(crate) enum Gate<'a> {
    Alone,
    Leader(&'a channel::Receiver<bool>),
}

impl Gate<'_> {
    /// Whether this process may write now, without a log line.
    fn open_quietly(&self) -> bool {
        match self {
            Gate::Alone => true,
            Gate::Leader(rx) => *rx.borrow(),
        }
    }

    pub(crate) fn open(&self, what: &str) -> bool {
        let open = match self {
            Gate::Alone => true,
            Gate::Leader(rx) => *rx.borrow(),
        };
        if !open {
            tracing::warn!(what, "no longer leading: not writing");
        }
        open
    }
}

fn relist<K>(items: Vec<K>) -> Vec<watcher::Event<K>> {
    std::iter::once(watcher::Event::Init)
        .chain(items.into_iter().map(watcher::Event::InitApply))
        .chain(std::iter::once(watcher::Event::InitDone))
        .collect()
}

/// Runs until `shutdown` resolves: follows the watch streams, records agent
/// phases, runs the TTL pass every `interval` while leading, and releases
/// the lease on the way out.
///
/// Shutdown is bounded: whatever the loop waits for (an API call, a git
/// fetch or push) is abandoned when `shutdown` resolves, and the lease is
/// released within [`lease::RELEASE_TIMEOUT`]. Git work already handed to a
/// blocking thread finishes or is abandoned with the runtime (the CLI gives
/// it [`SHUTDOWN_GRACE`]); a removal is a compare-and-swap, so an
/// abandoned one either landed whole or not at all.
pub async fn run(client: Client, config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let election = Election::start(&client, &config);
    let mut leader_rx = election.leader.clone();
    let mut inputs = streams(&client, &config);
    let mut state = LoopState::new(&config);
    tokio::pin!(shutdown);
    tracing::info!(identity = %config.identity, envs = ?config.envs.keys().collect::<Vec<_>>(), dry_run = config.dry_run, "watching");
    loop {
        let leading = *leader_rx.borrow();
        let step = tokio::select! {
            _ = &mut shutdown => break,
            item = inputs.next() => match item {
                Some(Ok(input)) => Wake::Input(input),
                Some(Err(e)) => {
                    tracing::warn!(error = %error_chain(&e), "watch error; the stream retries");
                    continue;
                }
                None => break,
            },
            _ = state.ticker.tick() => Wake::Tick,
            _ = state.ready_ticker.tick() => Wake::Ready,
            changed = leader_rx.changed() => {
                if changed.is_err() {
                    // The election task ended: nobody leads here any more.
                    break;
                }
                Wake::Leadership
            }
        };
        let gate = if config.lease.is_some() { Gate::Leader(&leader_rx) } else { Gate::Alone };
        let work = state.handle(&client, &config, step, leading, &gate);
        // Work done as leader is abandoned as soon as leadership is lost;
        // any work is abandoned on shutdown.
        let lost = leadership_lost(leader_rx.clone(), leading && config.lease.is_some());
        tokio::select! {
            _ = &mut shutdown => break,
            _ = lost => tracing::warn!(identity = %config.identity, "leadership lost: abandoning the work in flight"),
            _ = work => {}
        }
    }
    election.stop().await;
    tracing::info!(identity = %config.identity, "stopped");
    Ok(())
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

/// Resolves when leadership goes, if `watch` is set; else never.
async fn leadership_lost(mut leadership: channel::Receiver<bool>, watch: bool) {
    if watch {
        let _ = leadership.wait_for(|l| !*l).await;
    } else {
        futures::future::pending::<()>().await;
    }
}

/// Period of the readiness pass (or `--interval`, if shorter).
pub const READY_INTERVAL: Duration = Duration::from_secs(5);

/// What the loop keeps between wake-ups: the mirror of the watch streams
/// and the two tickers.
struct LoopState {
    tracker: Tracker,
    ticker: tokio::time::Interval,
    ready_ticker: tokio::time::Interval,
    first_pass_done: bool,
}

impl LoopState {
    fn new(config: &Config) -> LoopState {
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ready_ticker = tokio::time::interval(READY_INTERVAL.min(config.interval));
        ready_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        LoopState { tracker: Tracker::new(config.envs.clone()), ticker, ready_ticker, first_pass_done: false }
    }

    /// Handles one wake-up.
    async fn handle(&mut self, client: &Client, config: &Config, step: Wake, leading: bool, gate: &Gate<'_>) {
        let tracker = &mut self.tracker;
        match step {
            Wake::Input(input) => {
                let was_ready = tracker.ready();
                let records = tracker.apply(input);
                if leading {
                    apply_records(client, config, tracker, records, gate).await;
                }
                if !was_ready && tracker.ready() {
                    tracing::info!(
                        namespaces = tracker.namespaces().count(),
                        jobs = tracker.jobs().count(),
                        "initial lists done"
                    );
                    if leading && !self.first_pass_done {
                        self.first_pass_done = true;
                        guarded_ttl_pass(client, config, gate).await;
                    }
                }
            }
            Wake::Tick => {
                if leading && tracker.ready() {
                    self.first_pass_done = true;
                    guarded_ttl_pass(client, config, gate).await;
                }
            }
            Wake::Ready => {
                if leading && tracker.ready() {
                    guarded_ready_pass(client, config, gate).await;
                }
            }
            Wake::Leadership => {
                let now_leading = gate.open_quietly();
                tracing::info!(identity = %config.identity, leader = now_leading, "leadership changed");
                if now_leading && tracker.ready() {
                    let pending = tracker.pending();
                    apply_records(client, config, tracker, pending, gate).await;
                    guarded_ttl_pass(client, config, gate).await;
                }
            }
        }
    }
}

/// What woke the loop.
enum Wake {
    Input(Input),
    Tick,
    Ready,
    Leadership,
}

async fn guarded_ttl_pass(client: &Client, config: &Config, gate: &Gate<'_>) {
    if !gate.open("the TTL pass") {
        return;
    }
    let mut report = Report::default();
    if let Err(e) = ttl_pass::pass(client, config, &mut report, gate).await {
        tracing::warn!(error = %error_chain(&e), "TTL pass failed; the next pass retries");
    }
}

/// The readiness pass; failures are logged, never passed on.
async fn guarded_ready_pass(client: &Client, config: &Config, gate: &Gate<'_>) -> Vec<StageReady> {
    match ready_pass::pass(client, config, gate).await {
        Ok(recorded) => recorded,
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "readiness pass failed; the next pass retries");
            Vec::new()
        }
    }
}

/// How long the CLI lets git work on blocking threads finish after
/// [`run`] returned, before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
