//! `codex-k8s diff`: what a change does to the rendered objects, per target
//! and stage, as text, PR-comment markdown or JSON — between two rendered
//! trees (`--base/--head`), or rendered from two source revisions in memory
//! (`--source-base/--source-head`, no rendered files needed).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{exit, Exit, Output};
use crate::diagnostic::Diagnostics;
use crate::diff;
use crate::diff::format::{self, Extra, Format};
use crate::diff::source::{self, Review, Side, PROBE_SLOT};
use crate::inventory::names::SlotName;
use crate::inventory::{self, Inventory};
use crate::template::Engine;
use crate::{git, publish};

/// Arguments of `diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The old side: a git revision.
    #[arg(long, default_value = "HEAD", value_name = "REV")]
    base: String,
    /// The new side: a git revision, or `worktree` for the files on disk.
    #[arg(long, default_value = "worktree", value_name = "REV")]
    head: String,
    /// Render the sources at REV and at the head (`--source-head`) in memory and diff those.
    #[arg(long, value_name = "REV", conflicts_with_all = ["base", "head"])]
    source_base: Option<String>,
    /// The new source side: a git revision, or `worktree` (the default) for the files on disk.
    #[arg(long, value_name = "REV", requires = "source_base")]
    source_head: Option<String>,
    /// Only this environment (with `--source-base`).
    #[arg(long, value_name = "ENV", requires = "source_base", add = clap_complete::ArgValueCandidates::new(super::complete::environments))]
    env: Option<String>,
    /// The slot to diff a slot environment with (default: a probe slot, `probe`).
    #[arg(long, value_name = "SLOT", requires = "env", add = clap_complete::ArgValueCandidates::new(super::complete::slots))]
    slot: Option<SlotName>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Exit 3 when there are changes.
    #[arg(long)]
    exit_code: bool,
    /// The rendered tree, relative to the project.
    #[arg(long, default_value = "rendered", value_name = "DIR")]
    out: PathBuf,
}

/// The project directory: where services.yaml is (the diff does not need to load it).
fn project_root(file: &Path) -> PathBuf {
    file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
}

/// The repository of the project, the project directory, and its path in the repository.
fn open_repo(file: &Path) -> Result<(git::Checkout, PathBuf, String)> {
    let root = project_root(file).canonicalize().context("cannot open the project directory")?;
    let checkout = git::Checkout::discover(&root).context("diff needs a git repository")?;
    let project = checkout.rel(&root)?;
    Ok((checkout, root, project))
}

/// Prints the diff.
pub fn run(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
    if args.source_base.is_some() {
        return run_source(file, args, out);
    }
    let (checkout, root, _) = open_repo(file)?;
    let head = match rev_arg(Some(&args.head)) {
        Some(rev) => diff::Rev::Commit(rev),
        None => diff::Rev::WorkTree,
    };
    let report = diff::between(&checkout, &root.join(&args.out), &args.base, head)?;
    let full_command =
        format!("codex-k8s diff --base {} --head {} --format text", quote(&args.base), quote(&args.head));
    let extra = Extra { full_command, ..Extra::default() };
    finish(&report, &args, &extra, out)
}

fn finish(report: &diff::Report, args: &Args, extra: &Extra, out: &mut Output) -> Result<u8> {
    out.out.write_all(format::print(report, args.format, extra).as_bytes())?;
    out.out.flush()?;
    if args.exit_code && !report.changes.is_empty() {
        return Err(Exit(exit::DRIFT).into());
    }
    Ok(exit::OK)
}

