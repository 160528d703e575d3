//! `codex-k8s validate`: load, validate, compile every template, and render
//! every environment in memory (slot environments with a probe slot), so a
//! template error surfaces before CI renders for real.

use std::path::Path;

use anyhow::Result;

use super::output::{diagnostic_json, Format};
use super::{exit, load_project, Output, Project};
use crate::diagnostic::Diagnostic;
use crate::inventory;
use crate::publish;
use crate::template::Engine;

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    values: super::targets::ValueArgs,
    /// Output format: `json` prints `{ok, counts…, diagnostics: [{severity, file, line, column, message, help}]}` on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Runs the validation.
pub fn run(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
    if args.format == Format::Json {
        return run_json(file, &args, out);
    }
    let Project { inventory, engine } = load_project(file, out)?;
    let sets = super::targets::parse_values(&inventory, &args.values)?;
    let validated = match publish::validate(&inventory, &engine, &sets)? {
        Ok(v) => v,
        Err(ds) => {
            out.diagnostics(&ds)?;
            return Err(super::Reported.into());
        }
    };
    out.diagnostics(&validated.warnings)?;
    writeln!(
        out.info(),
        "ok: {} environment(s), {} component(s), {} manifest template(s), {} partial macro(s); {} object(s) rendered in memory",
        inventory.environments.len(),
        inventory.components.len() + usize::from(inventory.agent.is_some()),
        inventory.manifest_files().len(),
        engine.partial_names().count(),
        validated.objects,
    )?;
    Ok(exit::OK)
}

/// `validate --format json`: every outcome, load errors included, as one
/// JSON document on stdout (exit 1 when it holds an error).
fn run_json(file: &Path, args: &Args, out: &mut Output) -> Result<u8> {
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    let mut counts = serde_json::Map::new();
    let mut ok = false;
    match inventory::load(file) {
        Err(ds) => diagnostics.extend(ds.0),
        Ok(loaded) => {
            diagnostics.extend(loaded.warnings.iter().cloned());
            let inventory = loaded.inventory;
            match Engine::new(&inventory) {
                Err(ds) => diagnostics.extend(ds.0),
                Ok(engine) => {
                    let sets = super::targets::parse_values(&inventory, &args.values)?;
                    match publish::validate(&inventory, &engine, &sets)? {
                        Err(ds) => diagnostics.extend(ds.0),
                        Ok(validated) => {
                            diagnostics.extend(validated.warnings.0.iter().cloned());
                            ok = true;
                            let components = inventory.components.len() + usize::from(inventory.agent.is_some());
                            counts.insert("environments".into(), inventory.environments.len().into());
                            counts.insert("components".into(), components.into());
                            counts.insert("manifestTemplates".into(), inventory.manifest_files().len().into());
                            counts.insert("partialMacros".into(), engine.partial_names().count().into());
                            counts.insert("objects".into(), validated.objects.into());
                        }
                    }
                }
            }
        }
    }
    let mut report = serde_json::Map::new();
    report.insert("ok".into(), ok.into());
    report.extend(counts);
    report.insert("diagnostics".into(), diagnostics.iter().map(diagnostic_json).collect());
    writeln!(out.out, "{}", serde_json::to_string_pretty(&report)?)?;
    Ok(if ok { exit::OK } else { exit::ERROR })
}
