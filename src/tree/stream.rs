//! Rendering straight into the tree, one target at a time: each target is
//! rendered, laid out, compared with the disk and — when it differs — staged
//! as soon as it is done, then dropped. Memory holds the targets in flight
//! (one per thread), never the whole run; nothing reaches its place until
//! every target has succeeded ([`Staging::finish`]), so a failure still
//! writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::glue::{argocd_file, flux_file, flux_path};
use super::layout::{target_files, target_inputs_digest};
use super::write::{self, Change, Desired, Staging};
use crate::diagnostic::Diagnostics;
use crate::inventory::Inventory;
use crate::render::{render_target, Request, Target};
use crate::template::Engine;

/// What became of one target.
#[derive(Debug, Clone)]
pub struct Streamed {
    /// The target.
    pub target: Target,
    /// Its namespace.
    pub namespace: String,
    /// Its files that differ from the tree (sorted); empty when current.
    pub changes: Vec<Change>,
    /// Its Flux file (`flux/<env>[/<slot>].yaml`), to write with the glue.
    pub flux: String,
}

/// Why a streamed run stopped.
#[derive(Debug)]
pub enum Failure {
    /// Targets failed to render (every target's errors, in request order).
    Render(Diagnostics),
    /// The tree could not be read or written.
    Io(io::Error),
}

/// Where each finished target goes.
#[derive(Clone, Copy)]
pub enum Sink<'a> {
    /// Only compared with the tree under this directory (`--check`).
    Compare(&'a Path),
    /// Compared, and staged when it differs.
    Stage(&'a Staging),
}

/// Everything a run over `requests` (and the `current` targets it skips)
/// may touch, with empty contents: the target directories, their Flux files
/// and the Argo CD file of every environment. [`write::check`] takes it
/// before anything is rendered.
pub fn plan(requests: &[Request], current: &[Request]) -> Desired {
    let mut d = Desired::default();
    for r in requests {
        d.targets.insert(r.target.dir(), BTreeMap::new());
        d.files.insert(flux_path(&r.target.env, r.target.slot.as_deref()), None);
    }
    for r in requests.iter().chain(current) {
        d.files.insert(crate::layout::argocd_path(&r.target.env), None);
    }
    d
}

/// Renders every request in parallel into `sink`. Errors of all targets are
/// collected in request order, so the report is the same at any thread
/// count; after the first failure no more targets are staged.
pub fn render_into(
    inventory: &Inventory,
    engine: &Engine,
    requests: &[Request],
    project_digest: &str,
    out_prefix: &str,
    sink: Sink<'_>,
) -> Result<Vec<Streamed>, Failure> {
    let failed = AtomicBool::new(false);
    let results: Vec<Result<Streamed, Failure>> = requests
        .par_iter()
        .map(|request| {
            let rendered = render_target(inventory, engine, request).map_err(|ds| {
                failed.store(true, Ordering::Relaxed);
                Failure::Render(ds)
            })?;
            let digest = target_inputs_digest(project_digest, request);
            let flux = flux_file(inventory, &rendered, out_prefix);
            let dir = rendered.target.dir();
            let files = target_files(inventory, &rendered, &digest, &flux);
            let changes = match sink {
                Sink::Compare(out) => write::compare_target(out, &dir, &files),
                Sink::Stage(staging) if !failed.load(Ordering::Relaxed) => staging.stage(&dir, &files),
                Sink::Stage(_) => Ok(Vec::new()),
            }
            .map_err(|e| {
                failed.store(true, Ordering::Relaxed);
                Failure::Io(e)
            })?;
            drop(files);
            Ok(Streamed { target: rendered.target, namespace: rendered.namespace, changes, flux })
        })
        .collect();
    let mut ok = Vec::with_capacity(results.len());
    let mut failed = Vec::new();
    let mut io_error = None;
    for (r, request) in results.into_iter().zip(requests) {
        match r {
            Ok(t) => ok.push(t),
            Err(Failure::Render(ds)) => failed.push((request.target.to_string(), ds.0)),
            Err(Failure::Io(e)) => {
                io_error.get_or_insert(e);
            }
        }
    }
    // One fault in many targets is one diagnostic, as in `render_targets`.
    let errors = Diagnostics(crate::render::merge_across_targets(failed));
    if errors.has_errors() {
        return Err(Failure::Render(errors));
    }
    if let Some(e) = io_error {
        return Err(Failure::Io(e));
    }
    Ok(ok)
}

/// The glue files of a streamed run: each target's Flux file and the Argo CD
/// file of each environment among `streamed` and `current`.
pub fn glue_files(
    inventory: &Inventory,
    streamed: &[Streamed],
    current: &[Request],
    out_prefix: &str,
) -> BTreeMap<String, Option<String>> {
    let mut files = BTreeMap::new();
    for t in streamed {
        files.insert(flux_path(&t.target.env, t.target.slot.as_deref()), Some(t.flux.clone()));
    }
    let envs: BTreeSet<&str> =
        streamed.iter().map(|t| t.target.env.as_str()).chain(current.iter().map(|r| r.target.env.as_str())).collect();
    for env in envs {
        files.insert(crate::layout::argocd_path(env), Some(argocd_file(inventory, env, out_prefix)));
    }
    files
}
