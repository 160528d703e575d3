//! `codex-k8s validate`: load, validate, compile every template, and render
//! every environment in memory (slot environments with a probe slot), so a
//! template error surfaces before CI renders for real.

use std::path::Path;

use anyhow::Result;

use super::{exit, load_project, Output, Project};
use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::inventory::yaml::YamlPath;
use crate::render::{render_targets, Enablement, Request, Target};

/// Slot and run id used to probe slot environments.
pub const PROBE: &str = "validate";

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    values: super::targets::ValueArgs,
}

/// Runs the validation.
pub fn run(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
    let Project { inventory, engine } = load_project(file, out)?;
    let mut diags = Diagnostics::default();
    for c in inventory.components.iter() {
        if let Some(when) = &c.when {
            if let Err(e) = engine.check_expression(when) {
                let at = c.location(&YamlPath::default().key("when"));
                diags.push(
                    inventory
                        .diagnostic(
                            &c.file,
                            at,
                            format!(
                                "`when` of component `{}` does not compile: {}",
                                c.name,
                                e.detail().unwrap_or("syntax error")
                            ),
                        )
                        .with_help("`when` is a minijinja expression, e.g. \"env != 'staging' or vars.replicas > 1\""),
                );
            }
        }
    }
    if diags.has_errors() {
        out.diagnostics(&diags)?;
        return Err(super::Reported.into());
    }
    let overrides = super::targets::parse_values(&inventory, &args.values)?;
    let mut requests: Vec<Request> = Vec::new();
    for e in inventory.environments.values() {
        requests.push(Request {
            target: Target { env: e.name.clone(), slot: e.slots.then(|| PROBE.to_owned()) },
            run_id: e.slots.then(|| PROBE.to_owned()),
            sets: super::targets::target_overrides(&inventory, &e.name, &[], &overrides)?,
            source: None,
        });
    }
    let rendered = match render_targets(&inventory, &engine, &requests) {
        Ok(r) => r,
        Err(ds) => {
            out.diagnostics(&ds)?;
            return Err(super::Reported.into());
        }
    };
    // A dependency that is off where its dependent is on: Argo CD waits on
    // nothing, Flux on nothing; the dependent may start before what it needs.
    for t in &rendered {
        for p in t.plan.iter().filter(|p| p.enablement == Enablement::Enabled) {
            for dep in &p.depends_on {
                if let Some(d) = t.plan.iter().find(|d| &d.name == dep && d.enablement != Enablement::Enabled) {
                    let (file, line) = inventory
                        .component(&p.name)
                        .map(|c| (c.file.clone(), c.line))
                        .unwrap_or_else(|| (inventory.file.clone(), 1));
                    out.diagnostic(
                        &Diagnostic::warning(
                            &file,
                            Some(Location { line, col: 1 }),
                            format!(
                                "component `{}` depends on `{}`, which is disabled in environment `{}` ({:?})",
                                p.name, d.name, t.target.env, d.enablement
                            ),
                        )
                        .with_help("enable the dependency there too, or make the dependent's `when`/`envs` match"),
                    )?;
                }
            }
        }
    }
    warn_placeholder_repo_url(&inventory, out)?;
    let objects: usize = rendered.iter().map(|t| t.objects.len()).sum();
    writeln!(
        out.err,
        "ok: {} environment(s), {} component(s), {} manifest template(s), {} partial macro(s); {objects} object(s) rendered in memory",
        inventory.environments.len(),
        inventory.components.len() + usize::from(inventory.agent.is_some()),
        inventory.manifest_files().len(),
        engine.partial_names().count(),
    )?;
    Ok(exit::OK)
}

/// A `gitops.repoURL` that is a placeholder (unset, example.com, `<...>`,
/// github.com/OWNER): Argo CD would clone nothing real.
fn warn_placeholder_repo_url(inventory: &crate::inventory::Inventory, out: &mut Output) -> Result<()> {
    let url = &inventory.gitops.repo_url;
    let lower = url.to_ascii_lowercase();
    let placeholder =
        ["example.com", "example.org", "/owner/", "github.com/owner", "<", ">"].iter().any(|p| lower.contains(p));
    if !placeholder {
        return Ok(());
    }
    let text = inventory.texts.get(&inventory.file).map(String::as_str).unwrap_or_default();
    let line = text.lines().position(|l| l.trim_start().starts_with("repoURL:")).map_or(1, |i| i + 1);
    out.diagnostic(
        &Diagnostic::warning(
            &inventory.file,
            Some(Location { line, col: 1 }),
            format!("gitops.repoURL `{url}` is a placeholder: Argo CD and Flux would follow no real repository"),
        )
        .with_help("set `gitops.repoURL` in services.yaml to the repository holding the deploy branch"),
    )?;
    Ok(())
}
