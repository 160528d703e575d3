//! A render run end to end: lock, read what the tree holds (the work tree,
//! a branch, or the remote's tip of a branch), build the requests, skip the
//! targets already current, render, check namespaces, then write the tree
//! (streamed through the staging area), compare it (`--check`), or commit
//! and push. The CLI turns flags into a [`RenderRun`] and prints the
//! [`Report`]; the library never prints.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::commit::{self, Undo};
use super::lock::{lock_path, lock_tree, TreeLock};
use super::requests::{requests, Options, Selection};
use super::state::{check_meta, check_slot, out_prefix, DiskTree, GitTree, TreeState};
use super::{source, walls, NothingWritten};
use crate::diagnostic::Diagnostics;
use crate::git;
use crate::inventory::Inventory;
use crate::render::{render_targets, RenderedTarget, Request, Shard, Source, Target};
use crate::template::Engine;
use crate::tree;

/// What a run does with the rendered targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write the tree (streamed through the staging area).
    Write,
    /// Compare with the tree; write nothing.
    Check,
    /// Render one target for printing; write nothing.
    Stdout,
    /// Commit: on the checked-out branch (writing the tree too), or on
    /// `branch` from memory; then push to `push` when given.
    Commit(Publish),
}

/// Where a committing run puts its commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publish {
    /// Commit on this branch from memory (no work tree, no index).
    pub branch: Option<String>,
    /// Push to this remote, rebuilding on its new tip if another push won.
    pub push: Option<String>,
    /// The commit subject, used as is.
    pub message: Option<String>,
}

/// Start and end of the rendering step (the CLI shows a spinner).
pub trait Progress {
    /// Rendering `targets` targets begins.
    fn start(&self, targets: usize);
    /// Rendering ended.
    fn finish(&self);
}

/// One render run.
pub struct RenderRun<'a> {
    /// The loaded project.
    pub inventory: &'a Inventory,
    /// Its template engine.
    pub engine: &'a Engine,
    /// The tree (`--out`, checked by [`super::out_dir`]).
    pub out_dir: PathBuf,
    /// What to render.
    pub selection: Selection,
    /// Run id, overrides, `--adopt` (the source is filled in from `source_ref`).
    pub options: Options,
    /// The source ref the run renders from as given (`--source-ref`,
    /// `CODEX_K8S_SOURCE_REF`); none: the checked-out branch.
    pub source_ref: Option<String>,
    /// What to do with the result.
    pub action: Action,
    /// Render targets even when their recorded inputs and files are current.
    pub force: bool,
    /// With `--all`: only this shard.
    pub shard: Option<Shard>,
    /// The ref whose renders onto a deploy branch draw the walls
    /// (`--protected-ref`; [`super::walls::DEFAULT_PROTECTED_REF`]).
    pub protected_ref: String,
    /// Walls read at this revision instead of the deploy branch's record
    /// (`--walls-from`).
    pub walls_from: Option<String>,
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    /// The tree as people see it (relative to the project).
    pub shown: String,
    /// What happened.
    pub kind: ReportKind,
    /// Slots `--all` left alone because another source owns them.
    pub foreign: Vec<(Target, Source)>,
    /// Warnings about what was selected ([`crate::render::plan_warnings`]).
    pub warnings: Diagnostics,
}

/// What happened in a run.
#[derive(Debug)]
pub enum ReportKind {
    /// The one target for `--stdout`.
    Stdout(Box<RenderedTarget>),
    /// `--check`: the files that differ (none: up to date) of `total` targets.
    Checked {
        /// Targets compared.
        total: usize,
        /// Drifted files.
        changes: Vec<tree::Change>,
    },
    /// Written (and maybe committed).
    Written {
        /// The tree's changes; none when the commit went to a branch from memory.
        tree: Option<Written>,
        /// The commit, for committing runs.
        commit: Option<git::Outcome>,
    },
}

/// The tree's side of a written run.
#[derive(Debug)]
pub struct Written {
    /// Target directories rendered.
    pub dirs: Vec<String>,
    /// Targets skipped as already current.
    pub unchanged: usize,
    /// Files changed.
    pub changes: Vec<tree::Change>,
}

