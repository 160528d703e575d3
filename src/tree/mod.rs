//! The rendered tree: object files, kustomizations, target metadata, the
//! Argo CD / Flux glue, and safe writing (write aside, swap, prune).

mod glue;
mod layout;
mod stream;
mod write;

pub use glue::{argocd_file, flux_file, flux_path};
pub use layout::{
    inputs_digest, outputs_digest, reserved_env_problem, target_files, target_inputs_digest, TargetMeta, BUILD_ID,
    RESERVED_DIRS, TARGET_JSON,
};
pub use stream::{glue_files, plan, render_into, Failure, Sink, Streamed};
pub use write::{
    apply, changes, check, compare_target, file_changes, list_slots, parse_meta, read_dir_files, read_meta,
    read_meta_checked, recover, snapshot, Change, ChangeKind, Desired, Staging,
};

use crate::inventory::Inventory;
use crate::render::RenderedTarget;

/// What the tree must hold after rendering `targets`: each target's
/// directory, its Flux file, and the Argo CD file of each environment touched.
/// `out_prefix` is the tree's path relative to the repository root, as
/// controllers see it.
pub fn desired(inventory: &Inventory, targets: &[RenderedTarget], project_digest: &str, out_prefix: &str) -> Desired {
    let mut d = Desired::default();
    // Layout (YAML emission, digests) is per target: run it in parallel too.
    use rayon::prelude::*;
    let laid_out: Vec<(String, std::collections::BTreeMap<String, String>, String)> = targets
        .par_iter()
        .map(|t| {
            let request = crate::render::Request {
                target: t.target.clone(),
                run_id: t.run_id.clone(),
                sets: t.sets.clone(),
                source: t.source.clone(),
            };
            let digest = target_inputs_digest(project_digest, &request);
            let flux = flux_file(inventory, t, out_prefix);
            (t.target.dir(), target_files(inventory, t, &digest, &flux), flux)
        })
        .collect();
    for (t, (dir, files, flux)) in targets.iter().zip(laid_out) {
        d.targets.insert(dir, files);
        d.files.insert(flux_path(&t.target.env, t.target.slot.as_deref()), Some(flux));
        d.files
            .insert(crate::layout::argocd_path(&t.target.env), Some(argocd_file(inventory, &t.target.env, out_prefix)));
    }
    d
}

/// True when the tree on disk holds exactly what `request` renders: the
/// target's recorded inputs digest matches and its files (and Flux file)
/// still hash to the recorded outputs digest. Such a target need not be
/// rendered again, and `--check` can trust it.
pub fn is_current(out: &std::path::Path, request: &crate::render::Request, project_digest: &str) -> bool {
    let dir = request.target.dir();
    let Some(meta) = read_meta(out, &dir) else { return false };
    if meta.inputs_digest != target_inputs_digest(project_digest, request) {
        return false;
    }
    let Ok(files) = read_dir_files(&out.join(&dir)) else { return false };
    let Ok(flux) = std::fs::read(out.join(flux_path(&request.target.env, request.target.slot.as_deref()))) else {
        return false;
    };
    outputs_digest(files.iter().map(|(p, c)| (p.as_str(), c.as_slice())), &flux) == meta.outputs_digest
}
