//! `codex-k8s render`: render targets into the tree, check the tree for
//! drift, print one target as a YAML stream, and commit or push the result.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::targets::{self, DiskTree, GitTree, RequestArgs, Selection, TreeState};
use super::{exit, load_project, Exit, Output, Project};
use crate::git;
use crate::publish::{lock_tree, TreeLock};
use crate::render::{render_targets, RenderedTarget, Shard};
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
    /// With --stdout: only these components (comma-separated).
    #[arg(long, value_delimiter = ',', requires = "stdout", value_name = "C,…")]
    only: Vec<String>,
    /// With --stdout: skip these components (comma-separated).
    #[arg(long, value_delimiter = ',', requires = "stdout", value_name = "C,…")]
    skip: Vec<String>,
    /// Commit the rendered targets on the current branch (one commit, none if nothing changed).
    #[arg(long)]
    commit: bool,
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
    /// With --all: render only shard I of N (1-based), for a CI matrix of N jobs; see docs/cli.md.
    #[arg(long, conflicts_with_all = ["env", "slots"], value_name = "I/N", value_parser = clap::value_parser!(Shard))]
    shard: Option<Shard>,
}

/// Renders the selected targets.
pub fn run(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
    let Project { inventory, engine } = load_project(file, out)?;
    let out_dir = targets::out_dir(&inventory, &args.request.out)?;
    // A writing run holds the lock from before it reads the tree (slots, run
    // ids, current targets) to the end: a second run that read the tree
    // while the first was swapping targets in would write a mix of both.
    // (Without a git repository the lock lives in the tree, which a failing
    // render must leave untouched: then it locks only before writing.)
    let early = !args.check && !args.stdout && git2::Repository::discover(&inventory.root).is_ok();
    let lock = if early { Some(lock_tree(&inventory.root, &out_dir)?) } else { None };
    let prefix = targets::out_prefix(&inventory, &out_dir);
    let repo = if args.commit || args.branch.is_some() || args.push.is_some() {
        Some(
            git2::Repository::discover(&inventory.root)
                .context("--commit, --branch and --push need a git repository")?,
        )
    } else {
        None
    };
    let branch_ref =
        args.branch.as_ref().map(|b| if b.starts_with("refs/") { b.clone() } else { format!("refs/heads/{b}") });
    if let Some(repo) = &repo {
        // Every git precondition holds before anything is written.
        preflight(repo, args.branch.as_deref().zip(branch_ref.as_deref()), args.push.as_deref())?;
    }
    let git_state;
    let disk_state = DiskTree(&out_dir);
    let state: &dyn TreeState = match (&repo, &branch_ref) {
        (Some(repo), Some(r)) => {
            let tree = repo.find_reference(r).ok().and_then(|r| r.peel_to_tree().ok());
            git_state = GitTree { repo, tree, prefix: prefix.clone() };
            &git_state
        }
        _ => &disk_state,
    };
    let mut requests = targets::requests(&inventory, &args.selection, &args.request, state)?;
    if let Some(shard) = args.shard {
        requests = shard.select(requests, |r| &r.target);
    }
    if args.stdout && requests.len() != 1 {
        bail!("--stdout prints one target; select one with --env (and one --slot)");
    }
    for name in args.only.iter().chain(&args.skip) {
        if inventory.component(name).is_none() && name != "namespace" {
            bail!("unknown component `{name}` in --only/--skip");
        }
    }
    let digest = tree::inputs_digest(&inventory).context("cannot hash the inputs")?;
    // Targets whose recorded inputs match and whose files are untouched need
    // no rendering: a no-change run only reads and hashes.
    // A commit must carry every selected target, current or not (the tree on
    // disk may be ahead of git), so committing runs render everything.
    // The shortcut is trusted only for a tree this very build wrote last (a
    // marker in .git, never committed), so a fresh clone or a new codex-k8s
    // renders everything once.
    let marker = build_marker(&inventory.root, &out_dir);
    let trusted = std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == tree::BUILD_ID);
    let (current, requests): (Vec<_>, Vec<_>) = if args.stdout || repo.is_some() || args.force || !trusted {
        (Vec::new(), requests)
    } else {
        use rayon::prelude::*;
        let verdicts: Vec<bool> = requests.par_iter().map(|r| tree::is_current(&out_dir, r, &digest)).collect();
        let (a, b): (Vec<_>, Vec<_>) = requests.into_iter().zip(verdicts).partition(|(_, current)| *current);
        (a.into_iter().map(|(r, _)| r).collect(), b.into_iter().map(|(r, _)| r).collect())
    };
    if repo.is_none() && !args.stdout {
        let run =
            Streaming { inventory: &inventory, engine: &engine, out_dir: &out_dir, prefix: &prefix, digest: &digest };
        return run.render(&requests, &current, args.check, lock, &marker, out);
    }
    let progress = progress_bar(out, requests.len());
    let rendered = render_targets(&inventory, &engine, &requests);
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    let rendered = match rendered {
        Ok(r) => r,
        Err(ds) => {
            out.diagnostics(&ds)?;
            writeln!(out.err, "nothing was written")?;
            return Err(super::Reported.into());
        }
    };
    if args.stdout {
        // One request was checked above; one target is rendered per request.
        let Some(one) = rendered.first() else { bail!("--stdout: nothing was rendered") };
        return print_stream(one, &args.only, &args.skip, out);
    }
    let namespaces: Vec<_> = rendered.iter().map(|t| (t.target.clone(), t.namespace.clone())).collect();
    let clashes = namespace_clashes(&inventory, &engine, &out_dir, namespaces);
    if clashes.has_errors() {
        out.diagnostics(&clashes)?;
        writeln!(out.err, "nothing was written")?;
        return Err(super::Reported.into());
    }
    let mut desired = tree::desired(&inventory, &rendered, &digest, &prefix);
    for r in &current {
        desired.files.insert(
            crate::layout::argocd_path(&r.target.env),
            Some(tree::argocd_file(&inventory, &r.target.env, &prefix)),
        );
    }
    let total = rendered.len() + current.len();
    let shown = out_dir.strip_prefix(&inventory.root).unwrap_or(&out_dir).display().to_string();
    if args.check {
        let changes = tree::changes(&out_dir, &desired)?;
        return report_check(&shown, total, &changes, out);
    }
    let lock = match lock {
        Some(l) => l,
        None => lock_tree(&inventory.root, &out_dir)?,
    };
    // What the run may have to put back: the tree's touched parts, the
    // checked-out branch and the index, as they are before writing.
    let undo = match (&repo, &branch_ref) {
        (Some(repo), None) => {
            Some(Undo::take(repo, &out_dir, &desired).with_context(|| format!("cannot read {shown}"))?)
        }
        _ => None,
    };
    if branch_ref.is_none() {
        tree::check(&out_dir, &desired).with_context(|| format!("cannot write {shown}"))?;
        let changes = tree::apply(&out_dir, &desired).with_context(|| format!("cannot write {shown}"))?;
        let _ = std::fs::write(&marker, tree::BUILD_ID);
        let dirs: Vec<String> = rendered.iter().map(|t| t.target.dir()).collect();
        summarize(out, &shown, &dirs, current.len(), &changes)?;
    }
    if let Some(repo) = &repo {
        let sources = source_paths(repo, &inventory);
        let req = commit_request(
            &rendered,
            &desired,
            &prefix,
            &digest,
            git::rendered_from(Some(repo), &sources),
            args.message.clone(),
        );
        let limits = slot_limits(&inventory, &rendered);
        let capacity = |repo: &git2::Repository, tip: git2::Oid| check_capacity(repo, tip, &prefix, &limits);
        let outcome = match commit_or_push(repo, &req, branch_ref.as_deref(), args.push.as_deref(), &prefix, &capacity)
        {
            Ok(o) => o,
            Err(e) => {
                if let Some(undo) = undo {
                    match undo.restore(repo, &out_dir) {
                        Ok(()) => writeln!(out.err, "rolled back: {shown}, the branch and the index are as before")?,
                        Err(r) => writeln!(out.err, "rollback failed too: {r:#}")?,
                    }
                }
                return Err(e);
            }
        };
        match outcome {
            git::Outcome::Committed(oid) => writeln!(
                out.err,
                "committed {}{}",
                &oid.to_string()[..12],
                args.push.as_ref().map(|r| format!(" and pushed to {r}")).unwrap_or_default()
            )?,
            git::Outcome::Unchanged => writeln!(out.err, "nothing to commit: the tree already matches")?,
        }
    }
    drop(lock);
    Ok(exit::OK)
}

