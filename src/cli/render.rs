//! `codex-k8s render`: render targets into the tree, check the tree for
//! drift, print one target as a YAML stream, and commit or push the result.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Result};

use super::output::Format;
use super::targets::{self, RequestArgs, Selection};
use super::{exit, load_project, Exit, Output, Project};
use crate::git;
use crate::publish::{Action, Progress, Publish, RenderRun, ReportKind};
use crate::render::{RenderedTarget, Shard};
use crate::tree;

/// Arguments of `render`. Saying what to render (`--env` or `--all`) is
/// required, and `--stdout` prints one target, so it cannot take `--all`:
/// both are usage errors (exit 2) before anything is loaded.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").args(["env", "all"]).required(true)))]
pub struct Args {
    #[command(flatten)]
    selection: Selection,
    #[command(flatten)]
    request: RequestArgs,
    /// Render in memory and compare with the tree: exit 3 and list drift.
    #[arg(long, conflicts_with_all = ["stdout", "commit", "branch", "push"])]
    check: bool,
    /// Print one target as a YAML stream; write nothing.
    #[arg(long, conflicts_with_all = ["commit", "branch", "push", "all"])]
    stdout: bool,
    /// Output format of the run summary: `json` prints `{targets, unchanged, changes, commit, pushed}` (with --check:
    /// `{upToDate, targets, drift}`) on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text, conflicts_with = "stdout")]
    format: Format,
    /// With --stdout: only these components (comma-separated).
    #[arg(long, value_delimiter = ',', requires = "stdout", value_name = "C,…", add = clap_complete::ArgValueCandidates::new(super::complete::components))]
    only: Vec<String>,
    /// With --stdout: skip these components (comma-separated).
    #[arg(long, value_delimiter = ',', requires = "stdout", value_name = "C,…", add = clap_complete::ArgValueCandidates::new(super::complete::components))]
    skip: Vec<String>,
    /// Commit the rendered targets on the current branch (one commit, none if nothing changed).
    #[arg(long)]
    commit: bool,
    /// With --commit: commit even when the inventory or templates differ from HEAD (the commit says `(dirty)`).
    #[arg(long, requires = "commit")]
    allow_dirty: bool,
    /// Subject of the commit (default: `render(<targets>): <counts>`).
    #[arg(long, short = 'm', value_name = "M")]
    message: Option<String>,
    /// Commit on this branch from memory instead: no work tree or index is touched.
    #[arg(long, value_name = "REF")]
    branch: Option<String>,
    /// Push the commit to REMOTE, rebuilding it on the new tip if another push won the race.
    #[arg(long, value_name = "REMOTE")]
    push: Option<String>,
    /// Render every selected target even when its recorded inputs and files are current.
    #[arg(long)]
    force: bool,
    /// The source ref this run renders from, owner of the slots it renders (default: the checked-out branch).
    #[arg(long, value_name = "REF", env = "CODEX_K8S_SOURCE_REF")]
    source_ref: Option<String>,
    /// Render a slot another source owns anyway, taking it over.
    #[arg(long, conflicts_with = "all")]
    adopt: bool,
    /// The protected ref: its renders onto a deploy branch (--branch) record the walls every other source's slot renders are held to.
    #[arg(long, value_name = "REF", env = "CODEX_K8S_PROTECTED_REF", default_value = crate::publish::walls::DEFAULT_PROTECTED_REF)]
    protected_ref: String,
    /// Take the walls from the project at this revision instead of the deploy branch's record.
    #[arg(long, value_name = "REV")]
    walls_from: Option<String>,
    /// With --all: render only shard I of N (1-based), for a CI matrix of N jobs; see docs/cli.md.
    #[arg(long, conflicts_with_all = ["env", "slots"], value_name = "I/N", value_parser = clap::value_parser!(Shard))]
    shard: Option<Shard>,
}

