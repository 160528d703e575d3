//! Rendering: per target, evaluate `when`, order components, render their
//! templates in parallel, apply overlays, namespaces, labels and waves, and
//! check policy. Pure: inputs in, [`RenderedTarget`] out.

mod object;
mod overlay;
pub mod plan;
pub mod policy;
mod target;

pub use object::{ObjectId, RenderedObject};
pub use overlay::{add_env, add_pvc_mount, Mount};
pub use plan::{Enablement, PlannedComponent, Target};
pub use target::{check_set, excerpt, labels, plan_target, render_target, target_context, RenderedTarget, Request};