/// Commits `req` on the checked-out branch or on `branch_ref`, and pushes to
/// `push` when given, keeping the work tree's rendered files and index in step.
pub fn commit_or_push(
    repo: &git2::Repository,
    req: &git::CommitRequest,
    branch_ref: Option<&str>,
    push: Option<&str>,
    prefix: &str,
    check: &dyn Fn(&git2::Repository, git2::Oid) -> git::Result<()>,
) -> Result<git::Outcome> {
    Ok(match (branch_ref, push) {
        (Some(r), None) => git::commit_on_ref(repo, r, req)?,
        (None, None) => git::commit_worktree(repo, req)?,
        (r, Some(remote)) => {
            let branch = match r {
                Some(r) => r.trim_start_matches("refs/heads/").to_owned(),
                None => current_branch(repo)?,
            };
            // What the work tree held before the run (besides this run's
            // targets): the baseline that tells files other jobs removed
            // from files nobody tracks.
            let before = if r.is_none() { repo.head().ok().and_then(|h| h.peel_to_tree().ok()) } else { None };
            let outcome = git::push_with_retry(repo, remote, &branch, req, push_retry()?, check)?;
            if r.is_none() {
                // The branch may have moved onto the remote tip (other jobs'
                // slots): bring the index and the rendered tree along,
                // removing the files the other jobs' commits removed.
                git::reset_index_to_head(repo, prefix)?;
                let mut co = git2::build::CheckoutBuilder::new();
                co.force();

                if !prefix.is_empty() {
                    co.path(prefix);
                }
                repo.checkout_head(Some(&mut co))?;
                if let Some(before) = before {
                    remove_files_removed_upstream(repo, &before, prefix)?;
                }
            }
            outcome
        }
    })
}

