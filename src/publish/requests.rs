//! From a typed selection to render requests: which targets a run renders
//! (`--all` takes the plain environments and the slots the current source
//! owns), each with the run id, overrides and owner the tree remembers, and
//! the limits a new slot must respect (`maxSlots`, ownership).

use anyhow::{bail, Result};

use super::state::{check_meta, check_run_id, check_slot, TreeState};
use crate::inventory::values::{self, Override, Overrides};
use crate::inventory::Inventory;
use crate::render::{Request, Source, Target};

/// Which targets a run acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every plain environment plus the slots in the tree the current source
    /// owns (and slots no source owns).
    All,
    /// One environment; for a slot environment, these slots.
    Env {
        /// The environment.
        env: String,
        /// Its slots (slot environments).
        slots: Vec<String>,
    },
}

/// What a run asks of each selected target.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Agent run id for the slot(s); none: the slot's last run id is kept.
    pub run_id: Option<String>,
    /// New overrides, checked, in command-line order.
    pub sets: Vec<Override>,
    /// The source this run renders from; none outside git.
    pub source: Option<Source>,
    /// Render a slot owned by another source anyway, taking it over.
    pub adopt: bool,
    /// A run that writes nothing (`plan`, `images`, `--check`, `--stdout`):
    /// a slot owned by another source is rendered as recorded.
    pub read_only: bool,
}

/// The requests of a run, and the slots `--all` left to their owners.
#[derive(Debug, Clone, Default)]
pub struct Planned {
    /// What to render.
    pub requests: Vec<Request>,
    /// Slots in the tree owned by another source, not rendered (`--all`).
    pub foreign: Vec<(Target, Source)>,
}

/// Builds the requests for a selection against what the tree holds.
pub fn requests(inventory: &Inventory, sel: &Selection, opts: &Options, state: &dyn TreeState) -> Result<Planned> {
    let targets = match sel {
        Selection::All => {
            if opts.run_id.is_some() {
                bail!("--run-id applies to one slot; it cannot be combined with --all");
            }
            all_targets(inventory, state)?
        }
        Selection::Env { env, slots } => env_targets(inventory, env, slots, opts, state)?,
    };
    if let Some(id) = &opts.run_id {
        check_run_id(id).map_err(anyhow::Error::msg)?;
    }
    let explicit = matches!(sel, Selection::Env { .. });
    let mut planned = Planned::default();
    for target in targets {
        let dir = target.dir();
        let previous = state.read_meta(&dir).map_err(anyhow::Error::msg)?;
        let mut recorded = Vec::new();
        if let Some(meta) = &previous {
            let file = state.meta_file(&dir);
            check_meta(inventory, &file, &target, meta)?;
            recorded = values::from_recorded(&meta.sets, &file).map_err(anyhow::Error::msg)?;
        }
        let owner = previous.as_ref().and_then(|m| m.source.clone());
        let source = match (target.slot.is_some(), owner) {
            (false, _) => None,
            (true, Some(owner)) if !owned_by(&owner, opts.source.as_ref()) => {
                if !explicit {
                    planned.foreign.push((target, owner));
                    continue;
                }
                if opts.read_only {
                    Some(owner)
                } else if !opts.adopt {
                    bail!(foreign_slot(&target, &owner, opts.source.as_ref()));
                } else {
                    opts.source.clone()
                }
            }
            (true, owner) if opts.read_only => owner,
            // The owner's run records itself, with its commit (a slot's
            // workspace follows its source); `--env E --slot S` takes an
            // unowned slot, `--all` leaves it unowned.
            (true, Some(_)) => opts.source.clone(),
            (true, None) if explicit => opts.source.clone(),
            (true, None) => None,
        };
        let sets = target_overrides(inventory, &target.env, &recorded, &opts.sets)?;
        let run_id = opts.run_id.clone().or_else(|| previous.as_ref().and_then(|m| m.run_id.clone()));
        planned.requests.push(Request { target, run_id, sets, source });
    }
    Ok(planned)
}

/// Whether a slot owned by `owner` belongs to the run's `source`.
fn owned_by(owner: &Source, source: Option<&Source>) -> bool {
    source.is_some_and(|s| owner.is_ref(&s.git_ref))
}

fn foreign_slot(target: &Target, owner: &Source, source: Option<&Source>) -> String {
    let commit = owner.commit.as_deref().map(|c| format!(" at {}", &c[..c.len().min(12)])).unwrap_or_default();
    let this = source.map(|s| s.git_ref.as_str()).unwrap_or("a source outside git");
    format!(
        "slot {target} belongs to {}{commit}; rendering it from {this} would overwrite that source's preview. Render it from its own source (--source-ref {}), or pass --adopt to take it over",
        owner.git_ref, owner.git_ref
    )
}

fn all_targets(inventory: &Inventory, state: &dyn TreeState) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    for (name, env) in &inventory.environments {
        if !env.slots {
            targets.push(Target { env: name.clone(), slot: None });
            continue;
        }
        for slot in state.list_slots(name) {
            if let Err(e) = check_slot(&slot) {
                bail!("{}: {e}; rename or remove the directory", state.meta_file(&format!("{name}/{slot}")));
            }
            targets.push(Target { env: name.clone(), slot: Some(slot) });
        }
    }
    Ok(targets)
}

fn env_targets(
    inventory: &Inventory,
    env_name: &str,
    slots: &[String],
    opts: &Options,
    state: &dyn TreeState,
) -> Result<Vec<Target>> {
    let Some(env) = inventory.environment(env_name) else {
        let known: Vec<&str> = inventory.environments.keys().map(String::as_str).collect();
        let hint = crate::diagnostic::did_you_mean(env_name, known.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        bail!("unknown environment `{env_name}`{hint}; environments: {}", known.join(", "));
    };
    if env.slots && slots.is_empty() {
        bail!("`{env_name}` is a slot environment: pass --slot SLOT (e.g. --slot pr-42)");
    }
    if !env.slots && !slots.is_empty() {
        bail!("`{env_name}` is not a slot environment: drop --slot");
    }
    if opts.run_id.is_some() && !env.slots {
        bail!("--run-id applies to slot environments; `{env_name}` is not one");
    }
    let mut targets = Vec::new();
    if slots.is_empty() {
        targets.push(Target { env: env_name.to_owned(), slot: None });
    }
    for slot in slots {
        check_slot(slot).map_err(anyhow::Error::msg)?;
        let t = Target { env: env_name.to_owned(), slot: Some(slot.clone()) };
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    if let Some(max) = env.max_slots {
        let existing = state.list_slots(env_name);
        let new = slots.iter().filter(|s| !existing.contains(s)).count();
        if existing.len() + new > max as usize {
            bail!(
                "`{env_name}` holds {} slot(s) and allows {max} (maxSlots); rendering {new} new slot(s) would exceed it. Remove idle slots with `codex-k8s slots gc` or raise maxSlots",
                existing.len()
            );
        }
    }
    Ok(targets)
}

/// The overrides of one target: those recorded before (if any), then the
/// new ones in order, checked against the environment's values.
pub fn target_overrides(
    inventory: &Inventory,
    env: &str,
    recorded: &[Override],
    new: &[Override],
) -> Result<Overrides> {
    let mut sets = Overrides::default();
    for o in recorded.iter().chain(new) {
        sets.apply(o).map_err(anyhow::Error::msg)?;
    }
    if let Some(env) = inventory.environment(env) {
        sets.check_against(inventory, env).map_err(anyhow::Error::msg)?;
    }
    Ok(sets)
}
