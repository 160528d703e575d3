//! Namespace isolation, checked on rendered namespaces (not on the
//! templates that produce them): a slot never lands in a reserved namespace,
//! and no two targets share one.

use std::collections::BTreeMap;

use super::context::target_context;
use super::nouns::{Request, Target};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::inventory::Inventory;
use crate::template::Engine;

pub use super::context::{reserved_reason, RESERVED_NAMESPACES};

/// The namespace `target` must have, computed from the inventory alone.
pub fn namespace_of(inventory: &Inventory, engine: &Engine, target: &Target) -> Result<String, Diagnostics> {
    let req = Request { target: target.clone(), run_id: None, sets: Default::default(), source: None };
    namespace_for(inventory, engine, &req)
}

/// The namespace `req` renders (its target with its overrides, e.g. the
/// ones a slot's `target.json` records).
pub fn namespace_for(inventory: &Inventory, engine: &Engine, req: &Request) -> Result<String, Diagnostics> {
    target_context(inventory, engine, req).map(|c| c.namespace)
}

/// Every pair of targets among `targets` (target, namespace) that share a
/// namespace, plus every plain environment of the inventory, as errors
/// naming both. Each target is listed once.
pub fn clashes(inventory: &Inventory, engine: &Engine, targets: &[(Target, String)]) -> Diagnostics {
    let mut all: Vec<(Target, String)> = targets.to_vec();
    for env in inventory.environments.values().filter(|e| !e.slots) {
        let target = Target { env: env.name.clone(), slot: None };
        if all.iter().any(|(t, _)| *t == target) {
            continue;
        }
        if let Ok(ns) = namespace_of(inventory, engine, &target) {
            all.push((target, ns));
        }
    }
    let mut first: BTreeMap<&str, &Target> = BTreeMap::new();
    let mut diags = Diagnostics::default();
    for (target, ns) in &all {
        match first.get(ns.as_str()) {
            Some(other) if *other != target => diags.push(
                Diagnostic::error(
                    &inventory.file,
                    None,
                    format!("targets {other} and {target} both render namespace `{ns}`"),
                )
                .with_help("every environment and slot needs a namespace of its own; change a `namespace` template"),
            ),
            Some(_) => {}
            None => {
                first.insert(ns, target);
            }
        }
    }
    diags
}