/// Deletes from the work tree the files under `prefix` that `before` held
/// and `HEAD` no longer does (another job's commit, taken in by a rebuilt
/// push, removed them), when they still hold `before`'s content: a checkout
/// alone leaves them behind as untracked files.
fn remove_files_removed_upstream(repo: &git2::Repository, before: &git2::Tree<'_>, prefix: &str) -> Result<()> {
    let Some(workdir) = repo.workdir() else { return Ok(()) };
    let head = repo.head()?.peel_to_tree()?;
    let mut opts = git2::DiffOptions::new();
    if !prefix.is_empty() {
        opts.pathspec(prefix);
    }
    let diff = repo.diff_tree_to_tree(Some(before), Some(&head), Some(&mut opts))?;
    for delta in diff.deltas().filter(|d| d.status() == git2::Delta::Deleted) {
        let (Some(rel), id) = (delta.old_file().path(), delta.old_file().id()) else { continue };
        let path = workdir.join(rel);
        let unchanged = path.symlink_metadata().is_ok_and(|m| m.is_file())
            && git2::Oid::hash_file(git2::ObjectType::Blob, &path).is_ok_and(|h| h == id);
        if unchanged {
            std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            let mut dir = path.parent().map(Path::to_path_buf);
            while let Some(d) = dir.filter(|d| d.starts_with(workdir) && d != workdir) {
                if std::fs::remove_dir(&d).is_err() {
                    break;
                }
                dir = d.parent().map(Path::to_path_buf);
            }
        }
    }
    Ok(())
}

