//! `codex-k8s slots`: the slots in the tree, their last change in git and
//! their idle time; removing one slot; removing every slot idle past its TTL.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::render::{commit_or_push, commit_request, source_paths};
use super::{exit, load_project, targets, Output, Project};
use crate::git;
use crate::inventory::Inventory;
use crate::publish::lock_tree;
use crate::tree::{self, Desired};

/// Arguments of `slots`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// The rendered tree, relative to the project.
    #[arg(long, global = true, default_value = "rendered", value_name = "DIR")]
    out: std::path::PathBuf,
}

/// What to do with slots.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List slots: namespace, host, last change, idle time, TTL left.
    List {
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Remove one slot from the tree (its directory and its Flux file).
    Remove {
        /// Environment.
        #[arg(long)]
        env: String,
        /// Slot.
        #[arg(long)]
        slot: String,
        /// Commit the removal.
        #[arg(long)]
        commit: bool,
    },
    /// Remove every slot idle longer than its environment's idleTTL (judged from git history).
    Gc {
        /// Only report what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Commit the removal.
        #[arg(long)]
        commit: bool,
        /// Push the commit to REMOTE (retrying on concurrent pushes).
        #[arg(long, value_name = "REMOTE")]
        push: Option<String>,
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

/// One slot as the tree and git history see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotInfo {
    /// Environment.
    pub env: String,
    /// Slot.
    pub slot: String,
    /// Namespace.
    pub namespace: String,
    /// Host.
    pub host: Option<String>,
    /// Agent run id.
    pub run_id: Option<String>,
    /// Last commit touching the slot (seconds since the epoch); none if never committed.
    pub last_change: Option<i64>,
    /// Seconds since the last change (0 when uncommitted).
    pub idle_seconds: u64,
    /// The environment's idle TTL in seconds.
    pub ttl_seconds: u64,
    /// Idle longer than the TTL.
    pub expired: bool,
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Every slot in the tree with its idle time, judged from git history.
pub fn collect(
    inventory: &Inventory,
    out_dir: &Path,
    repo: Option<&git2::Repository>,
    only_env: Option<&str>,
) -> Result<Vec<SlotInfo>> {
    let prefix = targets::out_prefix(inventory, out_dir);
    let mut slots = Vec::new();
    for (name, env) in inventory.environments.iter().filter(|(_, e)| e.slots) {
        if only_env.is_some_and(|o| o != name) {
            continue;
        }
        for slot in tree::list_slots(out_dir, name) {
            slots.push((name.clone(), slot, env.idle_ttl.unwrap_or(crate::inventory::DEFAULT_IDLE_TTL)));
        }
    }
    let dirs: Vec<String> = slots.iter().map(|(e, s, _)| join(&prefix, &format!("{e}/{s}"))).collect();
    let changes = match repo {
        Some(r) => git::last_changes(r, &dirs)?,
        None => Default::default(),
    };
    let now = now();
    Ok(slots
        .into_iter()
        .zip(dirs)
        .map(|((env, slot, ttl), dir)| {
            let meta = tree::read_meta(out_dir, &format!("{env}/{slot}"));
            let last_change = changes.get(&dir).copied();
            let idle = last_change.map(|t| (now - t).max(0) as u64).unwrap_or(0);
            SlotInfo {
                namespace: meta.as_ref().map(|m| m.namespace.clone()).unwrap_or_default(),
                host: meta.as_ref().and_then(|m| m.host.clone()),
                run_id: meta.and_then(|m| m.run_id),
                env,
                slot,
                last_change,
                idle_seconds: idle,
                ttl_seconds: ttl.as_secs(),
                expired: last_change.is_some() && idle > ttl.as_secs(),
            }
        })
        .collect())
}

use crate::layout::join;

fn human(seconds: u64) -> String {
    humantime::format_duration(Duration::from_secs(seconds - seconds % 60)).to_string()
}

/// Runs a `slots` action.
pub fn run(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
    let Project { inventory, .. } = load_project(file, out)?;
    let out_dir = targets::out_dir(&inventory, &args.out)?;
    let repo = git2::Repository::discover(&inventory.root).ok();
    match args.action {
        Action::List { env, format } => {
            if let Some(e) = &env {
                if inventory.environment(e).is_none_or(|e| !e.slots) {
                    bail!("`{e}` is not a slot environment");
                }
            }
            let slots = collect(&inventory, &out_dir, repo.as_ref(), env.as_deref())?;
            match format {
                ListFormat::Json => writeln!(out.out, "{}", serde_json::to_string_pretty(&slots)?)?,
                ListFormat::Text => {
                    writeln!(
                        out.out,
                        "{:<24} {:<28} {:<36} {:>12} {:>12}",
                        "SLOT", "NAMESPACE", "HOST", "IDLE", "TTL LEFT"
                    )?;
                    for s in &slots {
                        let idle = if s.last_change.is_some() { human(s.idle_seconds) } else { "uncommitted".into() };
                        let left = if s.expired {
                            "expired".into()
                        } else {
                            human(s.ttl_seconds.saturating_sub(s.idle_seconds))
                        };
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
                }
            }
            Ok(exit::OK)
        }
        Action::Remove { env, slot, commit } => {
            // A link in the way is named before anything else is judged.
            let mut d = Desired::default();
            d.removed_targets.insert(format!("{env}/{slot}"));
            d.files.insert(tree::flux_path(&env, Some(&slot)), None);
            tree::check(&out_dir, &d).with_context(|| format!("cannot change {}", out_dir.display()))?;
            if !tree::list_slots(&out_dir, &env).contains(&slot) {
                bail!("no slot `{env}/{slot}` in {}", out_dir.display());
            }
            remove(&inventory, &out_dir, repo.as_ref(), &[(env, slot)], commit, None, out)
        }
        Action::Gc { dry_run, commit, push } => {
            let expired: Vec<(String, String)> = collect(&inventory, &out_dir, repo.as_ref(), None)?
                .into_iter()
                .filter(|s| s.expired)
                .map(|s| {
                    // The list is the result (stdout); counts are summaries (stderr).
                    let _ = writeln!(
                        out.out,
                        "{}/{}: idle {} (TTL {})",
                        s.env,
                        s.slot,
                        human(s.idle_seconds),
                        human(s.ttl_seconds)
                    );
                    (s.env, s.slot)
                })
                .collect();
            if expired.is_empty() {
                writeln!(out.err, "no slot is idle past its TTL")?;
                return Ok(exit::OK);
            }
            if dry_run {
                writeln!(out.err, "dry run: would remove {} slot(s)", expired.len())?;
                return Ok(exit::OK);
            }
            remove(&inventory, &out_dir, repo.as_ref(), &expired, commit || push.is_some(), push, out)
        }
    }
}

fn remove(
    inventory: &Inventory,
    out_dir: &Path,
    repo: Option<&git2::Repository>,
    slots: &[(String, String)],
    commit: bool,
    push: Option<String>,
    out: &mut Output,
) -> Result<u8> {
    let mut desired = Desired::default();
    for (env, slot) in slots {
        desired.removed_targets.insert(format!("{env}/{slot}"));
        desired.files.insert(tree::flux_path(env, Some(slot)), None);
    }
    if commit {
        let repo = repo.context("--commit needs a git repository")?;
        super::render::preflight(repo, None, push.as_deref())?;
    }
    let lock = lock_tree(&inventory.root, out_dir)?;
    tree::apply(out_dir, &desired)?;
    for (env, slot) in slots {
        writeln!(out.err, "removed {env}/{slot}")?;
    }
    if commit {
        let repo = repo.context("--commit needs a git repository")?;
        let prefix = targets::out_prefix(inventory, out_dir);
        let digest = tree::inputs_digest(inventory)?;
        let mut req = commit_request(
            &[],
            &desired,
            &prefix,
            &digest,
            git::rendered_from(Some(repo), &source_paths(repo, inventory)),
            None,
        );
        req.subject =
            format!("slots({})", slots.iter().map(|(e, s)| format!("{e}/{s}")).collect::<Vec<_>>().join(", "));
        let outcome = commit_or_push(repo, &req, None, push.as_deref(), &prefix, &|_, _| Ok(()))?;
        if let git::Outcome::Committed(oid) = outcome {
            writeln!(out.err, "committed {}", &oid.to_string()[..12])?;
        }
    }
    drop(lock);
    Ok(exit::OK)
}