/// A word for a shell command line, quoted when it needs to be.
fn quote(word: &str) -> String {
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./~^@:=+".contains(&b)) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// One side of a source diff, loaded.
struct Loaded {
    /// `REV` or `work tree`.
    label: String,
    /// `REV:dir/` (empty for the work tree).
    prefix: String,
    /// The commit (none for the work tree).
    commit: Option<String>,
    /// The project, or none when the side has no inventory.
    project: Option<(Inventory, Engine)>,
    /// The files written out of git, kept until the diff is done.
    _files: Option<git::SourceSnapshot>,
}

/// Loads the project at `rev` (`None`: the work tree), printing errors
/// (named `REV:path`) and, for the head, warnings.
fn load_side(
    checkout: &git::Checkout,
    file: &Path,
    project: &str,
    rev: Option<&str>,
    skip: &str,
    warn: bool,
    out: &mut Output,
) -> Result<Loaded> {
    let file_name = PathBuf::from(file.file_name().unwrap_or(file.as_os_str()));
    let Some(rev) = rev else {
        let project = load(file, "", None, warn, out)?;
        return Ok(Loaded { label: "work tree".into(), prefix: String::new(), commit: None, project, _files: None });
    };
    let snap = checkout.export_project(rev, project, &[skip.to_owned()])?;
    let prefix = format!("{rev}:{}", crate::layout::join(project, ""));
    let main = snap.root.join(&file_name);
    let project = match main.symlink_metadata() {
        Err(_) => None,
        Ok(m) if m.file_type().is_symlink() => bail!(
            "{prefix}{} is a symlink; the inventory must be a regular file in the repository",
            file_name.display()
        ),
        Ok(_) => load(&main, &prefix, Some(&snap.root), warn, out)?,
    };
    let commit = Some(snap.commit.to_string());
    Ok(Loaded { label: rev.to_owned(), prefix, commit, project, _files: Some(snap) })
}

/// Loads and compiles one side's inventory.
fn load(
    file: &Path,
    prefix: &str,
    tmp: Option<&Path>,
    warn: bool,
    out: &mut Output,
) -> Result<Option<(Inventory, Engine)>> {
    let fail = |ds: Diagnostics, out: &mut Output| -> Result<Option<(Inventory, Engine)>> {
        out.diagnostics(&source::relabel(ds, prefix, tmp))?;
        Err(super::Reported.into())
    };
    let loaded = match inventory::load(file) {
        Ok(l) => l,
        Err(ds) => return fail(ds, out),
    };
    if warn {
        out.diagnostics(&source::relabel(Diagnostics(loaded.warnings.clone()), prefix, tmp))?;
    }
    match Engine::new(&loaded.inventory) {
        Ok(engine) => Ok(Some((loaded.inventory, engine))),
        Err(ds) => fail(ds, out),
    }
}

/// The revision argument: `None` for the work tree.
fn rev_arg(rev: Option<&str>) -> Option<&str> {
    rev.filter(|r| *r != "worktree")
}

/// `diff --source-base`: renders both source revisions and diffs them.
fn run_source(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
    let (checkout, root, project) = open_repo(file)?;
    if args.out.is_absolute() || args.out.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        bail!("--out {} must be a relative path inside the project directory", args.out.display());
    }
    let out_dir = root.join(&args.out);
    let out_prefix = checkout.rel(&out_dir)?;
    let out_rel = args.out.to_string_lossy().replace('\\', "/");
    let base_rev = args.source_base.as_deref().unwrap_or_default();
    let base = load_side(&checkout, file, &project, Some(base_rev), &out_rel, false, out)?;
    let head_rev = rev_arg(args.source_head.as_deref());
    let head = load_side(&checkout, file, &project, head_rev, &out_rel, true, out)?;
    fn review_side(l: &Loaded) -> publish::ReviewSide<'_> {
        publish::ReviewSide { label: &l.label, inventory: l.project.as_ref().map(|(i, _)| i) }
    }
    let plans = publish::review_plans(
        review_side(&base),
        review_side(&head),
        args.env.as_deref(),
        args.slot.as_ref(),
        &out_dir,
    )?;
    fn side(l: &Loaded) -> Side<'_> {
        Side { label: l.label.clone(), path_prefix: l.prefix.clone(), project: l.project.as_ref().map(|(i, e)| (i, e)) }
    }
    let review = match source::review(&side(&base), &side(&head), &plans, &out_prefix) {
        Ok(r) => r,
        Err(ds) => {
            out.diagnostics(&ds)?;
            return Err(super::Reported.into());
        }
    };
    let extra = source_extra(file, &args, &base, &head, &review);
    finish(&review.report, &args, &extra, out)
}

