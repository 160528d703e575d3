//! `codex-k8s slots`: the slots a tree holds (the work tree, or a branch —
//! with `--push R`, R's tip of it), their last change and idle time;
//! removing slots (idempotent: an absent slot is success); removing every
//! slot idle past its TTL. The rules live in `publish::slots`.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use super::{exit, load_project, targets, Output, Project};
use crate::git;
use crate::inventory::names::SlotName;
use crate::inventory::Inventory;
use crate::publish::slots::{self, Place, Reason, View};

/// Arguments of `slots`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// The rendered tree, relative to the project.
    #[arg(long, global = true, default_value = "rendered", value_name = "DIR")]
    out: std::path::PathBuf,
    /// Read (and remove from) this branch instead of the work tree, e.g. the deploy branch `rendered`.
    #[arg(long, global = true, value_name = "REF")]
    branch: Option<String>,
    /// With --branch: read REMOTE's tip of it and push removals there (retrying on concurrent pushes); without: push the checked-out branch.
    #[arg(long, global = true, value_name = "REMOTE")]
    push: Option<String>,
}

/// What to do with slots.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List slots: namespace, host, owner, last change, idle time, TTL left.
    List {
        /// Only this environment.
        #[arg(long, add = clap_complete::ArgValueCandidates::new(super::complete::environments))]
        env: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Remove one slot (its directory and its Flux file); an absent slot is success.
    Remove {
        /// Environment.
        #[arg(long, add = clap_complete::ArgValueCandidates::new(super::complete::environments))]
        env: String,
        /// Slot.
        #[arg(long, add = clap_complete::ArgValueCandidates::new(super::complete::slots))]
        slot: SlotName,
        /// Commit the removal (implied by --branch and --push).
        #[arg(long)]
        commit: bool,
        /// Why, for the commit message (e.g. `pull request closed`).
        #[arg(long, default_value = "removed by hand", value_name = "TEXT")]
        reason: String,
    },
    /// Remove every slot idle longer than its environment's idleTTL (judged from git history).
    Gc {
        /// Only report what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Output format: `json` prints `{dryRun, expired: [{env, slot, idleSeconds, ttlSeconds}], removed, absent, commit}`.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
        /// Commit the removal (implied by --branch and --push).
        #[arg(long)]
        commit: bool,
    },
}

/// List formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// A table.
    Text,
    /// JSON.
    Json,
}

fn human(seconds: u64) -> String {
    humantime::format_duration(Duration::from_secs(seconds - seconds % 60)).to_string()
}

fn slot_env(inventory: &Inventory, env: &str) -> Result<()> {
    match inventory.environment(env) {
        Some(e) if e.slots => Ok(()),
        Some(_) => bail!("`{env}` is not a slot environment"),
        None => {
            let known: Vec<&str> =
                inventory.environments.values().filter(|e| e.slots).map(|e| e.name.as_str()).collect();
            bail!("unknown slot environment `{env}`; slot environments: {}", known.join(", "))
        }
    }
}