impl RenderRun<'_> {
    /// Runs it.
    pub fn run(&self, progress: &dyn Progress) -> Result<Report> {
        let inventory = self.inventory;
        let out_dir = &self.out_dir;
        let shown = out_dir.strip_prefix(&inventory.root).unwrap_or(out_dir).display().to_string();
        let publish = match &self.action {
            Action::Commit(p) => Some(p),
            _ => None,
        };
        // A writing run holds the lock from before it reads the tree (slots,
        // run ids, current targets) to the end: a second run that read the
        // tree while the first was swapping targets in would write a mix of
        // both. (Without a git repository the lock lives in the tree, which
        // a failing render must leave untouched: then it locks only before
        // writing.)
        let found = git2::Repository::discover(&inventory.root).ok();
        let writing = matches!(self.action, Action::Write | Action::Commit(_));
        let lock = if writing && found.is_some() { Some(lock_tree(&inventory.root, out_dir)?) } else { None };
        let prefix = out_prefix(inventory, out_dir);
        let repo = match publish {
            Some(_) => Some(found.context("--commit, --branch and --push need a git repository")?),
            None => found,
        };
        let branch_ref = publish.and_then(|p| p.branch.as_deref()).map(branch_ref);
        if let (Some(repo), Some(p)) = (&repo, publish) {
            // Every git precondition holds before anything is written.
            commit::preflight(repo, p.branch.as_deref().zip(branch_ref.as_deref()), p.push.as_deref())?;
        }
        let options = self.options_for(repo.as_ref(), branch_ref.is_some(), writing)?;
        // The tree the run starts from: a branch's (with --push, the
        // remote's tip of it, whatever the local branch holds), else the
        // work tree.
        let tip = match (&repo, publish, &branch_ref) {
            (Some(repo), Some(p), Some(r)) => Some(branch_tip(repo, r, p.push.as_deref())?),
            _ => None,
        };
        let git_state;
        let disk_state = DiskTree(out_dir);
        let state: &dyn TreeState = match (&repo, &tip) {
            (Some(repo), Some((oid, place))) => {
                git_state = GitTree::at(repo, *oid, &prefix, place);
                &git_state
            }
            _ => &disk_state,
        };
        let authority = self.authority(publish, options.source.as_ref(), state)?;
        let digest = tree::inputs_digest(inventory).context("cannot hash the inputs")?;
        let planned = requests(inventory, &self.selection, &options, state)?;
        let foreign = planned.foreign;
        let mut requests = planned.requests;
        if let Some(shard) = self.shard {
            requests = shard.select(requests, |r| &r.target);
        }
        let refused = walls::targets(inventory, &authority, &requests);
        if refused.has_errors() {
            return Err(NothingWritten(refused).into());
        }
        let warnings = crate::render::plan_warnings(inventory, self.engine, &requests);
        if self.action == Action::Stdout && requests.len() != 1 {
            bail!("--stdout prints one target; select one with --env (and one --slot)");
        }
        let marker = build_marker(&inventory.root, out_dir);
        let (current, requests) = self.split_current(requests, &marker, &digest);
        let ctx = Ctx {
            run: self,
            prefix: &prefix,
            digest: &digest,
            shown: &shown,
            state,
            source: options.source.as_ref(),
            authority: &authority,
        };
        let kind = match (&repo, publish) {
            (Some(repo), Some(p)) => ctx.commit(repo, p, branch_ref.as_deref(), &requests, &current, lock, progress)?,
            _ if self.action == Action::Stdout => {
                let mut rendered = ctx.render(&requests, progress)?;
                match rendered.pop() {
                    Some(one) => ReportKind::Stdout(Box::new(one)),
                    None => bail!("--stdout: nothing was rendered"),
                }
            }
            _ => ctx.stream(&requests, &current, lock, &marker, progress)?,
        };
        Ok(Report { shown, kind, foreign, warnings })
    }

    /// The run's options with its source: the ref given or checked out, and
    /// the commit only when the tree lives off the source's history.
    fn options_for(&self, repo: Option<&git2::Repository>, off_tree: bool, writing: bool) -> Result<Options> {
        let mut options = self.options.clone();
        options.source = source::current(repo, self.source_ref.as_deref())?;
        options.read_only = !writing;
        // A tree kept in the source's own history (the work tree, --commit)
        // has the source commit as its parent: recording it would change
        // every slot on every commit. Off-tree (--branch) it is the only
        // link back to the source, so it is recorded.
        if !off_tree {
            if let Some(s) = options.source.as_mut() {
                s.commit = None;
            }
        }
        if writing && repo.is_some() && options.source.is_none() {
            if let Selection::Env { slots, .. } = &self.selection {
                if !slots.is_empty() {
                    bail!(source::UNKNOWN);
                }
            }
        }
        Ok(options)
    }

    /// Whose walls bound the run ([`walls::authority`]); a head that changed
    /// any of them is refused here, before anything is read or written.
    fn authority(
        &self,
        publish: Option<&Publish>,
        source: Option<&Source>,
        state: &dyn TreeState,
    ) -> Result<walls::Authority> {
        let inventory = self.inventory;
        let explicit = match &self.walls_from {
            Some(rev) => Some(walls::at_revision(&inventory.root.join(&inventory.file), rev)?),
            None => None,
        };
        let branch = publish.and_then(|p| p.branch.as_deref());
        let authority = walls::authority(branch, source, &self.protected_ref, explicit, state)?;
        let changed = walls::changes(inventory, &authority);
        if changed.has_errors() {
            return Err(NothingWritten(changed).into());
        }
        Ok(authority)
    }

    /// Targets whose recorded inputs match and whose files are untouched
    /// need no rendering: a no-change run only reads and hashes. A commit
    /// must carry every selected target, current or not (the tree on disk
    /// may be ahead of git), so committing runs render everything. The
    /// shortcut is trusted only for a tree this very build wrote last (a
    /// marker in .git, never committed), so a fresh clone or a new
    /// codex-k8s renders everything once.
    fn split_current(&self, requests: Vec<Request>, marker: &Path, digest: &str) -> (Vec<Request>, Vec<Request>) {
        let trusted = std::fs::read_to_string(marker).is_ok_and(|m| m.trim() == tree::BUILD_ID);
        let committing = matches!(self.action, Action::Commit(_));
        if self.action == Action::Stdout || committing || self.force || !trusted {
            return (Vec::new(), requests);
        }
        use rayon::prelude::*;
        let verdicts: Vec<bool> = requests.par_iter().map(|r| tree::is_current(&self.out_dir, r, digest)).collect();
        let (a, b): (Vec<_>, Vec<_>) = requests.into_iter().zip(verdicts).partition(|(_, current)| *current);
        (a.into_iter().map(|(r, _)| r).collect(), b.into_iter().map(|(r, _)| r).collect())
    }
}

