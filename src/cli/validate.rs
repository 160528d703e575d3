//! `codex-k8s validate`: load, validate, compile every template, and render
//! every environment in memory (slot environments with a probe slot), so a
//! template error surfaces before CI renders for real.

use std::path::Path;

use anyhow::Result;

use super::{exit, load_project, Output, Project};
use crate::publish;

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    values: super::targets::ValueArgs,
}

/// Runs the validation.
pub fn run(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
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
