//! The command line: clap definitions, dispatch, and the glue that turns
//! arguments into typed library calls. One file per command; only this
//! module knows every layer.

mod complete;
mod diff;
mod exit;
mod images;
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
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// Quiet: no summaries or progress on stderr; results, warnings and errors still print.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
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
    /// Every image reference a target deploys, with its build settings (for CI).
    Images(images::Args),
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
    // `COMPLETE=<shell> codex-k8s -- WORDS…` (the script `completions` prints
    // calls this on each Tab): print the candidates and exit.
    clap_complete::CompleteEnv::with_factory(Cli::command).complete();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // clap's own output (usage errors, help) follows `--color` too; it is
    // read before parsing because parsing is what prints those messages.
    let clap_color = match color_arg(&args) {
        Some(ColorChoice::Always) => clap::ColorChoice::Always,
        Some(ColorChoice::Never) => clap::ColorChoice::Never,
        _ => clap::ColorChoice::Auto,
    };
    let parsed = Cli::command().color(clap_color).try_get_matches_from(&args).and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return code;
        }
    };
    let mut out = Output::stdio(cli.color).quiet(cli.quiet);
    match run(cli, &mut out) {
        Ok(code) => code,
        Err(err) => report(&err, &mut out),
    }
}

/// The last `--color WHEN` / `--color=WHEN` before a `--`, if valid.
fn color_arg(args: &[std::ffi::OsString]) -> Option<ColorChoice> {
    let mut found = None;
    let mut it = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(a) = it.next() {
        let value = if a == "--" {
            break;
        } else if a == "--color" {
            it.next().map(|v| v.into_owned())
        } else if let Some(v) = a.strip_prefix("--color=") {
            Some(v.to_owned())
        } else {
            continue;
        };
        found = match value.as_deref() {
            Some("always") => Some(ColorChoice::Always),
            Some("never") => Some(ColorChoice::Never),
            Some("auto") => Some(ColorChoice::Auto),
            _ => found,
        };
    }
    found
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
    let label = if out.color { "\x1b[1;31merror\x1b[0m" } else { "error" };
    let mut text = format!("{label}: {err}");
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
        Command::Images(args) => images::run(&cli.file, args, out),
        Command::Slots(args) => slots::run(&cli.file, args, out),
        #[cfg(feature = "watch")]
        Command::Watch(args) => watch::run(&cli.file, args, out),
        #[cfg(feature = "watch")]
        Command::Status(args) => status::run(&cli.file, args, out),
        Command::Completions { shell } => {
            // The dynamic registration (`complete.rs`): the script calls the
            // binary on each Tab (`COMPLETE=<shell>`, answered in `main`).
            // Written into memory first, then out: a closed pipe is
            // reported like any other write error.
            let name = shell.to_string();
            let shells = clap_complete::env::Shells::builtins();
            let completer = shells.completer(&name).with_context(|| format!("no completion for {name}"))?;
            let bin = std::env::args_os().next().map(|a| a.to_string_lossy().into_owned());
            let bin = bin.unwrap_or_else(|| "codex-k8s".into());
            let mut script = Vec::new();
            completer.write_registration("COMPLETE", "codex-k8s", "codex-k8s", &bin, &mut script)?;
            std::io::Write::write_all(&mut out.out, &script)?;
            std::io::Write::flush(&mut out.out)?;
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

/// Prints a run refused for its input (its diagnostics, then that nothing
/// was written) and turns it into [`Reported`]; other errors pass through.
fn nothing_written(err: anyhow::Error, out: &mut Output) -> anyhow::Error {
    let Some(refused) = err.downcast_ref::<crate::publish::NothingWritten>() else { return err };
    let printed =
        out.diagnostics(&refused.0).and_then(|()| std::io::Write::write_all(&mut out.err, b"nothing was written\n"));
    match printed {
        Ok(()) => Reported.into(),
        Err(e) => e.into(),
    }
}
