//! `validate` as a library call: every `when` compiles, every environment
//! renders in memory (slot environments with a probe slot and run id), and
//! the warnings a render would give — dependencies disabled where their
//! dependent is on, a placeholder `gitops.repoURL`.

use anyhow::Result;

use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::inventory::yaml::YamlPath;
use crate::inventory::{Inventory, Override};
use crate::render::{disabled_dependencies, render_targets, Request, Target};
use crate::template::Engine;

/// Slot and run id used to probe slot environments.
pub const PROBE: &str = "validate";

/// What a validation that passed found.
#[derive(Debug, Default)]
pub struct Validated {
    /// Warnings, in order.
    pub warnings: Diagnostics,
    /// Objects rendered in memory, over every environment.
    pub objects: usize,
}

/// Validates the project with the command line's value overrides `sets`.
/// `Ok(Err(ds))`: the project is invalid, `ds` says why; `Err`: the
/// overrides do not apply.
pub fn validate(inventory: &Inventory, engine: &Engine, sets: &[Override]) -> Result<Result<Validated, Diagnostics>> {
    let when = when_errors(inventory, engine);
    if when.has_errors() {
        return Ok(Err(when));
    }
    let mut requests = Vec::new();
    for e in inventory.environments.values() {
        requests.push(Request {
            target: Target { env: e.name.clone(), slot: e.slots.then(|| PROBE.to_owned()) },
            run_id: e.slots.then(|| PROBE.to_owned()),
            sets: super::target_overrides(inventory, &e.name, &[], sets)?,
            source: None,
        });
    }
    let rendered = match render_targets(inventory, engine, &requests) {
        Ok(r) => r,
        Err(ds) => return Ok(Err(ds)),
    };
    let mut warnings = Diagnostics::default();
    for t in &rendered {
        warnings.0.extend(disabled_dependencies(inventory, &t.target, &t.plan));
    }
    warnings.0.extend(placeholder_repo_url(inventory));
    Ok(Ok(Validated { warnings, objects: rendered.iter().map(|t| t.objects.len()).sum() }))
}

/// Every `when` that does not compile, at its position.
fn when_errors(inventory: &Inventory, engine: &Engine) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for c in &inventory.components {
        let Some(when) = &c.when else { continue };
        if let Err(e) = engine.check_expression(when) {
            let at = c.location(&YamlPath::default().key("when"));
            let message =
                format!("`when` of component `{}` does not compile: {}", c.name, e.detail().unwrap_or("syntax error"));
            diags.push(
                inventory
                    .diagnostic(&c.file, at, message)
                    .with_help("`when` is a minijinja expression, e.g. \"env != 'staging' or vars.replicas > 1\""),
            );
        }
    }
    diags
}

/// A `gitops.repoURL` that is a placeholder (example.com, `<...>`,
/// github.com/OWNER): Argo CD and Flux would clone nothing real.
fn placeholder_repo_url(inventory: &Inventory) -> Option<Diagnostic> {
    let url = &inventory.gitops.repo_url;
    let lower = url.to_ascii_lowercase();
    let placeholder =
        ["example.com", "example.org", "/owner/", "github.com/owner", "<", ">"].iter().any(|p| lower.contains(p));
    if !placeholder {
        return None;
    }
    let text = inventory.texts.get(&inventory.file).map(String::as_str).unwrap_or_default();
    let line = text.lines().position(|l| l.trim_start().starts_with("repoURL:")).map_or(1, |i| i + 1);
    Some(
        Diagnostic::warning(
            &inventory.file,
            Some(Location { line, col: 1 }),
            format!("gitops.repoURL `{url}` is a placeholder: Argo CD and Flux would follow no real repository"),
        )
        .with_help("set `gitops.repoURL` in services.yaml to the repository holding the deploy branch"),
    )
}
