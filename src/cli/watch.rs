//! `codex-k8s watch`: flags → `watch::run::Config`, logging, the tokio
//! runtime, signals, and optionally a first clone of the repository.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{exit, load_project, targets, Output, Project};
use crate::git;
use crate::watch::{self, lease, run, slot_envs, source::Source, Clock};

/// Arguments of `watch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// One pass (record agent phases, then the TTL pass) and exit; no leader election.
    #[arg(long)]
    once: bool,
    /// Report what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Delete a slot's namespace this long after its removal from git, if still there.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    prune_grace: Duration,
    /// Period of the TTL pass.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE", env = "CODEX_K8S_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Log format (logs go to stderr; level from CODEX_K8S_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Fetch from and push removals to this git remote (e.g. origin).
    #[arg(long, value_name = "NAME")]
    remote: Option<String>,
    /// The branch to follow (default: the checked-out one).
    #[arg(long, value_name = "BRANCH")]
    branch: Option<String>,
    /// Clone this URL into the project directory first when it is not a repository yet.
    #[arg(long, value_name = "URL", env = "CODEX_K8S_REPO_URL")]
    clone: Option<String>,
    /// The rendered tree, relative to the project.
    #[arg(long, default_value = "rendered", value_name = "DIR")]
    out: PathBuf,
    /// Namespace of the election Lease (default: POD_NAMESPACE, else the kubeconfig's namespace).
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Name of the election Lease.
    #[arg(long, value_name = "NAME", default_value = "codex-k8s-watcher")]
    lease_name: String,
    /// How long the lease holds without renewal.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    /// This replica's identity (default: POD_NAME, else host name and pid).
    #[arg(long, value_name = "ID")]
    identity: Option<String>,
    /// Deadline of a git fetch (and reading the fetched tip); the pass keeps every slot when it passes.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = humantime::parse_duration)]
    git_fetch_timeout: Duration,
    /// Deadline of a removal's commit and push (with its retries).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    git_push_timeout: Duration,
    /// Serve /healthz, /readyz and /metrics here (`off`: no endpoint); not with --once.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080", value_parser = parse_health_addr)]
    health_addr: HealthAddr,
}

/// Where `/healthz`, `/readyz` and `/metrics` are served.
#[derive(Debug, Clone, Copy)]
pub enum HealthAddr {
    /// No endpoint.
    Off,
    /// This address.
    At(std::net::SocketAddr),
}

fn parse_health_addr(s: &str) -> std::result::Result<HealthAddr, String> {
    if s == "off" {
        return Ok(HealthAddr::Off);
    }
    s.parse().map(HealthAddr::At).map_err(|_| format!("`{s}` is not HOST:PORT (e.g. 0.0.0.0:8080) or `off`"))
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up structured logs on stderr (once per process).
pub fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CODEX_K8S_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME") {
        if !pod.is_empty() {
            return pod;
        }
    }
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "codex-k8s".into());
    format!("{host}-{}", std::process::id())
}

/// Runs `watch`.
pub fn run(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
    init_logs(args.log_format);
    if let Some(url) = &args.clone {
        let here = std::env::current_dir()?;
        git::clone_if_missing(url, &here).with_context(|| format!("cannot clone {url}"))?;
    }
    let Project { inventory, .. } = load_project(file, out)?;
    // The inventory as named (`-f`, after `-C`): each pass reloads it for the slots' namespaces.
    let inventory_file = std::path::absolute(file)?;
    let envs = slot_envs(&inventory);
    if envs.is_empty() {
        bail!("the inventory has no slot environment: nothing to watch");
    }
    let out_dir = targets::out_dir(&inventory, &args.out)?;
    let prefix = targets::out_prefix(&inventory, &out_dir);
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let cluster = run::Cluster { kubeconfig: args.kubeconfig.clone(), context: args.context.clone() };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let outcome = rt.block_on(async move {
        let client = run::client(&cluster).await?;
        let lease = if args.once {
            None
        } else {
            let ns = args.lease_namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
            let mut l = lease::Config::new(ns, args.lease_name.clone(), identity.clone());
            l.duration = args.lease_duration.max(Duration::from_secs(1));
            l.renew_every = (l.duration / 4).max(Duration::from_millis(200));
            Some(l)
        };
        let config = run::Config {
            source: Source {
                repo: inventory.root.clone(),
                prefix,
                remote: args.remote.clone(),
                branch: args.branch.clone(),
                inventory: inventory_file,
            },
            envs,
            prune_grace: args.prune_grace,
            interval: args.interval.max(Duration::from_secs(1)),
            dry_run: args.dry_run,
            lease,
            identity,
            clock: Clock::system(),
            git: run::GitTimeouts {
                fetch: args.git_fetch_timeout.max(Duration::from_secs(1)),
                push: args.git_push_timeout.max(Duration::from_secs(1)),
            },
            health: watch::metrics::Health::default(),
        };
        if args.once {
            let report = run::once(&client, &config).await?;
            tracing::info!(
                recorded = report.recorded.len(),
                actions = report.actions.len(),
                commit = ?report.commit,
                dry_run = config.dry_run,
                "pass done"
            );
            return Ok::<_, watch::Error>(());
        }
        let _server = match args.health_addr {
            HealthAddr::At(addr) => {
                let (bound, task) = watch::serve::start(addr, config.health.clone()).await?;
                tracing::info!(addr = %bound, "serving /healthz, /readyz and /metrics");
                Some(AbortOnDrop(task))
            }
            HealthAddr::Off => None,
        };
        run::run(client, config, shutdown_signal()).await
    });
    // Git work still running on a blocking thread gets a bounded grace, so
    // SIGTERM ends the process in bounded time.
    rt.shutdown_timeout(run::SHUTDOWN_GRACE);
    outcome.context("watch failed")?;
    Ok(exit::OK)
}

/// Stops the HTTP endpoint with the watcher.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves on ctrl-c or SIGTERM (what Kubernetes sends a pod).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}