/// The git preconditions of a committing run, checked before anything is
/// written: an identity, a remote that exists, and either a valid `--branch`
/// (`(as given, as a ref)`) that is not the checked-out one, or a checked-out
/// branch with a work tree and an unlocked index.
pub fn preflight(repo: &git2::Repository, branch: Option<(&str, &str)>, push: Option<&str>) -> Result<()> {
    git::signatures(repo)?;
    match branch {
        Some((given, r)) => check_branch(repo, given, r)?,
        None => {
            if repo.is_bare() {
                bail!(git::Error::Bare);
            }
            current_branch(repo)?;
            let lock = repo.path().join("index.lock");
            if lock.symlink_metadata().is_ok() {
                bail!(
                    "{} exists: another git process is using this repository, or one was killed; wait for it, or remove the file when no git process runs",
                    lock.display()
                );
            }
        }
    }
    if let Some(remote) = push {
        git::check_remote(repo, remote)?;
        push_retry()?;
    }
    Ok(())
}

/// The retry policy of `--push`: the default, with the total time from
/// `CODEX_K8S_PUSH_TIMEOUT` (a duration such as `120s` or `5m`, or seconds).
pub fn push_retry() -> Result<git::Retry> {
    const VAR: &str = "CODEX_K8S_PUSH_TIMEOUT";
    let Some(raw) = std::env::var_os(VAR) else { return Ok(git::Retry::default()) };
    let text = raw.to_str().unwrap_or("");
    let parsed = text
        .trim()
        .parse::<u64>()
        .map(std::time::Duration::from_secs)
        .or_else(|_| humantime::parse_duration(text.trim()));
    match parsed {
        Ok(d) if !d.is_zero() => Ok(git::Retry::with_deadline(d)),
        _ => bail!(
            "{VAR}={}: not a duration; give one such as `120s`, `5m` or a number of seconds",
            raw.to_string_lossy()
        ),
    }
}

/// Refuses a `--branch` git would refuse (`HEAD`, invalid names) and the
/// checked-out branch, whose index and work tree a commit from memory would leave stale.
fn check_branch(repo: &git2::Repository, given: &str, r: &str) -> Result<()> {
    let bad = !git2::Reference::is_valid_name(r)
        || !r.starts_with("refs/heads/")
        || r.split('/').any(|c| c == "HEAD" || c.starts_with('-'));
    if bad {
        bail!("--branch {given}: not a branch name git accepts; name a branch such as `rendered`");
    }
    let head = repo.find_reference("HEAD").ok();
    if !repo.is_bare() && head.as_ref().and_then(|h| h.symbolic_target()) == Some(r) {
        bail!(
            "--branch {given} is the checked-out branch: a commit from memory would leave its index and work tree stale; drop --branch (plain --commit), or name another branch"
        );
    }
    Ok(())
}

/// The `maxSlots` of each slot environment among `rendered`.
fn slot_limits(inventory: &crate::inventory::Inventory, rendered: &[RenderedTarget]) -> Vec<(String, usize)> {
    let mut limits: Vec<(String, usize)> = rendered
        .iter()
        .filter(|t| t.target.slot.is_some())
        .filter_map(|t| {
            inventory.environment(&t.target.env).and_then(|e| e.max_slots).map(|m| (t.target.env.clone(), m as usize))
        })
        .collect();
    limits.sort();
    limits.dedup();
    limits
}

