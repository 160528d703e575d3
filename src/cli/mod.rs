//! The command line: clap definitions, dispatch, and the glue that turns
//! arguments into typed library calls. One file per command; only this
//! module knows every layer.

mod diff;
mod exit;
mod output;
mod plan;
mod render;
mod schema;
mod slots;
#[cfg(feature = "watch")]
mod status;
mod targets;
mod validate;
#[cfg(feature = "watch")]
mod watch;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};

pub use exit::{Exit, Reported};
pub use output::{ColorChoice, Output};

use crate::diagnostic::Diagnostics;
use crate::inventory::{self, Inventory};
use crate::template::Engine;

/// codex-k8s: render one typed services.yaml into per-environment and
/// per-slot GitOps trees for Argo CD and Flux.
#[derive(Debug, Parser)]
#[command(name = "codex-k8s", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The inventory file.
    #[arg(short = 'f', long = "file", global = true, default_value = "services.yaml", value_name = "FILE")]
    pub file: PathBuf,
    /// Run as if started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// When to colour diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load and validate the inventory, compile every template, and render
    /// every environment in memory (slot environments with a probe slot).
    Validate(validate::Args),
    /// Print the JSON Schema of services.yaml (or of an environment file).
    Schema(schema::Args),
    /// Show a target's stages, waves, components and objects, and what would change.
    Plan(plan::Args),
    /// Render targets into the tree (or check it, or print one target).
    Render(render::Args),
    /// Object-level diff of the rendered tree between two revisions (or the work tree).
    Diff(diff::Args),
    /// List slots, remove one, or remove those idle past their TTL.
    Slots(slots::Args),
    /// Watch agent Jobs and remove slots idle past their TTL (the cluster watcher).
    #[cfg(feature = "watch")]
    Watch(watch::Args),
    /// Slots as the cluster sees them: namespace, host, agent phase, idle, TTL left.
    #[cfg(feature = "watch")]
    Status(status::Args),
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Runs the CLI with the process arguments; returns the exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return code;
        }
    };
    let mut out = Output::stdio(cli.color);
    match run(cli, &mut out) {
        Ok(code) => code,
        Err(err) => report(&err, &mut out),
    }
}

/// Maps an error to its exit code, printing it unless it was already reported.
fn report(err: &anyhow::Error, out: &mut Output) -> u8 {
    if let Some(Exit(code)) = err.downcast_ref::<Exit>() {
        return *code;
    }
    if err.downcast_ref::<Reported>().is_some() {
        return exit::ERROR;
    }
    if let Some(ds) = err.downcast_ref::<Diagnostics>() {
        let _ = out.diagnostics(ds);
        return exit::ERROR;
    }
    // A closed pipe (`codex-k8s render --stdout | head`) is not a failure.
    if err
        .chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
    {
        return exit::OK;
    }
    let mut text = format!("error: {err}");
    for cause in err.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    let _ = std::io::Write::write_all(&mut out.err, format!("{text}\n").as_bytes());
    exit::ERROR
}

/// Dispatches a parsed command line.
pub fn run(cli: Cli, out: &mut Output) -> Result<u8> {
    if let Some(dir) = &cli.dir {
        std::env::set_current_dir(dir).with_context(|| format!("cannot change directory to {}", dir.display()))?;
    }
    match cli.command {
        Command::Validate(args) => validate::run(&cli.file, args, out),
        Command::Schema(args) => schema::run(args, out),
        Command::Plan(args) => plan::run(&cli.file, args, out),
        Command::Render(args) => render::run(&cli.file, args, out),
        Command::Diff(args) => diff::run(&cli.file, args, out),
        Command::Slots(args) => slots::run(&cli.file, args, out),
        #[cfg(feature = "watch")]
        Command::Watch(args) => watch::run(&cli.file, args, out),
        #[cfg(feature = "watch")]
        Command::Status(args) => status::run(&cli.file, args, out),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "codex-k8s", &mut out.out);
            Ok(exit::OK)
        }
    }
}

/// A loaded project: the inventory and its compiled templates.
pub struct Project {
    /// The inventory.
    pub inventory: Inventory,
    /// The templates.
    pub engine: Engine,
}

/// Loads the inventory and compiles templates, printing warnings; errors are
/// printed and returned as [`Reported`].
pub fn load_project(file: &Path, out: &mut Output) -> Result<Project> {
    let loaded = match inventory::load(file) {
        Ok(l) => l,
        Err(ds) => {
            out.diagnostics(&ds)?;
            return Err(Reported.into());
        }
    };
    for w in &loaded.warnings {
        out.diagnostic(w)?;
    }
    let engine = match Engine::new(&loaded.inventory) {
        Ok(e) => e,
        Err(ds) => {
            out.diagnostics(&ds)?;
            return Err(Reported.into());
        }
    };
    Ok(Project { inventory: loaded.inventory, engine })
}
