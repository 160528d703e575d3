//! The nouns every step of rendering shares, declared once, below the steps
//! that use them: what to render ([`Target`], [`Request`]), what the plan
//! says of each component ([`PlannedComponent`], [`Enablement`]), a rendered
//! document ([`Document`]) and the result ([`RenderedTarget`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_yaml::{Mapping, Value};

use super::object::RenderedObject;
use super::source::Source;
use crate::inventory::values::Overrides;

/// A render target: an environment, or an environment × slot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Target {
    /// Environment name.
    pub env: String,
    /// Slot name (slot environments only).
    pub slot: Option<String>,
}

impl Target {
    /// Directory of the target inside the rendered tree: `env` or `env/slot`.
    pub fn dir(&self) -> String {
        crate::layout::target_dir(&self.env, self.slot.as_deref())
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dir())
    }
}

/// Why a component is or is not part of a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state", content = "reason")]
pub enum Enablement {
    /// Rendered.
    Enabled,
    /// Not rendered: `envs` does not list the environment.
    NotInEnvs,
    /// Not rendered: `when` evaluated to false.
    WhenFalse,
    /// Not rendered: the agent needs a slot environment and a run id.
    AgentIdle(String),
}

/// One component's place in a target.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedComponent {
    /// Component name.
    pub name: String,
    /// Stage name.
    pub stage: String,
    /// Stage index.
    pub stage_index: usize,
    /// Depth of its dependency chain inside the stage.
    pub depth: u32,
    /// Sync wave.
    pub wave: u32,
    /// Enabled or why not.
    pub enablement: Enablement,
    /// Its dependencies.
    pub depends_on: Vec<String>,
}

/// What to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The target.
    pub target: Target,
    /// Agent run id (slot targets).
    pub run_id: Option<String>,
    /// Overrides (`--set`, `--values`, the slot's recorded ones), checked.
    pub sets: Overrides,
    /// The source it is rendered from (its owner), recorded in `target.json`.
    pub source: Option<Source>,
}

/// A rendered target.
#[derive(Debug, Clone)]
pub struct RenderedTarget {
    /// The target.
    pub target: Target,
    /// Its namespace.
    pub namespace: String,
    /// Its host.
    pub host: Option<String>,
    /// The run id used.
    pub run_id: Option<String>,
    /// The overrides used.
    pub sets: Overrides,
    /// The source it was rendered from.
    pub source: Option<Source>,
    /// The target's `vars` (the environment's, overrides applied).
    pub vars: Mapping,
    /// The `vars` of components that have values of their own (component
    /// `vars`, `overlays.<env>.vars`), overrides applied.
    pub component_vars: BTreeMap<String, Mapping>,
    /// Components with their verdicts and waves.
    pub plan: Vec<PlannedComponent>,
    /// Objects, ordered by wave then path.
    pub objects: Vec<RenderedObject>,
}

/// One document of rendered template output.
#[derive(Debug, Clone)]
pub(super) struct Document {
    /// The manifest template that rendered it.
    pub template: PathBuf,
    /// Its 0-based index among the template's documents.
    pub index: usize,
    /// The object.
    pub value: Value,
}
