//! Which components a target renders, in which order, at which wave.
//!
//! wave = 10 × stage index + depth of the component's `dependsOn` chain inside
//! its stage (counting enabled components only); the agent comes after the
//! last stage. Order: stage, then depth, then file order.

use std::collections::BTreeMap;

use minijinja::value::Value as JValue;

use super::context::{component_ctx, own_vars};
use super::nouns::{Enablement, PlannedComponent, Request, Target};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::inventory::yaml::YamlPath;
use crate::inventory::{Component, ComponentKind, Inventory};
use crate::template::{component_scope, detail, Engine, TargetContext};

/// Deepest `dependsOn` chain inside one stage that still fits the wave numbering.
pub const MAX_DEPTH_IN_STAGE: u32 = 9;

/// Computes depths and waves for the enabled components (`enabled[i]` is the
/// verdict for `components[i]`) and returns them ordered for rendering.
/// Errors when a chain inside one stage is deeper than [`MAX_DEPTH_IN_STAGE`].
pub fn order(
    inventory: &Inventory,
    enabled: &[Enablement],
    agent: Option<Enablement>,
) -> Result<Vec<PlannedComponent>, String> {
    let comps = &inventory.components;
    let by_name: BTreeMap<&str, usize> = comps.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
    let mut depth: Vec<Option<u32>> = vec![None; comps.len()];
    fn depth_of(
        i: usize,
        comps: &[Component],
        by_name: &BTreeMap<&str, usize>,
        enabled: &[Enablement],
        memo: &mut [Option<u32>],
        guard: usize,
    ) -> u32 {
        if let Some(d) = memo[i] {
            return d;
        }
        if guard > comps.len() {
            return 0; // cycles are rejected at load; this only bounds recursion
        }
        let mut d = 0;
        for dep in &comps[i].depends_on {
            if let Some(&j) = by_name.get(dep.as_str()) {
                if j != i && comps[j].stage_index == comps[i].stage_index && enabled[j] == Enablement::Enabled {
                    d = d.max(1 + depth_of(j, comps, by_name, enabled, memo, guard + 1));
                }
            }
        }
        memo[i] = Some(d);
        d
    }
    let mut out = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        let d = depth_of(i, comps, &by_name, enabled, &mut depth, 0);
        if d > MAX_DEPTH_IN_STAGE && enabled[i] == Enablement::Enabled {
            return Err(format!(
                "component `{}` sits {d} dependencies deep inside stage `{}`; at most {MAX_DEPTH_IN_STAGE} fit between two stages' waves",
                c.name, c.stage
            ));
        }
        out.push(PlannedComponent {
            name: c.name.clone(),
            stage: c.stage.clone(),
            stage_index: c.stage_index,
            depth: d,
            wave: 10 * c.stage_index as u32 + d,
            enablement: enabled[i].clone(),
            depends_on: c.depends_on.clone(),
        });
    }
    // Stable sort keeps file order among equals.
    out.sort_by_key(|p| (p.stage_index, p.depth));
    if let (Some(a), Some(e)) = (&inventory.agent, agent) {
        out.push(PlannedComponent {
            name: a.name.clone(),
            stage: a.stage.clone(),
            stage_index: a.stage_index,
            depth: 0,
            wave: inventory.agent_wave(),
            enablement: e,
            depends_on: Vec::new(),
        });
    }
    Ok(out)
}

/// Whether `envs` admits `env` for component `c`.
pub fn in_envs(c: &Component, env: &str) -> bool {
    c.envs.as_ref().is_none_or(|list| list.iter().any(|e| e == env))
}

/// The agent's verdict for a target.
pub fn agent_enablement(inventory: &Inventory, target: &Target, run_id: Option<&str>) -> Option<Enablement> {
    let agent = inventory.agent.as_ref()?;
    debug_assert_eq!(agent.kind, ComponentKind::Agent);
    let env = inventory.environment(&target.env)?;
    Some(if !env.slots {
        Enablement::AgentIdle("the agent runs only in slot environments".into())
    } else if !in_envs(agent, &target.env) {
        Enablement::NotInEnvs
    } else if run_id.is_none() {
        Enablement::AgentIdle("no run id yet (pass --run-id)".into())
    } else {
        Enablement::Enabled
    })
}

/// Decides which components a target renders (`envs`, `when`, agent rules).
pub fn plan_target(
    inventory: &Inventory,
    engine: &Engine,
    ctx: &TargetContext,
    req: &Request,
) -> Result<Vec<PlannedComponent>, Diagnostics> {
    let base = JValue::from_serialize(ctx);
    let mut diags = Diagnostics::default();
    let mut verdicts = Vec::with_capacity(inventory.components.len());
    for c in &inventory.components {
        let verdict = if !in_envs(c, &req.target.env) {
            Enablement::NotInEnvs
        } else if let Some(expr) = &c.when {
            let env = inventory.environment(&req.target.env).expect("target_context checked the environment");
            let comp = match own_vars(inventory, env, c, req) {
                Ok(vars) => component_scope(&base, component_ctx(ctx, c, 0), None, vars.as_ref()),
                Err(d) => {
                    diags.push(d);
                    verdicts.push(Enablement::WhenFalse);
                    continue;
                }
            };
            match engine.eval_bool(expr, &comp) {
                Ok(true) => Enablement::Enabled,
                Ok(false) => Enablement::WhenFalse,
                Err(e) => {
                    let at = c.location(&YamlPath::default().key("when"));
                    diags.push(
                        inventory
                            .diagnostic(
                                &c.file,
                                at,
                                format!("`when` of component `{}` failed in {}: {}", c.name, req.target, detail(&e)),
                            )
                            .with_help(
                                "`when` is a minijinja expression yielding true or false, e.g. \"env != 'staging'\"",
                            ),
                    );
                    Enablement::WhenFalse
                }
            }
        } else {
            Enablement::Enabled
        };
        verdicts.push(verdict);
    }
    if diags.has_errors() {
        return Err(diags);
    }
    let agent = agent_enablement(inventory, &req.target, req.run_id.as_deref());
    order(inventory, &verdicts, agent).map_err(|m| {
        Diagnostics(vec![Diagnostic::error(&inventory.file, None, m)
            .with_help("flatten the chain, or move components to separate stages")])
    })
}

/// Warnings for a dependency that is off where its dependent is on: Argo CD
/// and Flux then wait on nothing, and the dependent may start before what
/// it needs. One per (dependent, dependency) of `plan`, at the dependent.
pub fn disabled_dependencies(inventory: &Inventory, target: &Target, plan: &[PlannedComponent]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for p in plan.iter().filter(|p| p.enablement == Enablement::Enabled) {
        for dep in &p.depends_on {
            let Some(d) = plan.iter().find(|d| &d.name == dep && d.enablement != Enablement::Enabled) else {
                continue;
            };
            let (file, line) = inventory
                .component(&p.name)
                .map(|c| (c.file.clone(), c.line))
                .unwrap_or_else(|| (inventory.file.clone(), 1));
            out.push(
                Diagnostic::warning(
                    &file,
                    Some(crate::diagnostic::Location { line, col: 1 }),
                    format!(
                        "component `{}` depends on `{}`, which is disabled in environment `{}` ({:?})",
                        p.name, d.name, target.env, d.enablement
                    ),
                )
                .with_help("enable the dependency there too, or make the dependent's `when`/`envs` match"),
            );
        }
    }
    out
}
