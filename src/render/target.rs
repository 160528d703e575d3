//! Rendering one target: inputs → ordered, labelled, policy-checked objects.
//! No I/O: the engine holds every template already.
//!
//! [`render_target`] is a pipeline of named steps: the target's context
//! (`context.rs`), the plan (`plan.rs`), the components' contexts (here),
//! their manifests rendered and split into documents (`documents.rs`), the
//! documents placed as objects (`place.rs`), then the target's checks
//! (`checks.rs`: policy, then every reference, `refs/`).

use std::collections::BTreeMap;

use minijinja::value::Value as JValue;
use serde_yaml::Mapping;

use super::context::{component_ctx, own_vars, target_context};
use super::documents::render_manifests;
use super::memo::{Fingerprints, TargetPrints};
use super::nouns::{Enablement, PlannedComponent, RenderedTarget, Request, Target};
use super::object::RenderedObject;
use super::part::Part;
use super::place::Placement;
use super::plan::plan_target;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::inventory::{Component, ComponentKind, Environment, Inventory};
use crate::template::{component_scope, Engine, RunContext, TargetContext};

/// Renders one target.
pub fn render_target(inventory: &Inventory, engine: &Engine, req: &Request) -> Result<RenderedTarget, Diagnostics> {
    let ctx = target_context(inventory, engine, req)?;
    let plan = plan_target(inventory, engine, &ctx, req)?;
    let env = inventory.environment(&req.target.env).expect("target_context checked the environment");
    let enabled = enabled(inventory, &plan);
    check_images(inventory, &ctx, &enabled, &req.target)?;
    let component_vars = component_vars(inventory, env, &enabled, req)?;
    let parts = parts(&ctx, enabled, &component_vars, req);
    let documents = render_manifests(inventory, engine, &parts, &req.target)?;
    let placement = Placement { inventory, env, target: &req.target, namespace: &ctx.namespace };
    let mut objects = placement.objects(engine, &parts, documents)?;
    objects.extend(super::generated::objects(inventory, engine, env, &req.target, &ctx)?);
    placement.own_namespace(&mut objects)?;
    placement.check(&objects)?;
    placement.references(engine, &objects, &provided(inventory, engine, env, &ctx))?;
    Ok(assemble(req, ctx, component_vars, plan, objects))
}

/// The Secrets a target may read that none of its objects creates: the
/// `secrets:` of its environment declared `provided` (out of band), by
/// rendered name, with their keys. The other secrets are ExternalSecret
/// objects of the target by now (`generated.rs`), which also reported any
/// name that does not render.
fn provided(inventory: &Inventory, engine: &Engine, env: &Environment, ctx: &TargetContext) -> super::Provided {
    let context = JValue::from_serialize(ctx);
    let mut out = super::Provided::default();
    for s in inventory.secrets.iter().filter(|s| s.envs.as_ref().is_none_or(|l| l.contains(&env.name))) {
        let Some(keys) = &s.provided else { continue };
        let Ok(name) = engine.render_inline(&s.name, &context) else { continue };
        // `provided: []` declares the name only: any key resolves.
        let keys = if keys.is_empty() { super::Keys::Any } else { super::Keys::of(keys.iter().map(String::as_str)) };
        out.secrets.insert(name, keys);
    }
    out
}

/// The enabled components of `plan`, in plan order.
fn enabled<'a>(inventory: &'a Inventory, plan: &'a [PlannedComponent]) -> Vec<(&'a PlannedComponent, &'a Component)> {
    plan.iter()
        .filter(|p| p.enablement == Enablement::Enabled)
        .filter_map(|p| inventory.component(&p.name).map(|c| (p, c)))
        .collect()
}

/// Refuses the target when an enabled component's image rendered an empty
/// repository or tag (every such component reported).
fn check_images(
    inventory: &Inventory,
    ctx: &TargetContext,
    enabled: &[(&PlannedComponent, &Component)],
    target: &Target,
) -> Result<(), Diagnostics> {
    let empty: Vec<Diagnostic> =
        enabled.iter().filter_map(|(_, c)| super::images::check_component_image(inventory, ctx, c, target)).collect();
    if !empty.is_empty() {
        return Err(Diagnostics(empty));
    }
    Ok(())
}

/// The `vars` of the enabled components that have values of their own,
/// overrides applied; the first override that does not apply is the error.
fn component_vars(
    inventory: &Inventory,
    env: &Environment,
    enabled: &[(&PlannedComponent, &Component)],
    req: &Request,
) -> Result<BTreeMap<String, Mapping>, Diagnostics> {
    let mut out = BTreeMap::new();
    for (_, c) in enabled {
        if let Some(vars) = own_vars(inventory, env, c, req).map_err(|d| Diagnostics(vec![d]))? {
            out.insert(c.name.clone(), vars);
        }
    }
    Ok(out)
}

/// Each enabled component with its template context: the target's, plus
/// `component`, `run` (the agent only) and its own `vars` where it has them.
fn parts<'a>(
    ctx: &TargetContext,
    enabled: Vec<(&'a PlannedComponent, &'a Component)>,
    component_vars: &BTreeMap<String, Mapping>,
    req: &Request,
) -> Vec<Part<'a>> {
    let base = JValue::from_serialize(ctx);
    let run = req.run_id.as_ref().map(|id| RunContext { id: id.clone() });
    let target_prints = TargetPrints::default();
    enabled
        .into_iter()
        .map(|(planned, c)| {
            let run = if c.kind == ComponentKind::Agent { run.clone() } else { None };
            let component = component_ctx(ctx, c, planned.wave);
            let own_vars = component_vars.get(&c.name);
            let prints = Fingerprints::new(&target_prints, own_vars.is_some());
            let context = component_scope(&base, component, run, own_vars);
            Part { planned, component: c, context, prints }
        })
        .collect()
}

/// The rendered target: objects ordered by wave, then path.
fn assemble(
    req: &Request,
    ctx: TargetContext,
    component_vars: BTreeMap<String, Mapping>,
    plan: Vec<PlannedComponent>,
    mut objects: Vec<RenderedObject>,
) -> RenderedTarget {
    objects.sort_by_cached_key(|o| (o.wave, o.path()));
    RenderedTarget {
        target: req.target.clone(),
        namespace: ctx.namespace,
        host: ctx.host,
        run_id: req.run_id.clone(),
        sets: req.sets.clone(),
        source: req.source.clone(),
        vars: ctx.vars,
        component_vars,
        plan,
        objects,
    }
}
