//! A rendered tree diffed between two git revisions (or a revision and the
//! work tree). Only the targets and glue files git sees as changed are read
//! and parsed, so the cost follows the change, not the size of the tree.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use super::{diff, unit_of, Report, Snapshot};
use crate::git::Checkout;

/// One side of a tree diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rev<'a> {
    /// A git revision.
    Commit(&'a str),
    /// The files on disk.
    WorkTree,
}

/// The object diff of the tree at `out_dir` (inside `checkout`'s work tree)
/// from `base` to `head`.
pub fn between(checkout: &Checkout, out_dir: &Path, base: &str, head: Rev<'_>) -> Result<Report> {
    let prefix = checkout.rel(out_dir)?;
    let head_rev = match head {
        Rev::Commit(r) => Some(r),
        Rev::WorkTree => None,
    };
    let shown = head_rev.unwrap_or("the work tree");
    let changed = checkout
        .changed_paths(base, head_rev, &prefix)
        .with_context(|| format!("cannot compare {prefix} between {base} and {shown}"))?;
    let mut units: Vec<String> = changed.iter().map(|p| unit_of(p)).collect();
    units.dedup();
    let read = |rev: Rev<'_>| -> Result<Snapshot> {
        let files = match rev {
            Rev::WorkTree => read_work_tree(out_dir, &units)?,
            Rev::Commit(rev) => checkout
                .read_tree_parts(rev, &prefix, &units)
                .with_context(|| format!("cannot read {prefix} at {rev}"))?,
        };
        Ok(Snapshot::from_files(files.iter().map(|(p, c)| (p.as_str(), c.as_slice()))))
    };
    Ok(diff(&read(Rev::Commit(base))?, &read(head)?))
}

/// The files of `units` (target directories or glue files) under `out_dir`.
fn read_work_tree(out_dir: &Path, units: &[String]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for unit in units {
        let path = out_dir.join(unit);
        if path.is_dir() {
            let read = crate::tree::read_dir_files(&path).with_context(|| format!("cannot read {}", path.display()))?;
            for (rel, content) in read {
                files.insert(format!("{unit}/{rel}"), content);
            }
        } else if path.is_file() {
            let content = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            files.insert(unit.clone(), content);
        }
    }
    Ok(files)
}
