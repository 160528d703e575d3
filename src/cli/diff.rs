//! `codex-k8s diff`: what a change does to the rendered objects, per target
//! and stage, as text, PR-comment markdown or JSON.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{exit, Exit, Output};
use crate::diff::{self, format, Snapshot};
use crate::{git, tree};

/// Arguments of `diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The old side: a git revision.
    #[arg(long, default_value = "HEAD", value_name = "REV")]
    base: String,
    /// The new side: a git revision, or `worktree` for the files on disk.
    #[arg(long, default_value = "worktree", value_name = "REV")]
    head: String,
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

/// Diff formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For terminals.
    Text,
    /// For pull-request comments.
    Markdown,
    /// For tools.
    Json,
}

/// The project directory: where services.yaml is (the diff does not need to load it).
fn project_root(file: &Path) -> PathBuf {
    file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
}

/// Prints the diff.
pub fn run(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
    let root = project_root(file).canonicalize().context("cannot open the project directory")?;
    let repo = git2::Repository::discover(&root).context("diff needs a git repository")?;
    let workdir = repo.workdir().context("the repository is bare")?.canonicalize()?;
    let out_dir = root.join(&args.out);
    let prefix = out_dir
        .strip_prefix(&workdir)
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .with_context(|| format!("{} is not inside the repository", out_dir.display()))?;
    // Only the targets (and glue files) git sees as changed are read and
    // parsed: the cost follows the change, not the size of the tree.
    let head_rev = (args.head != "worktree").then_some(args.head.as_str());
    let changed = git::changed_paths(&repo, &args.base, head_rev, &prefix)
        .with_context(|| format!("cannot compare {prefix} between {} and {}", args.base, args.head))?;
    let mut units: Vec<String> = changed.iter().map(|p| diff::unit_of(p)).collect();
    units.dedup();
    let read = |rev: &str| -> Result<Snapshot> {
        let files = if rev == "worktree" {
            let mut files = std::collections::BTreeMap::new();
            for unit in &units {
                let path = out_dir.join(unit);
                if path.is_dir() {
                    for (rel, content) in tree::read_dir_files(&path)? {
                        files.insert(format!("{unit}/{rel}"), content);
                    }
                } else if path.is_file() {
                    files.insert(unit.clone(), std::fs::read(&path)?);
                }
            }
            files
        } else {
            git::read_tree_parts(&repo, rev, &prefix, &units)
                .with_context(|| format!("cannot read {prefix} at {rev}"))?
        };
        Ok(Snapshot::from_files(files.iter().map(|(p, c)| (p.as_str(), c.as_slice()))))
    };
    let report = diff::diff(&read(&args.base)?, &read(&args.head)?);
    let text = match args.format {
        Format::Text => format::text(&report),
        Format::Markdown => format::markdown(&report),
        Format::Json => format::json(&report),
    };
    out.out.write_all(text.as_bytes())?;
    out.out.flush()?;
    if args.exit_code && !report.changes.is_empty() {
        return Err(Exit(exit::DRIFT).into());
    }
    Ok(exit::OK)
}
