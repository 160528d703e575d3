//! Turning `--env/--slot/--all/--run-id/--set` into render requests, with the
//! state the tree remembers: a slot keeps its last run id and overrides.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::diagnostic::Diagnostics;
use crate::inventory::names::SlotName;
use crate::inventory::values::{self, Override};
use crate::inventory::Inventory;
use crate::publish::{self, TreeState};
use crate::render::Request;

pub use crate::publish::{out_dir, out_prefix, DiskTree};

/// Which targets a command acts on.
#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    /// Environment to render.
    #[arg(long, value_name = "ENV", add = clap_complete::ArgValueCandidates::new(super::complete::environments))]
    pub env: Option<String>,
    /// Slot of a slot environment (repeatable).
    #[arg(long = "slot", value_name = "SLOT", add = clap_complete::ArgValueCandidates::new(super::complete::slots))]
    pub slots: Vec<SlotName>,
    /// Every plain environment plus every slot already in the tree.
    #[arg(long, conflicts_with_all = ["env", "slots"])]
    pub all: bool,
}

/// Request options shared by `render` and `plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct RequestArgs {
    /// Agent run id for the slot(s); absent: the slot's last run id is kept.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    #[command(flatten)]
    pub values: ValueArgs,
    /// Output directory of the tree, relative to the project.
    #[arg(long, default_value = "rendered", value_name = "DIR")]
    pub out: PathBuf,
}

/// One value flag, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueArg {
    /// `--set PATH=VALUE[,…]`.
    Set(String),
    /// `--set-string PATH=VALUE[,…]`.
    SetString(String),
    /// `--values FILE`.
    File(PathBuf),
}

/// `--set`, `--set-string` and `--values`, kept in the order given (clap
/// keeps one list per flag; the order across them is read from the
/// argument indices).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValueArgs {
    /// The flags in order.
    pub items: Vec<ValueArg>,
}

impl clap::FromArgMatches for ValueArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut items: Vec<(usize, ValueArg)> = Vec::new();
        for id in ["set", "set_string"] {
            if let (Some(vals), Some(idx)) = (m.get_many::<String>(id), m.indices_of(id)) {
                for (v, i) in vals.zip(idx) {
                    let arg = if id == "set" { ValueArg::Set(v.clone()) } else { ValueArg::SetString(v.clone()) };
                    items.push((i, arg));
                }
            }
        }
        if let (Some(vals), Some(idx)) = (m.get_many::<PathBuf>("values"), m.indices_of("values")) {
            for (v, i) in vals.zip(idx) {
                items.push((i, ValueArg::File(v.clone())));
            }
        }
        items.sort_by_key(|(i, _)| *i);
        Ok(ValueArgs { items: items.into_iter().map(|(_, a)| a).collect() })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for ValueArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        use clap::{Arg, ArgAction};
        cmd.arg(
            Arg::new("set")
                .long("set")
                .value_name("PATH=VALUE")
                .action(ArgAction::Append)
                .help("Override `versions.<name>` or `vars.<path>` with Helm's --set grammar (kept per slot)"),
        )
        .arg(
            Arg::new("set_string")
                .long("set-string")
                .value_name("PATH=VALUE")
                .action(ArgAction::Append)
                .help("Like --set, but every value is text as given (`007`, `true`)"),
        )
        .arg(
            Arg::new("values")
                .long("values")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .action(ArgAction::Append)
                .help("A YAML file with `versions:` and/or `vars:`, merged in command-line order with --set"),
        )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// Parses the value flags into checked overrides, in command-line order.
pub fn parse_values(inventory: &Inventory, args: &ValueArgs) -> Result<Vec<Override>> {
    let mut out = Vec::new();
    for item in &args.items {
        let parsed = match item {
            ValueArg::Set(text) => values::parse_set("--set", text, false).map_err(anyhow::Error::msg)?,
            ValueArg::SetString(text) => values::parse_set("--set-string", text, true).map_err(anyhow::Error::msg)?,
            ValueArg::File(file) => values::read_values_file(file, &inventory.root).map_err(Diagnostics)?,
        };
        for o in parsed {
            o.check(inventory).map_err(anyhow::Error::msg)?;
            out.push(o);
        }
    }
    Ok(out)
}

/// The requests for a read-only command (`plan`, `images`): the targets of
/// `sel` with what the work tree remembers of them.
pub fn requests(
    inventory: &Inventory,
    sel: &Selection,
    args: &RequestArgs,
    state: &dyn TreeState,
) -> Result<Vec<Request>> {
    let mut options = options(inventory, args, false)?;
    options.read_only = true;
    Ok(publish::requests(inventory, &selection(sel)?, &options, state)?.requests)
}

/// The typed selection of `--env/--slot/--all`.
pub fn selection(sel: &Selection) -> Result<publish::Selection> {
    if sel.all {
        return Ok(publish::Selection::All);
    }
    let Some(env) = &sel.env else { bail!("say what to render: --env ENV [--slot SLOT]… or --all") };
    Ok(publish::Selection::Env { env: env.clone(), slots: sel.slots.iter().map(|s| s.as_str().to_owned()).collect() })
}

/// The typed request options of `--run-id` and the value flags.
pub fn options(inventory: &Inventory, args: &RequestArgs, adopt: bool) -> Result<publish::Options> {
    Ok(publish::Options {
        run_id: args.run_id.clone(),
        sets: parse_values(inventory, &args.values)?,
        adopt,
        ..publish::Options::default()
    })
}