/// Runs a `slots` action.
pub fn run(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
    let Project { inventory, .. } = load_project(file, out)?;
    let out_dir = targets::out_dir(&inventory, &args.out)?;
    let repo = crate::publish::open_repo(&inventory.root);
    let place = Place { branch: args.branch.clone(), remote: args.push.clone() };
    let view = View::open(&inventory, repo.as_ref(), &out_dir, &place)?;
    match args.action {
        Action::List { env, format } => {
            if let Some(e) = &env {
                slot_env(&inventory, e)?;
            }
            let slots = view.list(&inventory, env.as_deref())?;
            for s in &slots {
                if let Some(problem) = &s.problem {
                    writeln!(out.err, "warning: {}/{}: {problem}; its recorded fields are not shown", s.env, s.slot)?;
                }
            }
            match format {
                ListFormat::Json => writeln!(out.out, "{}", serde_json::to_string_pretty(&slots)?)?,
                ListFormat::Text => print_table(&slots, out)?,
            }
            Ok(exit::OK)
        }
        Action::Remove { env, slot, commit, reason } => {
            slot_env(&inventory, &env)?;
            let reason = Reason { by: "slots remove".into(), why: reason };
            remove(&inventory, &view, &[(env, slot.into_string())], commit, &reason, out)
        }
        Action::Gc { dry_run, commit, format: ListFormat::Json } => {
            let expired: Vec<slots::SlotInfo> =
                view.list(&inventory, None)?.into_iter().filter(|s| s.expired).collect();
            let listed: Vec<serde_json::Value> = expired
                .iter()
                .map(|s| {
                    serde_json::json!({"env": s.env, "slot": s.slot, "idleSeconds": s.idle_seconds, "ttlSeconds": s.ttl_seconds})
                })
                .collect();
            let mut report = serde_json::json!({
                "dryRun": dry_run, "expired": listed, "removed": [], "absent": [], "commit": null,
            });
            if !dry_run && !expired.is_empty() {
                let list: Vec<(String, String)> = expired.into_iter().map(|s| (s.env, s.slot)).collect();
                let reason = Reason { by: "slots gc".into(), why: "idle past idleTTL".into() };
                let done = slots::remove(&inventory, &view, &list, commit, &reason)?;
                report["removed"] = serde_json::json!(done.removed.iter().map(ToString::to_string).collect::<Vec<_>>());
                report["absent"] = serde_json::json!(done.absent.iter().map(ToString::to_string).collect::<Vec<_>>());
                if let Some(git::Outcome::Committed(oid)) = done.commit {
                    report["commit"] = serde_json::json!(oid.to_string());
                }
            }
            writeln!(out.out, "{}", serde_json::to_string_pretty(&report)?)?;
            Ok(exit::OK)
        }
        Action::Gc { dry_run, commit, format: ListFormat::Text } => {
            let mut expired = Vec::new();
            for s in view.list(&inventory, None)?.into_iter().filter(|s| s.expired) {
                // The list is the result (stdout); counts are summaries (stderr).
                writeln!(
                    out.out,
                    "{}/{}: idle {} (TTL {})",
                    s.env,
                    s.slot,
                    human(s.idle_seconds),
                    human(s.ttl_seconds)
                )?;
                expired.push((s.env, s.slot));
            }
            if expired.is_empty() {
                writeln!(out.info(), "no slot is idle past its TTL")?;
                return Ok(exit::OK);
            }
            if dry_run {
                writeln!(out.info(), "dry run: would remove {} slot(s)", expired.len())?;
                return Ok(exit::OK);
            }
            let reason = Reason { by: "slots gc".into(), why: "idle past idleTTL".into() };
            remove(&inventory, &view, &expired, commit, &reason, out)
        }
    }
}

fn print_table(slots: &[slots::SlotInfo], out: &mut Output) -> Result<()> {
    writeln!(out.out, "{:<24} {:<28} {:<36} {:>12} {:>12}", "SLOT", "NAMESPACE", "HOST", "IDLE", "TTL LEFT")?;
    for s in slots {
        let idle = if s.last_change.is_some() { human(s.idle_seconds) } else { "uncommitted".into() };
        let left = if s.expired { "expired".into() } else { human(s.ttl_seconds.saturating_sub(s.idle_seconds)) };
        writeln!(
            out.out,
            "{:<24} {:<28} {:<36} {:>12} {:>12}",
            format!("{}/{}", s.env, s.slot),
            s.namespace,
            s.host.as_deref().unwrap_or("-"),
            idle,
            left
        )?;
    }
    Ok(())
}

fn remove(
    inventory: &Inventory,
    view: &View<'_>,
    list: &[(String, String)],
    commit: bool,
    reason: &Reason,
    out: &mut Output,
) -> Result<u8> {
    let done = slots::remove(inventory, view, list, commit, reason)?;
    for t in &done.absent {
        writeln!(out.info(), "{t}: already absent")?;
    }
    for t in &done.removed {
        writeln!(out.info(), "removed {t}")?;
    }
    match done.commit {
        Some(git::Outcome::Committed(oid)) => writeln!(out.info(), "committed {}", &oid.to_string()[..12])?,
        Some(git::Outcome::Unchanged) => writeln!(out.info(), "nothing to commit: already removed")?,
        None => {}
    }
    Ok(exit::OK)
}
