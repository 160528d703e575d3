//! Rendering one target: inputs → ordered, labelled, policy-checked objects.
//! No I/O: the engine holds every template already.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::value::Value as JValue;
use rayon::prelude::*;
use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};

use super::object::{ObjectId, RenderedObject};
use super::overlay::{self, Mount};
use super::plan::{self, Enablement, PlannedComponent, Target};
use super::policy::{self, Rules};
use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::inventory::names::dns_label_problem;
use crate::inventory::values::{self, Overrides};
use crate::inventory::{Component, ComponentKind, Environment, Inventory};
use crate::template::{ComponentContext, Engine, RunContext, TargetContext, TlsContext};

/// Label keys the renderer owns.
pub mod labels {
    /// `app.kubernetes.io/managed-by`.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// `app.kubernetes.io/part-of`.
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    /// `codex-k8s.io/env`.
    pub const ENV: &str = "codex-k8s.io/env";
    /// `codex-k8s.io/slot`.
    pub const SLOT: &str = "codex-k8s.io/slot";
    /// `codex-k8s.io/component`.
    pub const COMPONENT: &str = "codex-k8s.io/component";
    /// `codex-k8s.io/stage`.
    pub const STAGE: &str = "codex-k8s.io/stage";
    /// `codex-k8s.io/role`.
    pub const ROLE: &str = "codex-k8s.io/role";
    /// Value of managed-by.
    pub const MANAGER: &str = "codex-k8s";
    /// Argo CD's sync-wave annotation.
    pub const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
}

/// What to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The target.
    pub target: Target,
    /// Agent run id (slot targets).
    pub run_id: Option<String>,
    /// Overrides (`--set`, `--values`, the slot's recorded ones), checked.
    pub sets: Overrides,
    /// The source it is rendered from (its owner), recorded in `target.json`.
    pub source: Option<super::Source>,
}

/// A rendered target.
#[derive(Debug, Clone)]
pub struct RenderedTarget {
    /// The target.
    pub target: Target,
    /// Its namespace.
    pub namespace: String,
    /// Its host.
    pub host: Option<String>,
    /// The run id used.
    pub run_id: Option<String>,
    /// The overrides used.
    pub sets: Overrides,
    /// The source it was rendered from.
    pub source: Option<super::Source>,
    /// The target's `vars` (the environment's, overrides applied).
    pub vars: Mapping,
    /// The `vars` of components that have values of their own (component
    /// `vars`, `overlays.<env>.vars`), overrides applied.
    pub component_vars: BTreeMap<String, Mapping>,
    /// Components with their verdicts and waves.
    pub plan: Vec<PlannedComponent>,
    /// Objects, ordered by wave then path.
    pub objects: Vec<RenderedObject>,
}

/// An override that cannot be applied to a component's values.
fn override_error(inventory: &Inventory, message: String) -> Diagnostic {
    Diagnostic::error(&inventory.file, None, message)
        .with_help("fix the --set/--values path, or the values it meets in services.yaml")
}

