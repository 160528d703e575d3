//! Dynamic shell completion: `codex-k8s completions SHELL` prints a script
//! that asks the binary itself (`COMPLETE=SHELL codex-k8s -- WORDS…`) on each
//! Tab, so `--env`, `--slot` and `--only`/`--skip` offer the project's
//! environment, slot and component names rather than file names.
//!
//! The candidates come from the project in the current directory: its
//! `services.yaml` and the slots of its rendered tree (`rendered/`). A
//! completer cannot see the other words of the line, so `-f`/`-C`/`--out`
//! given there are not followed; a project that does not load offers nothing.

use std::path::Path;

use clap_complete::engine::CompletionCandidate;

use crate::inventory::{self, Inventory};

fn project() -> Option<Inventory> {
    inventory::load(Path::new("services.yaml")).ok().map(|l| l.inventory)
}

/// Every environment, slot environments marked as such.
pub fn environments() -> Vec<CompletionCandidate> {
    let Some(inv) = project() else { return Vec::new() };
    inv.environments
        .values()
        .map(|e| {
            let what = if e.slots { format!("slot environment, {}", e.namespace) } else { e.namespace.clone() };
            CompletionCandidate::new(e.name.clone()).help(Some(what.into()))
        })
        .collect()
}

/// The slots the rendered tree holds, each with its environment.
pub fn slots() -> Vec<CompletionCandidate> {
    let Some(inv) = project() else { return Vec::new() };
    let Ok(out) = crate::publish::out_dir(&inv, Path::new("rendered")) else { return Vec::new() };
    let mut found = Vec::new();
    for env in inv.environments.values().filter(|e| e.slots) {
        let Ok(dir) = std::fs::read_dir(out.join(&env.name)) else { continue };
        for entry in dir.flatten() {
            if entry.path().join(".codex-k8s/target.json").is_file() {
                found.push((entry.file_name().to_string_lossy().into_owned(), env.name.clone()));
            }
        }
    }
    found.sort();
    found.into_iter().map(|(slot, env)| CompletionCandidate::new(slot).help(Some(format!("in {env}").into()))).collect()
}

/// Every component (and `namespace`, the target's own Namespace object).
pub fn components() -> Vec<CompletionCandidate> {
    let Some(inv) = project() else { return Vec::new() };
    inv.components
        .iter()
        .chain(inv.agent.as_ref())
        .map(|c| CompletionCandidate::new(c.name.clone()).help(Some(format!("stage {}", c.stage).into())))
        .chain(std::iter::once(CompletionCandidate::new("namespace").help(Some("the target's Namespace".into()))))
        .collect()
}
