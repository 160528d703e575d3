//! `codex-k8s status`: slots as the cluster sees them, joined with git.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::watch::slot_envs;
use super::{exit, load_project, targets, Output, Project};
use crate::watch::{run, source::Source, status, Clock};

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this slot environment.
    #[arg(long)]
    env: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE", env = "CODEX_K8S_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// The rendered tree, relative to the project.
    #[arg(long, default_value = "rendered", value_name = "DIR")]
    out: PathBuf,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table.
    Text,
    /// JSON.
    Json,
}

fn human(seconds: u64) -> String {
    if seconds < 60 {
        return format!("{seconds}s");
    }
    humantime::format_duration(Duration::from_secs(seconds - seconds % 60)).to_string().replace(' ', "")
}

/// Runs `status`.
pub fn run(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
    let Project { inventory, .. } = load_project(file, out)?;
    let mut envs = slot_envs(&inventory);
    if let Some(e) = &args.env {
        if !envs.contains_key(e) {
            bail!("`{e}` is not a slot environment");
        }
        envs.retain(|k, _| k == e);
    }
    let out_dir = targets::out_dir(&inventory, &args.out)?;
    // Read-only: the checked-out branch, no fetch.
    let src = Source {
        repo: inventory.root.clone(),
        prefix: targets::out_prefix(&inventory, &out_dir),
        remote: None,
        branch: None,
    };
    let has_repo = git2::Repository::discover(&inventory.root).is_ok();
    let cluster = run::Cluster { kubeconfig: args.kubeconfig, context: args.context };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let rows = rt
        .block_on(async {
            let client = run::client(&cluster).await?;
            status::collect(&client, has_repo.then_some(&src), &envs, Clock::system().now()).await
        })
        .context("status failed")?;
    match args.format {
        Format::Json => writeln!(out.out, "{}", serde_json::to_string_pretty(&rows)?)?,
        Format::Text => {
            writeln!(
                out.out,
                "{:<20} {:<24} {:<32} {:<12} {:<10} {:>8} {:>9} {:<4}",
                "SLOT", "NAMESPACE", "HOST", "RUN", "PHASE", "IDLE", "TTL LEFT", "PIN"
            )?;
            for r in &rows {
                let left = match (r.pinned, r.terminating, r.agent_phase.as_deref(), r.ttl_left_seconds) {
                    (true, ..) => "pinned".to_owned(),
                    (_, true, ..) => "deleting".to_owned(),
                    (_, _, Some("pending" | "running"), _) => "busy".to_owned(),
                    (.., Some(0)) => "due".to_owned(),
                    (.., Some(s)) => human(s),
                    (.., None) => "-".to_owned(),
                };
                let namespace = if r.in_cluster { r.namespace.clone() } else { format!("{} (absent)", r.namespace) };
                writeln!(
                    out.out,
                    "{:<20} {:<24} {:<32} {:<12} {:<10} {:>8} {:>9} {:<4}",
                    format!("{}/{}", r.env, r.slot),
                    namespace,
                    r.host.as_deref().unwrap_or("-"),
                    r.agent_run.as_deref().unwrap_or("-"),
                    r.agent_phase.as_deref().unwrap_or("-"),
                    r.idle_seconds.map(human).unwrap_or_else(|| "-".into()),
                    left,
                    if r.pinned { "yes" } else { "" }
                )?;
            }
        }
    }
    Ok(exit::OK)
}
