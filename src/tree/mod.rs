//! The rendered tree: object files, kustomizations, target metadata, the
//! Argo CD / Flux glue, and safe writing (write aside, swap, prune).

mod glue;
mod layout;
mod write;

pub use glue::{argocd_file, flux_file, flux_path};
pub use layout::{digest_files, inputs_digest, target_files, target_inputs_digest, TargetMeta, TARGET_JSON};
pub use write::{apply, changes, list_slots, read_dir_files, read_meta, recover, Change, ChangeKind, Desired};

use crate::inventory::Inventory;
use crate::render::RenderedTarget;

/// What the tree must hold after rendering `targets`: each target's
/// directory, its Flux file, and the Argo CD file of each environment touched.
/// `out_prefix` is the tree's path relative to the repository root, as
/// controllers see it.
pub fn desired(inventory: &Inventory, targets: &[RenderedTarget], project_digest: &str, out_prefix: &str) -> Desired {
    let mut d = Desired::default();
    for t in targets {
        let digest = target_inputs_digest(project_digest, t);
        d.targets.insert(t.target.dir(), target_files(inventory, t, &digest));
        d.files.insert(flux_path(&t.target.env, t.target.slot.as_deref()), Some(flux_file(inventory, t, out_prefix)));
        d.files
            .insert(format!("argocd/{}.yaml", t.target.env), Some(argocd_file(inventory, &t.target.env, out_prefix)));
    }
    d
}
