//! The template context of a target: namespace, host and images rendered
//! from the inventory's inline templates, in that order (each sees what
//! the previous ones produced), and the `component` every template of a
//! component sees.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::value::Value as JValue;
use serde_yaml::Mapping;

use super::nouns::Request;
use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::inventory::names::dns_label_problem;
use crate::inventory::values;
use crate::inventory::{Component, Environment, Inventory};
use crate::template::{detail, ComponentContext, Engine, SourceContext, TargetContext, TlsContext};

/// Namespaces of the cluster itself, never a slot's.
pub const RESERVED_NAMESPACES: [&str; 4] = ["kube-system", "kube-public", "kube-node-lease", "default"];

/// Why `namespace` may not be a slot's, if it may not: the cluster's own
/// namespaces, the GitOps controllers' (`gitops.argocd.namespace`,
/// `gitops.flux.namespace`) and `policy.reservedNamespaces`.
pub fn reserved_reason(inventory: &Inventory, namespace: &str) -> Option<&'static str> {
    if RESERVED_NAMESPACES.contains(&namespace) {
        Some("a namespace of the cluster itself")
    } else if namespace == inventory.gitops.argocd_namespace {
        Some("Argo CD's namespace (gitops)")
    } else if namespace == inventory.gitops.flux_namespace {
        Some("Flux's namespace (gitops)")
    } else if inventory.policy.reserved_namespaces.iter().any(|n| n == namespace) {
        Some("listed in policy.reservedNamespaces")
    } else {
        None
    }
}

/// An override that cannot be applied to a component's values.
pub(super) fn override_error(inventory: &Inventory, message: String) -> Diagnostic {
    Diagnostic::error(&inventory.file, None, message)
        .with_help("fix the --set/--values path, or the values it meets in services.yaml")
}

/// The `vars` of `c` in the target when it has values of its own.
pub(super) fn own_vars(
    inventory: &Inventory,
    env: &Environment,
    c: &Component,
    req: &Request,
) -> Result<Option<Mapping>, Diagnostic> {
    if !values::has_own_vars(env, c) {
        return Ok(None);
    }
    values::component_vars(env, Some(c), &req.sets).map(Some).map_err(|e| override_error(inventory, e))
}

/// An inline template of environment `env` (namespace, domain, image) that
/// does not render, at its place `at`.
fn inline_error(
    inventory: &Inventory,
    at: (&Path, Location),
    what: &str,
    env: &Environment,
    err: &minijinja::Error,
) -> Diagnostic {
    inventory
        .diagnostic(at.0, at.1, format!("cannot render {what} of environment `{}`: {}", env.name, detail(err)))
        .with_help("fix the template; it sees project, env, slot, namespace, host, versions and vars")
}

/// Where field `key` of `env` is written.
fn env_position<'a>(env: &'a Environment, key: &str) -> (&'a Path, Location) {
    match env.positions.get(key) {
        Some((file, loc)) => (file.as_path(), *loc),
        None => (env.file.as_path(), Location { line: 1, col: 1 }),
    }
}

/// Builds the per-target template context (namespace, host, images rendered).
pub fn target_context(inventory: &Inventory, engine: &Engine, req: &Request) -> Result<TargetContext, Diagnostics> {
    let fail = |d: Diagnostic| Diagnostics(vec![d]);
    let Some(env) = inventory.environment(&req.target.env) else {
        return Err(fail(Diagnostic::error(
            &inventory.file,
            None,
            format!("unknown environment `{}`", req.target.env),
        )));
    };
    let mut versions = inventory.versions.clone();
    versions.extend(req.sets.versions().iter().map(|(k, v)| (k.clone(), v.clone())));
    let vars = values::component_vars(env, None, &req.sets).map_err(|e| fail(override_error(inventory, e)))?;
    let mut ctx = TargetContext {
        project: inventory.project.clone(),
        env: env.name.clone(),
        slot: req.target.slot.clone(),
        namespace: String::new(),
        host: None,
        tls: env.tls.as_ref().map(TlsContext::from),
        versions,
        images: BTreeMap::new(),
        source: req.source.as_ref().map(|s| SourceContext { git_ref: s.git_ref.clone(), commit: s.commit.clone() }),
        vars,
        empty_images: BTreeMap::new(),
    };
    let value = JValue::from_serialize(&ctx);
    ctx.namespace = engine
        .render_inline(&env.namespace, &value)
        .map_err(|e| fail(inline_error(inventory, env_position(env, "namespace"), "the namespace", env, &e)))?;
    if let Some(problem) = dns_label_problem(&ctx.namespace) {
        return Err(fail(
            Diagnostic::error(
                &env.file,
                None,
                format!("namespace `{}` of target {} {problem}", ctx.namespace, req.target),
            )
            .with_help("namespaces are DNS-1123 labels; shorten the slot name or the namespace template"),
        ));
    }
    if req.target.slot.is_some() {
        if let Some(why) = reserved_reason(inventory, &ctx.namespace) {
            return Err(fail(
                Diagnostic::error(
                    &env.file,
                    None,
                    format!("namespace `{}` of slot target {} is {why}; a slot may not render into it", ctx.namespace, req.target),
                )
                .with_help("the slot would be labelled as one and deleted by the watcher when idle; make the namespace template include {{ slot }}"),
            ));
        }
    }
    let value = JValue::from_serialize(&ctx);
    if let Some(domain) = &env.domain {
        ctx.host = Some(
            engine
                .render_inline(domain, &value)
                .map_err(|e| fail(inline_error(inventory, env_position(env, "domain"), "the domain", env, &e)))?,
        );
    }
    let value = JValue::from_serialize(&ctx);
    for (name, image) in &inventory.images {
        let repo = engine.render_inline(&image.repository, &value).map_err(|e| {
            fail(inline_error(
                inventory,
                (&image.file, image.positions.0),
                &format!("images.{name}.repository"),
                env,
                &e,
            ))
        })?;
        let tag = engine.render_inline(&image.tag, &value).map_err(|e| {
            fail(inline_error(inventory, (&image.file, image.positions.1), &format!("images.{name}.tag"), env, &e))
        })?;
        if repo.trim().is_empty() || tag.trim().is_empty() {
            let part = if repo.trim().is_empty() { "repository" } else { "tag" };
            ctx.empty_images.insert(name.clone(), part);
        }
        ctx.images.insert(name.clone(), format!("{repo}:{tag}"));
    }
    Ok(ctx)
}

/// `component` as the templates of component `c` at `wave` see it.
pub(super) fn component_ctx(ctx: &TargetContext, c: &Component, wave: u32) -> ComponentContext {
    ComponentContext {
        name: c.name.clone(),
        stage: c.stage.clone(),
        wave,
        image: c.image.as_ref().and_then(|i| ctx.images.get(i).cloned()),
        depends_on: c.depends_on.clone(),
    }
}