/// `maxSlots` on a rebuilt tip: refused when the commit takes an
/// environment past its limit (other jobs may have added slots meanwhile).
fn check_capacity(
    repo: &git2::Repository,
    tip: git2::Oid,
    prefix: &str,
    limits: &[(String, usize)],
) -> git::Result<()> {
    let commit = repo.find_commit(tip)?;
    let parent = commit.parents().next().map(|p| p.tree()).transpose()?;
    for (env, max) in limits {
        let count =
            |tree: Option<git2::Tree<'_>>| GitTree { repo, tree, prefix: prefix.to_owned() }.list_slots(env).len();
        let now = count(Some(commit.tree()?));
        let before = count(parent.clone());
        if now > *max && now > before {
            return Err(git::Error::Refused(format!(
                "`{env}` would hold {now} slot(s) on the remote tip and allows {max} (maxSlots): other jobs added slots meanwhile. Remove idle slots with `codex-k8s slots gc` or raise maxSlots"
            )));
        }
    }
    Ok(())
}

/// What a committing run restores when a step after writing fails.
struct Undo {
    tree: tree::Desired,
    branch: Option<(String, Option<git2::Oid>)>,
    index: Option<Vec<u8>>,
}

impl Undo {
    fn take(repo: &git2::Repository, out_dir: &Path, desired: &tree::Desired) -> Result<Undo> {
        let branch = repo.find_reference("HEAD").ok().and_then(|h| h.symbolic_target().map(str::to_owned)).map(|r| {
            let oid = repo.refname_to_id(&r).ok();
            (r, oid)
        });
        let index = std::fs::read(repo.path().join("index")).ok();
        Ok(Undo { tree: tree::snapshot(out_dir, desired)?, branch, index })
    }

    fn restore(self, repo: &git2::Repository, out_dir: &Path) -> Result<()> {
        tree::apply(out_dir, &self.tree)?;
        if let Some((r, old)) = self.branch {
            let now = repo.refname_to_id(&r).ok();
            match old {
                Some(old) if now != Some(old) => {
                    repo.reference(&r, old, true, "codex-k8s: roll back a failed run")?;
                }
                None if now.is_some() => repo.find_reference(&r)?.delete()?,
                _ => {}
            }
        }
        let path = repo.path().join("index");
        match self.index {
            Some(bytes) if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) => {
                std::fs::write(&path, bytes)?
            }
            None if path.exists() => std::fs::remove_file(&path)?,
            _ => {}
        }
        Ok(())
    }
}

fn current_branch(repo: &git2::Repository) -> Result<String> {
    let head = repo.find_reference("HEAD")?;
    let target = head.symbolic_target().context("HEAD is detached: check out a branch or use --branch")?;
    Ok(target.trim_start_matches("refs/heads/").to_owned())
}

/// The inventory's input files as repository paths (for `Rendered-From`).
pub fn source_paths(repo: &git2::Repository, inventory: &crate::inventory::Inventory) -> Vec<String> {
    inventory.sources.iter().map(|s| repo_relative(repo, &inventory.root.join(s))).collect()
}

fn repo_relative(repo: &git2::Repository, path: &Path) -> String {
    let workdir = repo.workdir().and_then(|w| w.canonicalize().ok());
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    match workdir {
        Some(w) => path.strip_prefix(&w).unwrap_or(&path).to_string_lossy().replace('\\', "/"),
        None => path.to_string_lossy().into_owned(),
    }
}

