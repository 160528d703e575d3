//! `codex-k8s status`: slots as the cluster sees them, joined with git;
//! with `--wait`, one slot polled until every stage is ready.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{exit, load_project, targets, Output, Project};
use crate::inventory::names::SlotName;
use crate::watch::{run, slot_envs, source::Source, status, wait, Clock};

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this slot environment.
    #[arg(long, add = clap_complete::ArgValueCandidates::new(super::complete::environments))]
    env: Option<String>,
    /// Only this slot (with --env).
    #[arg(long, requires = "env", add = clap_complete::ArgValueCandidates::new(super::complete::slots))]
    slot: Option<SlotName>,
    /// Wait until every stage of --slot is ready and its agent Job started, then print the slot's URL
    /// (exit 4 on timeout, 5 when a stage failed).
    #[arg(long, requires = "slot")]
    wait: bool,
    /// Give up waiting after this long.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration, requires = "wait")]
    timeout: Duration,
    /// The branch (or any revision, e.g. origin/rendered) holding the rendered tree; default: the checked-out branch.
    #[arg(long, value_name = "REV")]
    branch: Option<String>,
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
    // Read-only: the checked-out branch (or --branch), no fetch.
    let src = Source {
        repo: inventory.root.clone(),
        prefix: targets::out_prefix(&inventory, &out_dir),
        remote: None,
        branch: if args.wait { None } else { args.branch.clone() },
        inventory: std::path::absolute(file)?,
    };
    let cluster = run::Cluster { kubeconfig: args.kubeconfig.clone(), context: args.context.clone() };
    if args.wait {
        let env = args.env.clone().unwrap_or_default();
        let tls = inventory.environments.get(&env).is_some_and(|e| e.tls.is_some());
        let slot = args.slot.as_ref().map(SlotName::to_string).unwrap_or_default();
        let w = wait::Wait { env, slot, rev: args.branch.clone(), timeout: args.timeout, poll: POLL, tls };
        return wait_for(&cluster, &src, &w, args.format, out);
    }
    let has_repo = crate::git::is_repository(&inventory.root);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut rows = rt
        .block_on(async {
            let client = run::client(&cluster).await?;
            status::collect(&client, has_repo.then_some(&src), &envs, Clock::system().now()).await
        })
        .context("status failed")?;
    if let Some(slot) = &args.slot {
        rows.retain(|r| r.slot == slot.as_str());
    }
    // A host comes from a `target.json` a pull request can edit, or an
    // Ingress a slot renders: only a DNS name is printed.
    for r in &mut rows {
        if let Some(problem) = r.host.as_deref().and_then(crate::inventory::names::host_problem) {
            let host = crate::diagnostic::escape_line(r.host.as_deref().unwrap_or_default(), 80);
            writeln!(out.err, "warning: {}/{}: host `{host}` {problem}; not shown", r.env, r.slot)?;
            r.host = None;
        }
    }
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

/// `url` when it is `http(s)://<DNS name>/`, the only shape `status --wait`
/// prints (CI writes it to `$GITHUB_OUTPUT`, where a line break would add a
/// variable); else why not, escaped.
fn checked_url(url: &str) -> Result<&str, String> {
    let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).map(|r| r.trim_end_matches('/'));
    match host.map(|h| (h, crate::inventory::names::host_problem(h))) {
        Some((_, None)) => Ok(url),
        Some((h, Some(problem))) => Err(format!("the host `{}` {problem}", crate::diagnostic::escape_line(h, 80))),
        None => Err(format!("`{}` is not an http(s) URL", crate::diagnostic::escape_line(url, 80))),
    }
}

/// Time between two looks of `status --wait`.
const POLL: Duration = Duration::from_secs(2);

/// `status --wait`: progress on stderr; the URL (or the JSON report) on stdout.
fn wait_for(cluster: &run::Cluster, src: &Source, w: &wait::Wait, format: Format, out: &mut Output) -> Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let err = out.info();
    let mut report = rt
        .block_on(async {
            let client = run::client(cluster).await?;
            wait::wait(&client, src, w, |line| {
                let _ = writeln!(err, "{}/{}: {line}", w.env, w.slot);
            })
            .await
        })
        .context("status --wait failed")?;
    let name = format!("{}/{}", report.env, report.slot);
    if let Some(Err(problem)) = report.url.as_deref().map(checked_url) {
        writeln!(out.err, "warning: {name}: {problem}; no URL is printed")?;
        report.url = None;
    }
    if format == Format::Json {
        writeln!(out.out, "{}", serde_json::to_string_pretty(&report)?)?;
    }
    match &report.outcome {
        wait::Outcome::Ready => {
            writeln!(out.info(), "{name}: every stage ready, agent started (rendering {})", report.rendering)?;
            match (&report.url, format) {
                (Some(url), Format::Text) => writeln!(out.out, "{url}")?,
                (None, _) => {
                    writeln!(out.info(), "{name}: no URL: the slot has no host (target.json) and no Ingress rule")?
                }
                _ => {}
            }
            Ok(exit::OK)
        }
        wait::Outcome::Failed { stage, object, why } => {
            writeln!(out.err, "error: {name}: stage {stage} failed: {object}: {why}")?;
            Ok(exit::STAGE_FAILED)
        }
        wait::Outcome::TimedOut { stage, object, why } => {
            let after = humantime::format_duration(w.timeout);
            writeln!(out.err, "error: {name}: not ready after {after}: stage {stage} waits for {object}: {why}")?;
            Ok(exit::NOT_READY)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::checked_url;

    #[test]
    fn only_a_url_of_a_dns_name_is_printed() {
        assert_eq!(checked_url("https://pr-1.shop.example.com/"), Ok("https://pr-1.shop.example.com/"));
        assert_eq!(checked_url("http://a.example/"), Ok("http://a.example/"));
        for bad in [
            "https://a.example.com\nURL=https://evil/",
            "https://a.example.com\r/",
            "https://a.example.com\u{2028}x/",
            "https://A_B.example/",
            "https:///",
            "javascript:alert(1)",
            "https://a.example.com/\nX=1",
        ] {
            let err = checked_url(bad).expect_err(bad);
            assert!(!err.contains(['\n', '\r', '\u{2028}']), "{err}");
        }
    }
}