/// The notes and JSON fields of a source diff, and the command that shows it all.
fn source_extra(file: &Path, args: &Args, base: &Loaded, head: &Loaded, review: &Review) -> Extra {
    let mut extra = Extra::default();
    let name = |l: &Loaded| match &l.commit {
        Some(c) => format!("`{}` ({})", l.label, &c[..c.len().min(12)]),
        None => "the work tree".to_owned(),
    };
    extra.notes.push(format!("source diff: {} → {}", name(base), name(head)));
    let file_name = file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    for (l, shown) in [(base, "added"), (head, "removed")] {
        if l.project.is_none() {
            extra.notes.push(format!(
                "{} has no {file_name} ({}{file_name}): every object is shown as {shown}",
                name(l),
                l.prefix
            ));
        }
    }
    let out_rel = args.out.display();
    for g in &review.slots {
        extra.notes.push(slot_note(g, &out_rel.to_string()));
    }
    let side = |l: &Loaded| serde_json::json!({"rev": l.commit.as_ref().map(|_| l.label.clone()), "commit": l.commit, "inventory": l.project.is_some()});
    extra.json.insert("base".into(), side(base));
    extra.json.insert("head".into(), side(head));
    extra.json.insert("slots".into(), serde_json::to_value(&review.slots).expect("slot groups serialize"));
    let mut cmd = String::from("codex-k8s");
    if file != Path::new("services.yaml") {
        cmd.push_str(&format!(" -f {}", quote(&file.to_string_lossy())));
    }
    cmd.push_str(&format!(" diff --source-base {}", quote(&base.label)));
    if let Some(h) = rev_arg(args.source_head.as_deref()) {
        cmd.push_str(&format!(" --source-head {}", quote(h)));
    }
    for (flag, v) in [("--env", &args.env), ("--slot", &args.slot.as_ref().map(SlotName::to_string))] {
        if let Some(v) = v {
            cmd.push_str(&format!(" {flag} {}", quote(v)));
        }
    }
    if args.out != Path::new("rendered") {
        cmd.push_str(&format!(" --out {}", quote(&out_rel.to_string())));
    }
    extra.full_command = cmd + " --format text";
    extra
}

/// One line on a slot environment: which slot was diffed, and how its other slots change.
fn slot_note(g: &source::SlotGroup, out: &str) -> String {
    let list = |names: &[String]| {
        let mut s = names.iter().take(20).cloned().collect::<Vec<_>>().join(", ");
        if names.len() > 20 {
            s.push_str(&format!(", … {} more", names.len() - 20));
        }
        s
    };
    let which = if g.probe {
        format!("slot environment `{}`: diffed with the probe slot `{PROBE_SLOT}` (pass --env {} --slot S for a pull request's own)", g.env, g.env)
    } else {
        format!("slot environment `{}`: diffed with slot `{}`", g.env, g.slot)
    };
    if g.existing == 0 {
        return format!("{which}; {out}/{} holds no other slot", g.env);
    }
    let mut parts = vec![format!("{} the same way", g.same.len())];
    if !g.different.is_empty() {
        parts.push(format!("{} differently ({})", g.different.len(), list(&g.different)));
    }
    if !g.failed.is_empty() {
        let failed: Vec<String> = g.failed.iter().map(|f| format!("{}: {}", f.slot, f.error)).collect();
        parts.push(format!("{} cannot be compared ({})", g.failed.len(), list(&failed)));
    }
    format!("{which}; of the other {} slot(s) in {out}/{}, {}", g.existing, g.env, parts.join(", "))
}
