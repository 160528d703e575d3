//! Rendering: per target, evaluate `when`, order components, render their
//! templates in parallel, apply overlays, namespaces, labels and waves, and
//! check policy. Pure: inputs in, [`RenderedTarget`] out.

pub mod emit;
pub mod isolation;
pub mod kinds;
mod object;
mod overlay;
pub mod plan;
pub mod policy;
mod shard;
mod target;

pub use object::{ObjectId, RenderedObject};
pub use overlay::{add_env, add_pvc_mount, Mount};
pub use plan::{Enablement, PlannedComponent, Target};
pub use shard::Shard;
pub use target::{
    check_set, check_set_value, excerpt, labels, plan_target, render_target, target_context, RenderedTarget, Request,
};

use rayon::prelude::*;

use crate::diagnostic::Diagnostics;
use crate::inventory::Inventory;
use crate::template::Engine;

/// Renders every request in parallel. Errors of all targets are collected in
/// request order, so the report is the same at any thread count.
pub fn render_targets(
    inventory: &Inventory,
    engine: &Engine,
    requests: &[Request],
) -> Result<Vec<RenderedTarget>, Diagnostics> {
    let results: Vec<Result<RenderedTarget, Diagnostics>> =
        requests.par_iter().map(|r| render_target(inventory, engine, r)).collect();
    let mut ok = Vec::with_capacity(results.len());
    let mut errors = Diagnostics::default();
    for r in results {
        match r {
            Ok(t) => ok.push(t),
            Err(ds) => errors.0.extend(ds.0),
        }
    }
    if errors.has_errors() {
        return Err(errors);
    }
    let namespaces: Vec<_> = ok.iter().map(|t| (t.target.clone(), t.namespace.clone())).collect();
    let clashes = isolation::clashes(inventory, engine, &namespaces);
    if clashes.has_errors() {
        return Err(clashes);
    }
    Ok(ok)
}
