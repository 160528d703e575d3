//! The rendered tree: object files, kustomizations, target metadata, the
//! Argo CD / Flux glue, and safe writing (write aside, swap, prune).

mod glue;
mod layout;
mod write;

pub use glue::{argocd_file, flux_file, flux_path};
pub use layout::{digest_files, inputs_digest, target_files, target_inputs_digest, TargetMeta, TARGET_JSON};
pub use write::{apply, changes, list_slots, read_dir_files, read_meta, recover, Change, ChangeKind, Desired};
