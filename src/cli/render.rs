//! `codex-k8s render`: render targets into the tree, check the tree for
//! drift, or print one target as a YAML stream.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::targets::{self, RequestArgs, Selection};
use super::{exit, load_project, Exit, Output, Project};
use crate::render::{render_targets, RenderedTarget};
use crate::tree;

/// Arguments of `render`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    selection: Selection,
    #[command(flatten)]
    request: RequestArgs,
    /// Render in memory and compare with the tree: exit 3 and list drift.
    #[arg(long, conflicts_with = "stdout")]
    check: bool,
    /// Print one target as a YAML stream; write nothing.
    #[arg(long)]
    stdout: bool,
    /// With --stdout: only these components (comma-separated).
    #[arg(long, value_delimiter = ',', requires = "stdout", value_name = "C,…")]
    only: Vec<String>,
    /// With --stdout: skip these components (comma-separated).
    #[arg(long, value_delimiter = ',', requires = "stdout", value_name = "C,…")]
    skip: Vec<String>,
}

/// Renders the selected targets.
pub fn run(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
    let Project { inventory, engine } = load_project(file, out)?;
    let out_dir = targets::out_dir(&inventory, &args.request.out)?;
    let requests = targets::requests(&inventory, &args.selection, &args.request, &out_dir)?;
    if args.stdout && requests.len() != 1 {
        bail!("--stdout prints one target; select one with --env (and one --slot)");
    }
    for name in args.only.iter().chain(&args.skip) {
        if inventory.component(name).is_none() && name != "namespace" {
            bail!("unknown component `{name}` in --only/--skip");
        }
    }
    let progress = progress_bar(out, requests.len());
    let rendered = match render_targets(&inventory, &engine, &requests) {
        Ok(r) => r,
        Err(ds) => {
            if let Some(p) = progress {
                p.finish_and_clear();
            }
            out.diagnostics(&ds)?;
            writeln!(out.err, "nothing was written")?;
            return Err(super::Reported.into());
        }
    };
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    if args.stdout {
        return print_stream(&rendered[0], &args.only, &args.skip, out);
    }
    let digest = tree::inputs_digest(&inventory).context("cannot hash the inputs")?;
    let prefix = targets::out_prefix(&inventory, &out_dir);
    let desired = tree::desired(&inventory, &rendered, &digest, &prefix);
    let shown = out_dir.strip_prefix(&inventory.root).unwrap_or(&out_dir).display().to_string();
    if args.check {
        let changes = tree::changes(&out_dir, &desired)?;
        if changes.is_empty() {
            writeln!(out.err, "{shown}: {} target(s) up to date", rendered.len())?;
            return Ok(exit::OK);
        }
        writeln!(out.out, "drift in {shown} ({} file(s)); run `codex-k8s render` to update:", changes.len())?;
        for c in &changes {
            writeln!(out.out, "  {:<8} {shown}/{}", format!("{:?}", c.kind).to_lowercase(), c.path)?;
        }
        return Err(Exit(exit::DRIFT).into());
    }
    let lock = lock_tree(&inventory.root, &out_dir)?;
    let changes = tree::apply(&out_dir, &desired).with_context(|| format!("cannot write {shown}"))?;
    drop(lock);
    summarize(out, &shown, &rendered, &changes)?;
    Ok(exit::OK)
}

fn summarize(out: &mut Output, shown: &str, rendered: &[RenderedTarget], changes: &[tree::Change]) -> Result<()> {
    let count = |k: tree::ChangeKind| changes.iter().filter(|c| c.kind == k).count();
    let touched: BTreeSet<String> = rendered.iter().map(|t| t.target.dir()).filter(|d| changes.iter().any(|c| c.path.starts_with(&format!("{d}/")))).collect();
    writeln!(
        out.err,
        "rendered {} target(s) into {shown}: {} changed ({} added, {} changed, {} removed file(s))",
        rendered.len(),
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

fn progress_bar(out: &Output, targets: usize) -> Option<indicatif::ProgressBar> {
    if !out.progress || targets < 8 {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("rendering {targets} targets"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

/// An exclusive lock so two renders never interleave on one tree: the second
/// waits (up to a minute) and then fails clearly.
pub struct TreeLock(std::fs::File);

/// Takes the tree lock (a file in `.git/` when the project is a repository).
pub fn lock_tree(root: &Path, out_dir: &Path) -> Result<TreeLock> {
    use fs2::FileExt;
    let path = match git2::Repository::discover(root) {
        Ok(repo) => repo.path().join("codex-k8s.lock"),
        Err(_) => out_dir.with_extension("lock"),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).with_context(|| format!("cannot open lock file {}", path.display()))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => return Ok(TreeLock(file)),
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(50)),
            Err(_) => bail!("another codex-k8s run holds {} for over a minute; wait for it or remove a stale lock", path.display()),
        }
    }
}

impl Drop for TreeLock {
    fn drop(&mut self) {
        let _ = fs2::FileExt::unlock(&self.0);
    }
}