/// `--commit` puts the output on the source's own branch: output rendered
/// from uncommitted inputs would not match what a clean checkout of that
/// commit renders, and every `render --check` there would fail.
fn refuse_dirty_sources(inventory: &crate::inventory::Inventory) -> Result<()> {
    let sources: Vec<std::path::PathBuf> = inventory.sources.iter().map(|s| inventory.root.join(s)).collect();
    let dirty = git::dirty_files(&inventory.root, &sources);
    if dirty.is_empty() {
        return Ok(());
    }
    let more = dirty.len().saturating_sub(10);
    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
    bail!(
        "--commit: the inputs differ from HEAD: {}{more}; commit them first (the output would not match what a clean \
         checkout renders), or pass --allow-dirty",
        dirty.iter().take(10).map(String::as_str).collect::<Vec<_>>().join(", ")
    )
}

/// Renders the selected targets.
pub fn run(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
    let Project { inventory, engine } = load_project(file, out)?;
    for name in args.only.iter().chain(&args.skip) {
        if inventory.component(name).is_none() && !crate::inventory::GENERATED_COMPONENTS.contains(&name.as_str()) {
            bail!("unknown component `{name}` in --only/--skip");
        }
    }
    if let Some(problem) = args.message.as_deref().and_then(crate::inventory::names::message_problem) {
        bail!("invalid -m/--message: it {problem}; give a one-line subject (the tool writes the trailers)");
    }
    if args.commit && args.branch.is_none() && !args.allow_dirty {
        refuse_dirty_sources(&inventory)?;
    }
    let action = if args.check {
        Action::Check
    } else if args.stdout {
        Action::Stdout
    } else if args.commit || args.branch.is_some() || args.push.is_some() {
        Action::Commit(Publish { branch: args.branch.clone(), push: args.push.clone(), message: args.message.clone() })
    } else {
        Action::Write
    };
    let run = RenderRun {
        inventory: &inventory,
        engine: &engine,
        out_dir: targets::out_dir(&inventory, &args.request.out)?,
        selection: targets::selection(&args.selection)?,
        options: targets::options(&inventory, &args.request, args.adopt)?,
        source_ref: args.source_ref.clone(),
        action,
        force: args.force,
        shard: args.shard,
        protected_ref: args.protected_ref.clone(),
        walls_from: args.walls_from.clone(),
    };
    let report = match run.run(&Spinner::new(out)) {
        Ok(r) => r,
        Err(e) => return Err(super::nothing_written(e, out)),
    };
    out.diagnostics(&report.warnings)?;
    if !report.foreign.is_empty() {
        let names: Vec<String> = report.foreign.iter().take(5).map(|(t, s)| format!("{t} ({})", s.git_ref)).collect();
        let more = report.foreign.len().saturating_sub(names.len());
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        writeln!(
            out.info(),
            "left {} slot(s) owned by other sources as they are: {}{more}",
            report.foreign.len(),
            names.join(", ")
        )?;
    }
    let shown = report.shown;
    match report.kind {
        ReportKind::Stdout(one) => print_stream(&one, &args.only, &args.skip, out),
        ReportKind::Checked { total, changes } if args.format == Format::Json => {
            let drift: Vec<serde_json::Value> = changes.iter().map(change_json).collect();
            let report = serde_json::json!({"upToDate": changes.is_empty(), "targets": total, "drift": drift});
            writeln!(out.out, "{}", serde_json::to_string_pretty(&report)?)?;
            if changes.is_empty() {
                Ok(exit::OK)
            } else {
                Err(Exit(exit::DRIFT).into())
            }
        }
        ReportKind::Checked { total, changes } => report_check(&shown, total, &changes, out),
        ReportKind::Written { tree, commit } if args.format == Format::Json => {
            let (targets, unchanged, changes) = match &tree {
                Some(w) => (w.dirs.clone(), w.unchanged, w.changes.iter().map(change_json).collect()),
                None => (Vec::new(), 0, Vec::new()),
            };
            let commit = match commit {
                Some(git::Outcome::Committed(oid)) => Some(oid.to_string()),
                _ => None,
            };
            let pushed = commit.as_ref().and(args.push.clone());
            let report = serde_json::json!({
                "targets": targets, "unchanged": unchanged, "changes": changes, "commit": commit, "pushed": pushed,
            });
            writeln!(out.out, "{}", serde_json::to_string_pretty(&report)?)?;
            Ok(exit::OK)
        }
        ReportKind::Written { tree, commit } => {
            if let Some(w) = tree {
                summarize(out, &shown, &w.dirs, w.unchanged, &w.changes)?;
            }
            match commit {
                Some(git::Outcome::Committed(oid)) => writeln!(
                    out.info(),
                    "committed {}{}",
                    &oid.to_string()[..12],
                    args.push.as_ref().map(|r| format!(" and pushed to {r}")).unwrap_or_default()
                )?,
                Some(git::Outcome::Unchanged) => writeln!(out.info(), "nothing to commit: the tree already matches")?,
                None => {}
            }
            Ok(exit::OK)
        }
    }
}

