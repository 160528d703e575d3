//! What a review from source compares (`diff --source-base`): every
//! environment of either side, and for a slot environment one representative
//! slot — the pull request's own, as the tree records it, or a probe — plus
//! the other slots the tree holds, each checked as `render` checks it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};

use super::state::{check_meta, check_slot, DiskTree, TreeState};
use crate::diff::source::{EnvPlan, SlotSpec};
use crate::inventory::names::SlotName;
use crate::inventory::{values, Inventory};
use crate::render::Target;
use crate::tree;

/// One side of the review: its name for messages and its inventory, if it has one.
#[derive(Clone, Copy)]
pub struct ReviewSide<'a> {
    /// `REV` or `work tree`.
    pub label: &'a str,
    /// The side's inventory (none when the revision has no services.yaml).
    pub inventory: Option<&'a Inventory>,
}

/// The environments to compare (only `env` when given), with each slot
/// environment's representative (`slot`, else a probe) and the other slots
/// of the tree at `out_dir`, read with the head's inventory (else the base's).
pub fn review_plans(
    base: ReviewSide<'_>,
    head: ReviewSide<'_>,
    env: Option<&str>,
    slot: Option<&SlotName>,
    out_dir: &Path,
) -> Result<Vec<EnvPlan>> {
    let inventories: Vec<&Inventory> = [head.inventory, base.inventory].into_iter().flatten().collect();
    let mut envs: BTreeMap<&str, bool> = BTreeMap::new();
    for inv in inventories.iter().rev() {
        for (name, e) in &inv.environments {
            envs.insert(name, e.slots);
        }
    }
    if let Some(e) = env {
        let Some(slots) = envs.get(e).copied() else {
            let known: Vec<&str> = envs.keys().copied().collect();
            bail!(
                "unknown environment `{e}` at {} and at {}; environments: {}",
                base.label,
                head.label,
                known.join(", ")
            );
        };
        if !slots && slot.is_some() {
            bail!("`{e}` is not a slot environment: drop --slot");
        }
        envs.retain(|name, _| *name == e);
    }
    let state = DiskTree(out_dir);
    let mut plans = Vec::new();
    for (env, slots) in envs {
        if !slots {
            plans.push(EnvPlan { env: env.to_owned(), representative: None, probe: false, existing: Vec::new() });
            continue;
        }
        let mut recorded = Vec::new();
        for s in tree::list_slots(out_dir, env) {
            recorded.push(slot_spec(inventories[0], &state, env, &s)?);
        }
        let (representative, probe) = match slot {
            Some(s) => {
                let own = recorded.iter().find(|r| r.slot == s.as_str()).cloned();
                (own.unwrap_or_else(|| SlotSpec { slot: s.to_string(), ..SlotSpec::probe() }), false)
            }
            None => (SlotSpec::probe(), true),
        };
        recorded.retain(|r| r.slot != representative.slot);
        plans.push(EnvPlan { env: env.to_owned(), representative: Some(representative), probe, existing: recorded });
    }
    Ok(plans)
}

/// A slot as the tree records it, checked like `render` checks it.
fn slot_spec(inventory: &Inventory, state: &DiskTree<'_>, env: &str, slot: &str) -> Result<SlotSpec> {
    let dir = crate::layout::target_dir(env, Some(slot));
    let origin = state.meta_file(&dir);
    check_slot(slot).map_err(|e| anyhow::anyhow!("{origin}: {e}; rename or remove the directory"))?;
    let Some(meta) = state.read_meta(&dir).map_err(anyhow::Error::msg)? else {
        return Ok(SlotSpec { slot: slot.to_owned(), run_id: None, sets: Vec::new(), origin });
    };
    let target = Target { env: env.to_owned(), slot: Some(slot.to_owned()) };
    check_meta(inventory, &origin, &target, &meta)?;
    let sets = values::from_recorded(&meta.sets, &origin).map_err(anyhow::Error::msg)?;
    Ok(SlotSpec { slot: slot.to_owned(), run_id: meta.run_id, sets, origin })
}