/// The commit for this run: each rendered target's directory and glue files.
pub fn commit_request(
    rendered: &[RenderedTarget],
    desired: &tree::Desired,
    prefix: &str,
    digest: &str,
    from: String,
    message: Option<String>,
) -> git::CommitRequest {
    let join = |rest: &str| crate::layout::join(prefix, rest);
    let mut updates = git::Updates::new();
    for (dir, files) in &desired.targets {
        updates.insert(
            join(dir),
            git::Update::Dir(files.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect()),
        );
    }
    for dir in &desired.removed_targets {
        updates.insert(join(dir), git::Update::Remove);
    }
    for (rel, content) in &desired.files {
        updates.insert(
            join(rel),
            match content {
                Some(c) => git::Update::File(c.clone().into_bytes()),
                None => git::Update::Remove,
            },
        );
    }
    let names: Vec<String> =
        rendered.iter().map(|t| t.target.dir()).chain(desired.removed_targets.iter().cloned()).collect();
    let scope = if names.len() <= 3 { names.join(", ") } else { format!("{} targets", names.len()) };
    git::CommitRequest {
        updates,
        subject: format!("render({scope})"),
        message,
        trailers: vec![
            ("Rendered-From".into(), from),
            ("Inputs-Digest".into(), format!("sha256:{digest}")),
            ("Targets".into(), names.join(", ")),
        ],
    }
}

/// The namespace clashes of a run's targets (`namespaces`) with each other,
/// with the plain environments and with the slots already in the tree (which
/// keep their namespaces: a new slot may not take one).
fn namespace_clashes(
    inventory: &crate::inventory::Inventory,
    engine: &crate::template::Engine,
    out_dir: &Path,
    mut namespaces: Vec<(crate::render::Target, String)>,
) -> crate::diagnostic::Diagnostics {
    let known: BTreeSet<crate::render::Target> = namespaces.iter().map(|(t, _)| t.clone()).collect();
    for env in inventory.environments.values().filter(|e| e.slots) {
        for slot in tree::list_slots(out_dir, &env.name) {
            let target = crate::render::Target { env: env.name.clone(), slot: Some(slot) };
            if known.contains(&target) {
                continue;
            }
            if let Ok(ns) = crate::render::isolation::namespace_of(inventory, engine, &target) {
                namespaces.push((target, ns));
            }
        }
    }
    crate::render::isolation::clashes(inventory, engine, &namespaces)
}

/// A plain render or `--check`: each target streams through the staging
/// area as soon as it is rendered (see `tree::render_into`), so memory stays
/// flat in the number of targets; nothing is swapped in before all succeeded.
struct Streaming<'a> {
    inventory: &'a crate::inventory::Inventory,
    engine: &'a crate::template::Engine,
    out_dir: &'a Path,
    prefix: &'a str,
    digest: &'a str,
}