/// The `vars` of `c` in the target when it has values of its own.
fn own_vars(
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

/// minijinja's message without its `(in <string>:1)` suffix.
fn detail(err: &minijinja::Error) -> String {
    err.detail().map(str::to_owned).unwrap_or_else(|| err.kind().to_string())
}

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
        if let Some(why) = super::isolation::reserved_reason(inventory, &ctx.namespace) {
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
        let verdict = if !plan::in_envs(c, &req.target.env) {
            Enablement::NotInEnvs
        } else if let Some(expr) = &c.when {
            let env = inventory.environment(&req.target.env).expect("target_context checked the environment");
            let comp = match own_vars(inventory, env, c, req) {
                Ok(Some(vars)) => {
                    minijinja::context! { component => component_ctx(ctx, c, 0), vars => vars, ..base.clone() }
                }
                Ok(None) => minijinja::context! { component => component_ctx(ctx, c, 0), ..base.clone() },
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
                    let at = c.positions.get("when").copied().unwrap_or(Location { line: c.line, col: 1 });
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
    let agent = plan::agent_enablement(inventory, &req.target, req.run_id.as_deref());
    plan::order(inventory, &verdicts, agent).map_err(|m| {
        Diagnostics(vec![Diagnostic::error(&inventory.file, None, m)
            .with_help("flatten the chain, or move components to separate stages")])
    })
}

fn component_ctx(ctx: &TargetContext, c: &Component, wave: u32) -> ComponentContext {
    ComponentContext {
        name: c.name.clone(),
        stage: c.stage.clone(),
        wave,
        image: c.image.as_ref().and_then(|i| ctx.images.get(i).cloned()),
        depends_on: c.depends_on.clone(),
    }
}

/// One document of rendered template output.
#[derive(Debug)]
struct Document {
    template: PathBuf,
    index: usize,
    value: Value,
}

/// Renders one target.
pub fn render_target(inventory: &Inventory, engine: &Engine, req: &Request) -> Result<RenderedTarget, Diagnostics> {
    let ctx = target_context(inventory, engine, req)?;
    let plan = plan_target(inventory, engine, &ctx, req)?;
    let env = inventory.environment(&req.target.env).expect("target_context checked the environment");
    let base = JValue::from_serialize(&ctx);

    let enabled: Vec<(&PlannedComponent, &Component)> = plan
        .iter()
        .filter(|p| p.enablement == Enablement::Enabled)
        .filter_map(|p| inventory.component(&p.name).map(|c| (p, c)))
        .collect();
    let empty: Vec<Diagnostic> = enabled
        .iter()
        .filter_map(|(_, c)| super::images::check_component_image(inventory, &ctx, c, &req.target))
        .collect();
    if !empty.is_empty() {
        return Err(Diagnostics(empty));
    }
    let jobs: Vec<(usize, &Path)> =
        enabled.iter().enumerate().flat_map(|(i, (_, c))| c.manifests.iter().map(move |m| (i, m.as_path()))).collect();
    let run = req.run_id.as_ref().map(|id| RunContext { id: id.clone() });
    let mut component_vars = BTreeMap::new();
    for (_, c) in &enabled {
        if let Some(vars) = own_vars(inventory, env, c, req).map_err(|d| Diagnostics(vec![d]))? {
            component_vars.insert(c.name.clone(), vars);
        }
    }
    let contexts: Vec<JValue> = enabled
        .iter()
        .map(|(p, c)| {
            let run = if c.kind == ComponentKind::Agent { run.clone() } else { None };
            match component_vars.get(&c.name) {
                Some(vars) => minijinja::context! {
                    component => component_ctx(&ctx, c, p.wave), run => run, vars => vars, ..base.clone()
                },
                None => minijinja::context! { component => component_ctx(&ctx, c, p.wave), run => run, ..base.clone() },
            }
        })
        .collect();

    let max_bytes = inventory.limits.max_output_bytes;
    // (component index, its documents, rendered bytes) per manifest, in manifest order.
    type Rendered = Result<(usize, Vec<Document>, usize), Diagnostic>;
    let rendered: Vec<Rendered> = jobs
        .par_iter()
        .map(|(i, manifest)| {
            let text = engine
                .render_file(manifest, &contexts[*i])
                .map_err(|d| in_component(d, &enabled[*i].1.name, &req.target))?;
            if text.len() as u64 > max_bytes {
                return Err(Diagnostic::error(
                    *manifest,
                    None,
                    format!("template produced {} bytes; the limit per target is {max_bytes}", text.len()),
                )
                .with_help("raise limits.maxOutputBytes if this is intended"));
            }
            let docs =
                split_documents(manifest, &text).map_err(|d| in_component(d, &enabled[*i].1.name, &req.target))?;
            Ok((*i, docs, text.len()))
        })
        .collect();

    let mut diags = Diagnostics::default();
    let mut per_component: Vec<Vec<Document>> = (0..enabled.len()).map(|_| Vec::new()).collect();
    let mut total = 0u64;
    for r in rendered {
        match r {
            Ok((i, docs, len)) => {
                total += len as u64;
                per_component[i].extend(docs);
            }
            Err(d) => diags.push(d),
        }
    }
    if total > max_bytes {
        diags.push(
            Diagnostic::error(
                &inventory.file,
                None,
                format!("target {} renders {total} bytes; the limit is {max_bytes}", req.target),
            )
            .with_help("raise limits.maxOutputBytes if this is intended"),
        );
    }
    if diags.has_errors() {
        return Err(diags);
    }

    let slot_env = env.slots;
    let mut objects = Vec::new();
    for ((p, c), docs) in enabled.iter().zip(per_component) {
        let overlay = c.overlays.get(&env.name);
        let ctx_value = &contexts[objects_index(&enabled, &c.name)];
        let (mounts, env_vars) = match overlay {
            Some(o) => match render_overlay(engine, o, ctx_value) {
                Ok(x) => x,
                Err(e) => {
                    let at = c
                        .positions
                        .get(&format!("overlays.{}", env.name))
                        .copied()
                        .unwrap_or(Location { line: c.line, col: 1 });
                    diags.push(
                        inventory
                            .diagnostic(
                                &c.file,
                                at,
                                format!("cannot render overlay `{}` of component `{}`: {e}", env.name, c.name),
                            )
                            .with_help("overlay strings are templates with the target's context"),
                    );
                    continue;
                }
            },
            None => (Vec::new(), Vec::new()),
        };
        for doc in docs {
            let mut value = doc.value;
            let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
            if overlay.is_some_and(|o| o.drop_kinds.contains(&kind)) {
                continue;
            }
            for m in &mounts {
                overlay::add_pvc_mount(&mut value, m);
            }
            for (k, v) in &env_vars {
                overlay::add_env(&mut value, k, v);
            }
            diags.0.extend(super::images::check_containers(&value, &doc.template, &c.name, &req.target));
            let where_ = format!("document {} of {}", doc.index + 1, doc.template.display());
            let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
            if policy::scope(policy::group_of(api_version), &kind, scope_rules(inventory)) != policy::Scope::Cluster {
                let explicit =
                    value.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str).map(str::to_owned);
                match explicit {
                    Some(ns) if ns != ctx.namespace && slot_env => {
                        diags.push(
                            Diagnostic::error(
                                &doc.template,
                                None,
                                format!(
                                    "{where_}: {kind} sets namespace `{ns}`, but slot target {} must stay in `{}`",
                                    req.target, ctx.namespace
                                ),
                            )
                            .with_help("remove metadata.namespace; codex-k8s sets it"),
                        );
                        continue;
                    }
                    Some(_) => {}
                    None => set_namespace(&mut value, &ctx.namespace),
                }
            }
            if kind == "Job" && c.kind != ComponentKind::Agent && inventory.policy.hash_job_names {
                hash_job_name(&mut value);
            }
            add_labels(&mut value, inventory, &req.target, c, p.wave);
            let Some(id) = ObjectId::of(&value) else {
                diags.push(
                    Diagnostic::error(&doc.template, None, format!("{where_} has no metadata.name"))
                        .with_help("give every object a name"),
                );
                continue;
            };
            objects.push(RenderedObject {
                id,
                component: c.name.clone(),
                stage: c.stage.clone(),
                stage_index: c.stage_index,
                wave: p.wave,
                template: Some(doc.template),
                value,
            });
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    let own_namespace =
        objects.iter().position(|o| o.id.kind == "Namespace" && o.id.name == ctx.namespace && o.id.group().is_empty());
    match (own_namespace, env.manage_namespace) {
        (None, true) => objects.push(namespace_object(inventory, &req.target, &ctx.namespace)),
        (Some(i), false) => {
            let o = &objects[i];
            diags.push(
                Diagnostic::error(
                    o.template.clone().unwrap_or_else(|| inventory.file.clone()),
                    None,
                    format!(
                        "component `{}` renders Namespace `{}`, but environment `{}` has `manageNamespace: false` (target {})",
                        o.component, ctx.namespace, env.name, req.target
                    ),
                )
                .with_help("the namespace belongs to someone else: drop the Namespace from the template, or remove `manageNamespace: false`"),
            );
            return Err(diags);
        }
        _ => {}
    }
    let rules = Rules {
        slot_env,
        namespace: &ctx.namespace,
        allow_plain_secrets: inventory.policy.allow_plain_secrets,
        scopes: scope_rules(inventory),
    };
    for v in policy::check(&objects, rules) {
        let o = &objects[v.object];
        let file = o.template.clone().unwrap_or_else(|| inventory.file.clone());
        diags.push(
            Diagnostic::error(
                file,
                None,
                format!("{} (target {}, component `{}`)", v.message, req.target, o.component),
            )
            .with_help(v.help),
        );
    }
    let mut paths: BTreeMap<String, usize> = BTreeMap::new();
    for (i, o) in objects.iter().enumerate() {
        if let Some(first) = paths.insert(o.path(), i) {
            if objects[first].id != o.id {
                diags.push(
                    Diagnostic::error(
                        o.template.clone().unwrap_or_default(),
                        None,
                        format!("{} and {} would share the file {}", objects[first].id, o.id, o.path()),
                    )
                    .with_help("give them different names"),
                );
            }
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    objects.sort_by_cached_key(|o| (o.wave, o.path()));
    Ok(RenderedTarget {
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
    })
}

/// Names the component and target a template error happened in.
fn in_component(mut d: Diagnostic, component: &str, target: &Target) -> Diagnostic {
    let what = format!("component `{component}`, target {target}");
    // On the first line: the rest may be an excerpt of the rendered text.
    let (first, rest) = match d.message.split_once('\n') {
        Some((f, r)) => (f.to_owned(), format!("\n{r}")),
        None => (d.message.clone(), String::new()),
    };
    let first = match first.strip_suffix(')') {
        Some(head) if head.contains(" (called from ") => format!("{head}; {what})"),
        _ => format!("{first} ({what})"),
    };
    d.message = format!("{first}{rest}");
    d
}

fn objects_index(enabled: &[(&PlannedComponent, &Component)], name: &str) -> usize {
    enabled.iter().position(|(_, c)| c.name == name).expect("component is enabled")
}

type OverlayParts = (Vec<Mount>, Vec<(String, String)>);

fn render_overlay(engine: &Engine, o: &crate::inventory::Overlay, ctx: &JValue) -> Result<OverlayParts, String> {
    let r = |t: &str| engine.render_inline(t, ctx).map_err(|e| detail(&e));
    let mut mounts = Vec::new();
    for m in &o.pvc_mounts {
        let claim_name = r(&m.claim_name)?;
        let volume = match &m.name {
            Some(n) => r(n)?,
            None => crate::inventory::names::to_dns_label(&claim_name),
        };
        mounts.push(Mount {
            volume,
            claim_name,
            mount_path: r(&m.mount_path)?,
            sub_path: m.sub_path.as_deref().map(r).transpose()?,
            read_only: m.read_only,
        });
    }
    let mut env = Vec::new();
    for (k, v) in &o.env {
        env.push((k.clone(), r(v)?));
    }
    Ok((mounts, env))
}

/// Splits rendered text into YAML documents, dropping empty ones; a parse
/// error shows the rendered lines around the fault.
fn split_documents(template: &Path, text: &str) -> Result<Vec<Document>, Diagnostic> {
    let mut chunks: Vec<(usize, String)> = vec![(1, String::new())];
    for (i, line) in text.lines().enumerate() {
        if let Some(glued) = glued_separator(line) {
            return Err(Diagnostic::error(
                template,
                None,
                format!(
                    "rendered line {} has the document separator `---` glued to `{glued}`\n{}",
                    i + 1,
                    excerpt(text, i + 1)
                ),
            )
            .with_help("`---` must be alone on its line; whitespace control (`{%-`, `-%}`, `{{-`) next to it removed the line break — drop the `-` on that side, or put `---` on a line of its own"));
        }
        let is_separator = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_separator {
            chunks.push((i + 2, String::new()));
        } else if line == "..." {
            continue;
        } else {
            let chunk = &mut chunks.last_mut().expect("never empty").1;
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    let mut out = Vec::new();
    for (start, chunk) in chunks {
        if chunk.trim().is_empty() {
            continue;
        }
        let value: Value = serde_yaml::from_str(&chunk).map_err(|e| {
            if let Some(d) = duplicate_key(template, text, &chunk, start) {
                return d;
            }
            let line = e.location().map(|l| l.line() + start - 1).unwrap_or(start).min(text.lines().count().max(1));
            let col = e.location().map(|l| l.column()).unwrap_or(1);
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            Diagnostic::error(
                template,
                None,
                format!(
                    "rendered output is not valid YAML: {msg} (rendered line {line}, column {col})\n{}",
                    excerpt(text, line)
                ),
            )
            .with_help(
                "the template renders this text; check indentation (`nindent`) and quoting around the marked line",
            )
        })?;
        if value.is_null() {
            continue;
        }
        let index = out.len();
        let problem = match &value {
            Value::Mapping(_) => {
                if value.get("apiVersion").and_then(Value::as_str).is_none() {
                    Some("has no `apiVersion`")
                } else if value.get("kind").and_then(Value::as_str).is_none() {
                    Some("has no `kind`")
                } else if value.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).is_none() {
                    Some("has no `metadata.name`")
                } else {
                    None
                }
            }
            _ => Some("is not a mapping (a Kubernetes object)"),
        };
        let name_problem =
            value.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).and_then(object_name_problem);
        let kind_problem = value
            .get("kind")
            .and_then(Value::as_str)
            .filter(|k| !k.chars().all(|c| c.is_ascii_alphanumeric()) || k.is_empty())
            .map(|_| "has a `kind` that is not a Kubernetes kind name (letters and digits only)".to_owned());
        let problem = problem.map(str::to_owned).or(kind_problem).or(name_problem);
        if let Some(p) = problem {
            return Err(Diagnostic::error(
                template,
                None,
                format!(
                    "rendered document {} (starting at rendered line {start}) {p}\n{}",
                    index + 1,
                    excerpt(text, start)
                ),
            )
            .with_help("every document must be one Kubernetes object with apiVersion, kind and metadata.name"));
        }
        out.push(Document { template: template.to_path_buf(), index, value });
    }
    Ok(out)
}

/// The text after a `---` at the start of `line` when that is content (a
/// key, a value): whitespace control glued the next line to the separator.
fn glued_separator(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("---")?;
    if rest.starts_with('-') {
        return None;
    }
    let content = rest.trim_start();
    (!content.is_empty() && !content.starts_with('#')).then_some(content)
}

/// A duplicate key in document `chunk` (starting at rendered line
/// `start`), reported at the key's own rendered line: serde_yaml names only
/// the mapping's first line.
fn duplicate_key(template: &Path, text: &str, chunk: &str, start: usize) -> Option<Diagnostic> {
    let err = crate::inventory::yaml::load(chunk).err()?;
    if !err.message.starts_with("duplicate key") {
        return None;
    }
    let line = err.location.line + start - 1;
    let re = regex::Regex::new(r" \(first defined at line (\d+)\)").expect("static regex");
    let message = re
        .replace(&err.message, |c: &regex::Captures| {
            let first: usize = c[1].parse().unwrap_or(1);
            format!(" at rendered line {line} (first at rendered line {})", first + start - 1)
        })
        .into_owned();
    Some(
        Diagnostic::error(
            template,
            None,
            format!("rendered output has a {message}\n{}", excerpt(text, line)),
        )
        .with_help("the template renders this key twice in one mapping; remove one, or merge them (a partial and the template setting the same key?)"),
    )
}

/// Why `name` cannot be an object name (a DNS-1123 subdomain, which also
/// keeps it from escaping its directory as a file name), or `None`.
fn object_name_problem(name: &str) -> Option<String> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.split('.').all(|part| !part.is_empty() && !part.starts_with('-') && !part.ends_with('-'));
    (!valid).then(|| format!("has `metadata.name: {name}`, which is not a DNS-1123 subdomain (lower-case letters, digits, `-` and `.`, at most 253 characters)"))
}

/// The rendered lines around `line`, numbered, the line itself marked.
pub fn excerpt(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let line = line.clamp(1, lines.len().max(1));
    let from = line.saturating_sub(3).max(1);
    let to = (line + 2).min(lines.len());
    let width = to.to_string().len();
    let mut out = String::new();
    for n in from..=to {
        let marker = if n == line { ">" } else { " " };
        out.push_str(&format!("  {marker} {n:>width$} | {}\n", lines.get(n - 1).unwrap_or(&"")));
    }
    out.trim_end().to_owned()
}

/// `map[key]` as a mapping: inserted empty when absent, replaced by an empty
/// one when it holds something else.
fn child_mapping<'a>(map: &'a mut Mapping, key: &str) -> &'a mut Mapping {
    let entry = map.entry(Value::from(key)).or_insert(Value::Null);
    if !entry.is_mapping() {
        *entry = Value::Mapping(Mapping::new());
    }
    // Invariant: `entry` was a mapping or was replaced by one on the line above.
    entry.as_mapping_mut().expect("child_mapping: just made a mapping")
}

/// The document's `metadata`, created when absent; `None` for a document
/// that is not a mapping (`split_documents` refuses those before any of this runs).
fn metadata_mut(value: &mut Value) -> Option<&mut Mapping> {
    Some(child_mapping(value.as_mapping_mut()?, "metadata"))
}

/// Sets metadata.namespace right after metadata.name, so files read naturally.
fn set_namespace(value: &mut Value, namespace: &str) {
    let Some(meta) = metadata_mut(value) else { return };
    let old = std::mem::take(meta);
    for (k, v) in old {
        let is_name = k.as_str() == Some("name");
        meta.insert(k, v);
        if is_name {
            meta.insert("namespace".into(), namespace.into());
        }
    }
    if !meta.contains_key("namespace") {
        meta.insert("namespace".into(), namespace.into());
    }
}

/// Suffixes a Job's name with 8 hex digits of the sha256 of its spec: Jobs
/// are immutable, so a changed Job must be a new Job.
fn hash_job_name(value: &mut Value) {
    let spec = value.get("spec").map(super::emit::to_yaml).unwrap_or_default();
    let digest = hex::encode(Sha256::digest(spec.as_bytes()));
    let Some(meta) = metadata_mut(value) else { return };
    if let Some(name) = meta.get("name").and_then(Value::as_str) {
        // Job names feed the `job-name` label of their pods: 63 characters at most.
        let base: String = name.chars().take(63 - 9).collect();
        let base = base.trim_end_matches('-');
        meta.insert("name".into(), format!("{base}-{}", &digest[..8]).into());
    }
}

fn add_labels(value: &mut Value, inventory: &Inventory, target: &Target, c: &Component, wave: u32) {
    let Some(meta) = metadata_mut(value) else { return };
    let labels = child_mapping(meta, "labels");
    labels.insert(labels::MANAGED_BY.into(), labels::MANAGER.into());
    labels.insert(labels::PART_OF.into(), inventory.project.clone().into());
    labels.insert(labels::ENV.into(), target.env.clone().into());
    if let Some(slot) = &target.slot {
        labels.insert(labels::SLOT.into(), slot.clone().into());
    }
    labels.insert(labels::COMPONENT.into(), c.name.clone().into());
    labels.insert(labels::STAGE.into(), c.stage.clone().into());
    if c.kind == ComponentKind::Agent {
        labels.insert(labels::ROLE.into(), "agent".into());
    }
    child_mapping(meta, "annotations").insert(labels::SYNC_WAVE.into(), wave.to_string().into());
}

fn namespace_object(inventory: &Inventory, target: &Target, namespace: &str) -> RenderedObject {
    let first = inventory.stages.first().cloned().unwrap_or_default();
    let component = Component {
        name: "namespace".into(),
        kind: ComponentKind::Infrastructure,
        stage: first.clone(),
        stage_index: 0,
        depends_on: Vec::new(),
        when: None,
        envs: None,
        image: None,
        manifests: Vec::new(),
        overlays: BTreeMap::new(),
        vars: Mapping::new(),
        presets: Vec::new(),
        file: inventory.file.clone(),
        line: 0,
        positions: BTreeMap::new(),
    };
    // Built as a value, not parsed from text: the namespace comes from a template.
    let mut metadata = Mapping::new();
    metadata.insert("name".into(), namespace.into());
    let mut object = Mapping::new();
    object.insert("apiVersion".into(), "v1".into());
    object.insert("kind".into(), "Namespace".into());
    object.insert("metadata".into(), Value::Mapping(metadata));
    let mut value = Value::Mapping(object);
    add_labels(&mut value, inventory, target, &component, 0);
    RenderedObject {
        id: ObjectId { api_version: "v1".into(), kind: "Namespace".into(), namespace: None, name: namespace.into() },
        component: "namespace".into(),
        stage: first,
        stage_index: 0,
        wave: 0,
        template: None,
        value,
    }
}

/// The inventory's declarations about kind scopes.
fn scope_rules(inventory: &Inventory) -> policy::ScopeRules<'_> {
    policy::ScopeRules {
        cluster: &inventory.policy.cluster_scoped_kinds,
        namespaced: &inventory.policy.namespaced_kinds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_drops_empty_documents_and_keeps_order() {
        let docs = split_documents(Path::new("t"), "---\n\n---\napiVersion: v1\nkind: A\nmetadata: {name: a}\n---\n# only a comment\n---\napiVersion: v1\nkind: B\nmetadata: {name: b}\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value["kind"], "B");
    }

    #[test]
    fn split_reports_the_rendered_line_with_an_excerpt() {
        let err = split_documents(
            Path::new("t.j2"),
            "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: B\n  bad: [\n",
        )
        .unwrap_err();
        assert!(err.message.contains("rendered line 7"), "{}", err.message);
        assert!(err.message.contains("> 7 |   bad: ["), "{}", err.message);
    }

    /// serde_yaml reports a duplicate key at the start of its mapping; the
    /// report must name the key's own line.
    #[test]
    fn split_reports_a_duplicate_key_at_its_own_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  x: \"1\"\n  y: \"2\"\n  x: \"3\"\n";
        let err =
            split_documents(Path::new("t.j2"), &format!("apiVersion: v1\nkind: A\nmetadata: {{name: z}}\n---\n{text}"))
                .unwrap_err();
        assert!(err.message.contains("duplicate key `x`"), "{}", err.message);
        assert!(err.message.contains("rendered line 12"), "{}", err.message);
        assert!(err.message.contains("first at rendered line 10"), "{}", err.message);
        assert!(err.message.contains("> 12 |   x: \"3\""), "{}", err.message);
    }

    /// `{%- endfor %}` before `---` glues the separator to the next line.
    #[test]
    fn split_names_a_separator_glued_to_the_next_line() {
        for glued in ["---apiVersion: v1", "---kind: B", "--- apiVersion: v1", "---\tkind: B"] {
            let text =
                format!("apiVersion: v1\nkind: A\nmetadata: {{name: a}}\n{glued}\nkind: B\nmetadata: {{name: b}}\n");
            let err = split_documents(Path::new("t.j2"), &text).unwrap_err();
            assert!(err.message.contains("rendered line 4"), "{glued}: {}", err.message);
            assert!(err.message.contains("`---` glued to"), "{glued}: {}", err.message);
            assert!(err.help.as_deref().unwrap_or_default().contains("whitespace control"), "{glued}: {:?}", err.help);
        }
    }

    #[test]
    fn split_rejects_non_objects() {
        let err = split_documents(Path::new("t.j2"), "- a\n- b\n").unwrap_err();
        assert!(err.message.contains("not a mapping"), "{}", err.message);
        let err = split_documents(Path::new("t.j2"), "apiVersion: v1\nmetadata: {name: a}\n").unwrap_err();
        assert!(err.message.contains("no `kind`"), "{}", err.message);
    }

    #[test]
    fn job_names_get_a_spec_hash_that_changes_with_the_spec() {
        let mut a: Value = serde_yaml::from_str("kind: Job\nmetadata: {name: migrate}\nspec: {x: 1}\n").unwrap();
        let mut b: Value = serde_yaml::from_str("kind: Job\nmetadata: {name: migrate}\nspec: {x: 2}\n").unwrap();
        hash_job_name(&mut a);
        hash_job_name(&mut b);
        let (na, nb) = (a["metadata"]["name"].as_str().unwrap(), b["metadata"]["name"].as_str().unwrap());
        assert!(na.starts_with("migrate-") && na.len() == "migrate-".len() + 8, "{na}");
        assert_ne!(na, nb);
    }

    #[test]
    fn namespace_goes_right_after_the_name() {
        let mut v: Value = serde_yaml::from_str("metadata: {name: a, labels: {x: y}}\n").unwrap();
        set_namespace(&mut v, "ns");
        let keys: Vec<_> = v["metadata"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_owned()).collect();
        assert_eq!(keys, ["name", "namespace", "labels"]);
    }
}
