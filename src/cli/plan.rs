//! `codex-k8s plan`: a target's stages, waves, components (enabled or why
//! not), dependency edges and objects, and what rendering would change.

use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use super::targets::{self, RequestArgs};
use super::{exit, load_project, Output, Project};
use crate::inventory::names::SlotName;
use crate::render::{needs, render_target, Enablement, Needs, PlannedComponent};
use crate::tree;

/// Arguments of `plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment.
    #[arg(long, value_name = "ENV", add = clap_complete::ArgValueCandidates::new(super::complete::environments))]
    env: String,
    /// Slot (slot environments).
    #[arg(long, value_name = "SLOT", add = clap_complete::ArgValueCandidates::new(super::complete::slots))]
    slot: Option<SlotName>,
    #[command(flatten)]
    request: RequestArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Plan formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable.
    Text,
    /// Machine-readable.
    Json,
    /// Mermaid flowchart.
    Mermaid,
    /// Graphviz.
    Dot,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanView {
    target: String,
    namespace: String,
    host: Option<String>,
    /// Overrides in effect (`--set`, `--values`, the slot's recorded ones).
    overrides: std::collections::BTreeMap<String, serde_json::Value>,
    stages: Vec<StageView>,
    /// What the cluster must have for this target (declared under
    /// `prerequisites` in the inventory): the classes, issuers and CRDs its
    /// objects use and do not render.
    prerequisites: Needs,
    changes: Vec<tree::Change>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StageView {
    name: String,
    dir: String,
    components: Vec<ComponentView>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ComponentView {
    #[serde(flatten)]
    plan: PlannedComponent,
    /// The presets it uses, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    presets: Vec<String>,
    /// The component's `vars` when it has values of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    vars: Option<serde_yaml::Mapping>,
    /// Its values that differ from the target's `vars` (dotted path → value).
    #[serde(skip)]
    own: Vec<(String, String)>,
    objects: Vec<String>,
}

/// Prints the plan.
pub fn run(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
    let Project { inventory, engine } = load_project(file, out)?;
    let out_dir = targets::out_dir(&inventory, &args.request.out)?;
    let selection =
        targets::Selection { env: Some(args.env.clone()), slots: args.slot.clone().into_iter().collect(), all: false };
    let requests = targets::requests(&inventory, &selection, &args.request, &targets::DiskTree(&out_dir))?;
    let [request] = requests.as_slice() else { bail!("plan shows one target") };
    let rendered = match render_target(&inventory, &engine, request) {
        Ok(r) => r,
        Err(ds) => {
            out.diagnostics(&ds)?;
            return Err(super::Reported.into());
        }
    };
    let digest = tree::inputs_digest(&inventory)?;
    let prefix = targets::out_prefix(&inventory, &out_dir);
    let desired = tree::desired(&inventory, std::slice::from_ref(&rendered), &digest, &prefix);
    let changes = tree::changes(&out_dir, &desired)?;

    let mut stages: Vec<StageView> = Vec::new();
    for p in &rendered.plan {
        let dir = crate::layout::stage_dir(p.stage_index, &p.stage);
        if stages.last().is_none_or(|s| s.dir != dir) {
            stages.push(StageView { name: p.stage.clone(), dir: dir.clone(), components: Vec::new() });
        }
        let objects = rendered.objects.iter().filter(|o| o.component == p.name).map(|o| o.id.to_string()).collect();
        let vars = rendered.component_vars.get(&p.name).cloned();
        let own = vars.as_ref().map(|v| differences(v, &rendered.vars)).unwrap_or_default();
        let presets = inventory.component(&p.name).map(|c| c.presets.clone()).unwrap_or_default();
        stages.last_mut().expect("just pushed").components.push(ComponentView {
            plan: p.clone(),
            presets,
            vars,
            own,
            objects,
        });
    }
    let view = PlanView {
        target: rendered.target.dir(),
        namespace: rendered.namespace.clone(),
        host: rendered.host.clone(),
        overrides: rendered.sets.recorded(),
        stages,
        prerequisites: needs(&rendered.objects),
        changes,
    };
    match args.format {
        Format::Json => writeln!(out.out, "{}", serde_json::to_string_pretty(&view)?)?,
        Format::Text => print_text(&view, out)?,
        Format::Mermaid => print_graph(&view, out, true)?,
        Format::Dot => print_graph(&view, out, false)?,
    }
    Ok(exit::OK)
}

/// Leaves of `vars` that differ from (or are missing in) `base`, as
/// `path=value` in YAML flow style, sorted by path.
fn differences(vars: &serde_yaml::Mapping, base: &serde_yaml::Mapping) -> Vec<(String, String)> {
    fn walk(v: &serde_yaml::Value, base: Option<&serde_yaml::Value>, path: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_yaml::Value::Mapping(m) if !m.is_empty() => {
                for (k, item) in m {
                    let key = k.as_str().map(str::to_owned).unwrap_or_else(|| flow(k));
                    let p = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    walk(item, base.and_then(|b| b.get(k)), &p, out);
                }
            }
            _ if base == Some(v) => {}
            _ => out.push((path.to_owned(), flow(v))),
        }
    }
    let mut out = Vec::new();
    walk(&serde_yaml::Value::Mapping(vars.clone()), Some(&serde_yaml::Value::Mapping(base.clone())), "", &mut out);
    out.sort();
    out
}

/// A value on one line: JSON, which is YAML flow style.
fn flow(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn reason(e: &Enablement) -> String {
    match e {
        Enablement::Enabled => "enabled".into(),
        Enablement::NotInEnvs => "disabled: not in `envs`".into(),
        Enablement::WhenFalse => "disabled: `when` is false".into(),
        Enablement::AgentIdle(why) => format!("disabled: {why}"),
    }
}

fn print_text(view: &PlanView, out: &mut Output) -> Result<()> {
    writeln!(
        out.out,
        "target {}  namespace {}{}",
        view.target,
        view.namespace,
        view.host.as_ref().map(|h| format!("  host {h}")).unwrap_or_default()
    )?;
    if !view.overrides.is_empty() {
        let list: Vec<String> = view.overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(out.out, "overrides {}", list.join(", "))?;
    }
    for s in &view.stages {
        writeln!(out.out, "\n{}", s.dir)?;
        for c in &s.components {
            let deps = if c.plan.depends_on.is_empty() {
                String::new()
            } else {
                format!("  <- {}", c.plan.depends_on.join(", "))
            };
            writeln!(out.out, "  wave {:>2}  {:<20} {}{deps}", c.plan.wave, c.plan.name, reason(&c.plan.enablement))?;
            if !c.presets.is_empty() {
                writeln!(out.out, "             use {}", c.presets.join(", "))?;
            }
            if !c.own.is_empty() {
                let list: Vec<String> = c.own.iter().map(|(k, v)| format!("{k}={v}")).collect();
                writeln!(out.out, "             vars  {}", list.join(", "))?;
            }
            for o in &c.objects {
                writeln!(out.out, "             {o}")?;
            }
        }
    }
    print_prerequisites(&view.prerequisites, out)?;
    if view.changes.is_empty() {
        writeln!(out.out, "\nno changes")?;
    } else {
        writeln!(out.out, "\n{} file(s) would change:", view.changes.len())?;
        for c in &view.changes {
            writeln!(out.out, "  {:<8} {}", format!("{:?}", c.kind).to_lowercase(), c.path)?;
        }
    }
    Ok(())
}

/// The target's cluster prerequisites, one line per kind.
fn print_prerequisites(needs: &Needs, out: &mut Output) -> Result<()> {
    if needs.is_empty() {
        writeln!(out.out, "\ncluster prerequisites: none")?;
        return Ok(());
    }
    writeln!(out.out, "\ncluster prerequisites")?;
    for (key, names) in needs.lists().into_iter().filter(|(_, l)| !l.is_empty()) {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        writeln!(out.out, "  {key:<16} {}", names.join(", "))?;
    }
    Ok(())
}

fn node_id(name: &str) -> String {
    name.replace('-', "_")
}

fn print_graph(view: &PlanView, out: &mut Output, mermaid: bool) -> Result<()> {
    if mermaid {
        writeln!(out.out, "flowchart LR")?;
    } else {
        writeln!(out.out, "digraph plan {{\n  rankdir=LR;\n  node [shape=box];")?;
    }
    for (i, s) in view.stages.iter().enumerate() {
        if mermaid {
            writeln!(out.out, "  subgraph s{i}[\"{}\"]", s.dir)?;
        } else {
            writeln!(out.out, "  subgraph cluster_{i} {{\n    label=\"{}\";", s.dir)?;
        }
        for c in &s.components {
            let label = format!("{} (wave {})", c.plan.name, c.plan.wave);
            let off = c.plan.enablement != Enablement::Enabled;
            if mermaid {
                writeln!(out.out, "    {}[\"{label}{}\"]", node_id(&c.plan.name), if off { " — off" } else { "" })?;
            } else {
                writeln!(
                    out.out,
                    "    \"{}\" [label=\"{label}\"{}];",
                    c.plan.name,
                    if off { ", style=dashed" } else { "" }
                )?;
            }
        }
        writeln!(out.out, "  {}", if mermaid { "end" } else { "}" })?;
    }
    for s in &view.stages {
        for c in &s.components {
            for d in &c.plan.depends_on {
                if mermaid {
                    writeln!(out.out, "  {} --> {}", node_id(d), node_id(&c.plan.name))?;
                } else {
                    writeln!(out.out, "  \"{d}\" -> \"{}\";", c.plan.name)?;
                }
            }
        }
    }
    if !mermaid {
        writeln!(out.out, "}}")?;
    }
    Ok(())
}