/// `--branch B` as a full ref.
pub(super) fn branch_ref(b: &str) -> String {
    if b.starts_with("refs/") {
        b.to_owned()
    } else {
        format!("refs/heads/{b}")
    }
}

/// The commit a `--branch` run starts from, and how messages name it. With
/// `--push R`, R's tip of the branch, fetched now; the local branch is moved
/// to it (it is only a cache of R's: a fresh clone and a runner with a stale
/// local branch start from the same commit). Without, the local branch.
pub(super) fn branch_tip(repo: &git2::Repository, r: &str, push: Option<&str>) -> Result<(Option<git2::Oid>, String)> {
    let short = r.trim_start_matches("refs/heads/");
    let Some(remote) = push else {
        return Ok((repo.refname_to_id(r).ok(), format!("branch {short}")));
    };
    let tip = git::fetch(repo, remote, short)?;
    let local = repo.refname_to_id(r).ok();
    match tip {
        Some(t) if local != Some(t) => {
            repo.reference(r, t, true, "codex-k8s: start from the remote tip")?;
        }
        None if local.is_some() => {
            repo.find_reference(r)?.delete()?;
        }
        _ => {}
    }
    Ok((tip, format!("{remote}/{short}")))
}

/// Where the build marker of the skip-by-digest shortcut lives.
fn build_marker(root: &Path, out_dir: &Path) -> PathBuf {
    match git2::Repository::discover(root) {
        Ok(repo) => repo.path().join("codex-k8s-build"),
        Err(_) => out_dir.join(crate::layout::BUILD_MARKER),
    }
}

/// The parts of a run its steps share.
struct Ctx<'a> {
    run: &'a RenderRun<'a>,
    prefix: &'a str,
    digest: &'a str,
    shown: &'a str,
    state: &'a dyn TreeState,
    source: Option<&'a Source>,
    authority: &'a walls::Authority,
}