/// A changed file as JSON: `{"kind": "added|changed|removed", "path": …}` (relative to `--out`).
fn change_json(c: &tree::Change) -> serde_json::Value {
    serde_json::json!({"kind": format!("{:?}", c.kind).to_lowercase(), "path": c.path})
}

fn summarize(out: &mut Output, shown: &str, dirs: &[String], unchanged: usize, changes: &[tree::Change]) -> Result<()> {
    let count = |k: tree::ChangeKind| changes.iter().filter(|c| c.kind == k).count();
    // A target directory is `env` or `env/slot`: look a change's path up by
    // its first one and two components (linear in the changes).
    let dirs: BTreeSet<&str> = dirs.iter().map(String::as_str).collect();
    let touched: BTreeSet<&str> = changes
        .iter()
        .filter_map(|c| {
            let mut cut = c.path.match_indices('/').map(|(i, _)| &c.path[..i]);
            let (one, two) = (cut.next(), cut.next());
            two.filter(|d| dirs.contains(d)).or(one.filter(|d| dirs.contains(d)))
        })
        .collect();
    writeln!(
        out.info(),
        "rendered {} target(s) into {shown} ({unchanged} more already current): {} file(s) changed in {} target(s) ({} added, {} changed, {} removed)",
        dirs.len(),
        changes.len(),
        touched.len(),
        count(tree::ChangeKind::Added),
        count(tree::ChangeKind::Changed),
        count(tree::ChangeKind::Removed)
    )?;
    Ok(())
}

fn print_stream(t: &RenderedTarget, only: &[String], skip: &[String], out: &mut Output) -> Result<u8> {
    let mut first = true;
    for o in &t.objects {
        if (!only.is_empty() && !only.contains(&o.component)) || skip.contains(&o.component) {
            continue;
        }
        if !first {
            writeln!(out.out, "---")?;
        }
        first = false;
        write!(out.out, "# Source: {}\n{}", o.path(), o.to_yaml())?;
    }
    out.out.flush()?;
    Ok(exit::OK)
}

/// A spinner on stderr while many targets render (when stderr is a terminal).
struct Spinner {
    enabled: bool,
    bar: std::cell::RefCell<Option<indicatif::ProgressBar>>,
}

impl Spinner {
    fn new(out: &Output) -> Self {
        Spinner { enabled: out.progress, bar: std::cell::RefCell::new(None) }
    }
}

impl Progress for Spinner {
    fn start(&self, targets: usize) {
        if !self.enabled || targets < 8 {
            return;
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(format!("rendering {targets} targets"));
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        *self.bar.borrow_mut() = Some(bar);
    }
    fn finish(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}

/// The answer of `--check`: up to date (exit 0), or the drifted files (exit 3).
fn report_check(shown: &str, total: usize, changes: &[tree::Change], out: &mut Output) -> Result<u8> {
    if changes.is_empty() {
        writeln!(out.info(), "{shown}: {total} target(s) up to date")?;
        return Ok(exit::OK);
    }
    writeln!(out.out, "drift in {shown} ({} file(s)); run `codex-k8s render` to update:", changes.len())?;
    for c in changes {
        writeln!(out.out, "  {:<8} {shown}/{}", format!("{:?}", c.kind).to_lowercase(), c.path)?;
    }
    Err(Exit(exit::DRIFT).into())
}
