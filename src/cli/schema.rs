//! `codex-k8s schema`: the JSON Schema of services.yaml for editors
//! (yaml-language-server) and CI validators.

use anyhow::Result;

use super::{exit, Output};

/// Arguments of `schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which file the schema describes.
    #[arg(long = "for", value_enum, default_value_t = SchemaFor::Services)]
    pub for_: SchemaFor,
}

/// The files with a schema.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SchemaFor {
    /// services.yaml.
    Services,
    /// environments/<name>.yaml.
    Environment,
}

/// Prints the schema.
pub fn run(args: Args, out: &mut Output) -> Result<u8> {
    let schema = match args.for_ {
        SchemaFor::Services => crate::inventory::json_schema(),
        SchemaFor::Environment => crate::inventory::environment_json_schema(),
    };
    writeln!(out.out, "{}", serde_json::to_string_pretty(&schema)?)?;
    Ok(exit::OK)
}