impl Ctx<'_> {
    /// Renders `requests` in memory (for printing and committing).
    fn render(&self, requests: &[Request], progress: &dyn Progress) -> Result<Vec<RenderedTarget>> {
        progress.start(requests.len());
        let rendered = render_targets(self.run.inventory, self.run.engine, requests);
        progress.finish();
        rendered.map_err(|ds| NothingWritten(ds).into())
    }

    /// The namespace clashes of a run's targets with each other, with the
    /// plain environments and with the slots already in the tree (which
    /// keep their namespaces: a new slot may not take one).
    ///
    /// A target this run did not render (another slot, a plain environment,
    /// a target skipped as current) has the namespace its recorded
    /// overrides (`target.json` `sets`) give it, as its own render would.
    fn namespace_clashes(&self, mut namespaces: Vec<(Target, String)>) -> Diagnostics {
        let (inventory, engine) = (self.run.inventory, self.run.engine);
        let known: BTreeSet<Target> = namespaces.iter().map(|(t, _)| t.clone()).collect();
        for env in inventory.environments.values() {
            let targets: Vec<Target> = if env.slots {
                let slots = self.state.list_slots(&env.name).into_iter().filter(|s| check_slot(s).is_ok());
                slots.map(|slot| Target { env: env.name.clone(), slot: Some(slot) }).collect()
            } else {
                vec![Target { env: env.name.clone(), slot: None }]
            };
            for target in targets.into_iter().filter(|t| !known.contains(t)) {
                let request = self.recorded_request(&target);
                if let Ok(ns) = crate::render::isolation::namespace_for(inventory, engine, &request) {
                    namespaces.push((target, ns));
                }
            }
        }
        crate::render::isolation::clashes(inventory, engine, &namespaces)
    }

    /// `target` with the overrides its `target.json` records, checked as a
    /// render of it would check them; none when it records none or fails
    /// the checks (its render would be refused).
    fn recorded_request(&self, target: &Target) -> Request {
        let inventory = self.run.inventory;
        let dir = target.dir();
        let sets = match self.state.read_meta(&dir) {
            Ok(Some(meta)) if check_meta(inventory, &self.state.meta_file(&dir), target, &meta).is_ok() => {
                crate::inventory::values::from_recorded(&meta.sets, "`sets`")
                    .ok()
                    .and_then(|recorded| super::requests::target_overrides(inventory, &target.env, &recorded, &[]).ok())
                    .unwrap_or_default()
            }
            _ => Default::default(),
        };
        Request { target: target.clone(), run_id: None, sets, source: None }
    }

    /// A committing run: render in memory, write the tree when committing on
    /// the checked-out branch, commit, push; on failure put the tree, the
    /// branch and the index back.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        repo: &git2::Repository,
        publish: &Publish,
        branch_ref: Option<&str>,
        requests: &[Request],
        current: &[Request],
        lock: Option<TreeLock>,
        progress: &dyn Progress,
    ) -> Result<ReportKind> {
        let (inventory, out_dir) = (self.run.inventory, &self.run.out_dir);
        let rendered = self.render(requests, progress)?;
        let namespaces: Vec<_> = rendered.iter().map(|t| (t.target.clone(), t.namespace.clone())).collect();
        let clashes = self.namespace_clashes(namespaces);
        if clashes.has_errors() {
            return Err(NothingWritten(clashes).into());
        }
        let mut desired = tree::desired(inventory, &rendered, self.digest, self.prefix);
        walls::glue(inventory, self.authority, self.prefix, &mut desired.files);
        let lock = match lock {
            Some(l) => l,
            None => lock_tree(&inventory.root, out_dir)?,
        };
        let shown = self.shown;
        // What the run may have to put back: the tree's touched parts, the
        // checked-out branch and the index, as they are before writing.
        let undo = match branch_ref {
            None => Some(Undo::take(repo, out_dir, &desired).with_context(|| format!("cannot read {shown}"))?),
            Some(_) => None,
        };
        let mut written = None;
        if branch_ref.is_none() {
            tree::check(out_dir, &desired).with_context(|| format!("cannot write {shown}"))?;
            let changes = tree::apply(out_dir, &desired).with_context(|| format!("cannot write {shown}"))?;
            let _ = std::fs::write(build_marker(&inventory.root, out_dir), tree::BUILD_ID);
            let dirs = rendered.iter().map(|t| t.target.dir()).collect();
            written = Some(Written { dirs, unchanged: current.len(), changes });
        }
        let from = git::rendered_from(Some(repo), &commit::source_paths(repo, inventory));
        let req = commit::commit_request(
            &rendered,
            &desired,
            self.prefix,
            self.digest,
            from,
            self.source,
            publish.message.clone(),
        );
        let limits = commit::slot_limits(inventory, &rendered);
        let prefix = self.prefix;
        let authority = self.authority;
        let capacity = |repo: &git2::Repository, tip: git2::Oid| {
            commit::check_capacity(repo, tip, prefix, &limits)?;
            walls::still_hold(repo, tip, prefix, authority)
        };
        let outcome = commit::commit_or_push(repo, &req, branch_ref, publish.push.as_deref(), prefix, &capacity);
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                let Some(undo) = undo else { return Err(e) };
                return Err(match undo.restore(repo, out_dir) {
                    Ok(()) => e.context(format!("rolled back: {shown}, the branch and the index are as before")),
                    Err(r) => e.context(format!("rollback failed too: {r:#}")),
                });
            }
        };
        drop(lock);
        Ok(ReportKind::Written { tree: written, commit: Some(outcome) })
    }

    /// A plain render or `--check`: each target streams through the staging
    /// area as soon as it is rendered (see `tree::render_into`), so memory
    /// stays flat in the number of targets; nothing is swapped in before all
    /// succeeded.
    fn stream(
        &self,
        requests: &[Request],
        current: &[Request],
        lock: Option<TreeLock>,
        marker: &Path,
        progress: &dyn Progress,
    ) -> Result<ReportKind> {
        let (inventory, out_dir) = (self.run.inventory, self.run.out_dir.as_path());
        let check = self.run.action == Action::Check;
        let shown = self.shown;
        let mut plan = tree::plan(requests, current);
        walls::glue(inventory, self.authority, self.prefix, &mut plan.files);
        // What a failed run must take away again: the lock file when it
        // lives in the tree (no git repository), and `--out` if it made it.
        let undo = StreamUndo {
            out_dir,
            lock_file: lock_path(&inventory.root, out_dir),
            lock_file_existed: lock_path(&inventory.root, out_dir).symlink_metadata().is_ok(),
            out_existed: out_dir.symlink_metadata().is_ok(),
        };
        let mut lock = lock;
        let mut staging = None;
        if check {
            tree::check(out_dir, &plan)?;
        } else {
            if lock.is_none() {
                lock = Some(lock_tree(&inventory.root, out_dir)?);
            }
            match tree::Staging::begin(out_dir, &plan) {
                Ok(s) => staging = Some(s),
                Err(e) => {
                    undo.run(None);
                    return Err(anyhow::Error::new(e).context(format!("cannot write {shown}")));
                }
            }
        }
        progress.start(requests.len());
        let sink = match &staging {
            Some(s) => tree::Sink::Stage(s),
            None => tree::Sink::Compare(out_dir),
        };
        let result = tree::render_into(inventory, self.run.engine, requests, self.digest, self.prefix, sink);
        progress.finish();
        let streamed = match result {
            Ok(s) => s,
            Err(tree::Failure::Render(ds)) => {
                undo.run(staging);
                return Err(NothingWritten(ds).into());
            }
            Err(tree::Failure::Io(e)) => {
                undo.run(staging);
                return Err(anyhow::Error::new(e).context(format!("cannot write {shown}")));
            }
        };
        let clashes =
            self.namespace_clashes(streamed.iter().map(|t| (t.target.clone(), t.namespace.clone())).collect());
        if clashes.has_errors() {
            undo.run(staging);
            return Err(NothingWritten(clashes).into());
        }
        let mut files = tree::glue_files(inventory, &streamed, current, self.prefix);
        walls::glue(inventory, self.authority, self.prefix, &mut files);
        let mut changes: Vec<tree::Change> = streamed.iter().flat_map(|t| t.changes.iter().cloned()).collect();
        let total = streamed.len() + current.len();
        let Some(staging) = staging else {
            changes.extend(tree::file_changes(out_dir, &files)?);
            changes.sort();
            return Ok(ReportKind::Checked { total, changes });
        };
        let staged: Vec<String> = streamed.iter().filter(|t| !t.changes.is_empty()).map(|t| t.target.dir()).collect();
        let glue = staging.finish(&staged, &files).with_context(|| format!("cannot write {shown}"))?;
        changes.extend(glue);
        changes.sort();
        let _ = std::fs::write(marker, tree::BUILD_ID);
        let dirs: Vec<String> = streamed.iter().map(|t| t.target.dir()).collect();
        drop(lock);
        Ok(ReportKind::Written { tree: Some(Written { dirs, unchanged: current.len(), changes }), commit: None })
    }
}

/// What a failed streamed run takes away again.
struct StreamUndo<'a> {
    out_dir: &'a Path,
    lock_file: PathBuf,
    lock_file_existed: bool,
    out_existed: bool,
}

impl StreamUndo<'_> {
    /// Leaves the tree as a failed run found it: drops what was staged, the
    /// lock file if this run created it in the tree, and `--out` if this run
    /// created it (only when empty by then).
    fn run(&self, staging: Option<tree::Staging>) {
        if let Some(s) = staging {
            let _ = s.abort();
        }
        if !self.lock_file_existed && self.lock_file.starts_with(self.out_dir) {
            let _ = std::fs::remove_file(&self.lock_file);
        }
        if !self.out_existed {
            let _ = std::fs::remove_dir(self.out_dir);
        }
    }
}