impl Streaming<'_> {
    fn render(
        &self,
        requests: &[crate::render::Request],
        current: &[crate::render::Request],
        check: bool,
        lock: Option<TreeLock>,
        marker: &Path,
        out: &mut Output,
    ) -> Result<u8> {
        let root = &self.inventory.root;
        let shown = self.out_dir.strip_prefix(root).unwrap_or(self.out_dir).display().to_string();
        let plan = tree::plan(requests, current);
        // What a failed run must take away again: the lock file when it
        // lives in the tree (no git repository), and `--out` if it made it.
        let out_existed = self.out_dir.symlink_metadata().is_ok();
        let lock_file = crate::publish::lock_path(root, self.out_dir);
        let lock_file_existed = lock_file.symlink_metadata().is_ok();
        let mut lock = lock;
        let mut staging = None;
        if check {
            tree::check(self.out_dir, &plan)?;
        } else {
            if lock.is_none() {
                lock = Some(lock_tree(root, self.out_dir)?);
            }
            match tree::Staging::begin(self.out_dir, &plan) {
                Ok(s) => staging = Some(s),
                Err(e) => {
                    self.undo(None, &lock_file, lock_file_existed, out_existed);
                    return Err(anyhow::Error::new(e).context(format!("cannot write {shown}")));
                }
            }
        }
        let progress = progress_bar(out, requests.len());
        let sink = match &staging {
            Some(s) => tree::Sink::Stage(s),
            None => tree::Sink::Compare(self.out_dir),
        };
        let result = tree::render_into(self.inventory, self.engine, requests, self.digest, self.prefix, sink);
        if let Some(p) = progress {
            p.finish_and_clear();
        }
        let failed = |ds: &crate::diagnostic::Diagnostics, out: &mut Output| -> Result<u8> {
            out.diagnostics(ds)?;
            writeln!(out.err, "nothing was written")?;
            Err(super::Reported.into())
        };
        let streamed = match result {
            Ok(s) => s,
            Err(tree::Failure::Render(ds)) => {
                self.undo(staging, &lock_file, lock_file_existed, out_existed);
                return failed(&ds, out);
            }
            Err(tree::Failure::Io(e)) => {
                self.undo(staging, &lock_file, lock_file_existed, out_existed);
                return Err(anyhow::Error::new(e).context(format!("cannot write {shown}")));
            }
        };
        let namespaces = streamed.iter().map(|t| (t.target.clone(), t.namespace.clone())).collect();
        let clashes = namespace_clashes(self.inventory, self.engine, self.out_dir, namespaces);
        if clashes.has_errors() {
            self.undo(staging, &lock_file, lock_file_existed, out_existed);
            return failed(&clashes, out);
        }
        let files = tree::glue_files(self.inventory, &streamed, current, self.prefix);
        let mut changes: Vec<tree::Change> = streamed.iter().flat_map(|t| t.changes.iter().cloned()).collect();
        let total = streamed.len() + current.len();
        let Some(staging) = staging else {
            changes.extend(tree::file_changes(self.out_dir, &files)?);
            changes.sort();
            return report_check(&shown, total, &changes, out);
        };
        let staged: Vec<String> = streamed.iter().filter(|t| !t.changes.is_empty()).map(|t| t.target.dir()).collect();
        let glue = staging.finish(&staged, &files).with_context(|| format!("cannot write {shown}"))?;
        changes.extend(glue);
        changes.sort();
        let _ = std::fs::write(marker, tree::BUILD_ID);
        let dirs: Vec<String> = streamed.iter().map(|t| t.target.dir()).collect();
        summarize(out, &shown, &dirs, current.len(), &changes)?;
        drop(lock);
        Ok(exit::OK)
    }

    /// Leaves the tree as a failed run found it: drops what was staged, the
    /// lock file if this run created it in the tree, and `--out` if this run
    /// created it (only when empty by then).
    fn undo(&self, staging: Option<tree::Staging>, lock_file: &Path, lock_file_existed: bool, out_existed: bool) {
        if let Some(s) = staging {
            let _ = s.abort();
        }
        if !lock_file_existed && lock_file.starts_with(self.out_dir) {
            let _ = std::fs::remove_file(lock_file);
        }
        if !out_existed {
            let _ = std::fs::remove_dir(self.out_dir);
        }
    }
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
        out.err,
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

fn progress_bar(out: &Output, targets: usize) -> Option<indicatif::ProgressBar> {
    if !out.progress || targets < 8 {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("rendering {targets} targets"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

/// Where the build marker of the skip-by-digest shortcut lives.
fn build_marker(root: &Path, out_dir: &Path) -> std::path::PathBuf {
    match git2::Repository::discover(root) {
        Ok(repo) => repo.path().join("codex-k8s-build"),
        Err(_) => out_dir.join(crate::layout::BUILD_MARKER),
    }
}

/// The answer of `--check`: up to date (exit 0), or the drifted files (exit 3).
fn report_check(shown: &str, total: usize, changes: &[tree::Change], out: &mut Output) -> Result<u8> {
    if changes.is_empty() {
        writeln!(out.err, "{shown}: {total} target(s) up to date")?;
        return Ok(exit::OK);
    }
    writeln!(out.out, "drift in {shown} ({} file(s)); run `codex-k8s render` to update:", changes.len())?;
    for c in changes {
        writeln!(out.out, "  {:<8} {shown}/{}", format!("{:?}", c.kind).to_lowercase(), c.path)?;
    }
    Err(Exit(exit::DRIFT).into())
}
