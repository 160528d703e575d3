//! Turning `--env/--slot/--all/--run-id/--set` into render requests, with the
//! state the tree remembers: a slot keeps its last run id and overrides.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::diagnostic::Diagnostics;
use crate::inventory::names::dns_label_problem;
use crate::inventory::values::{self, Override, Overrides};
use crate::inventory::Inventory;
use crate::render::{Request, Target};
use crate::tree;

/// Which targets a command acts on.
#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    /// Environment to render.
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Slot of a slot environment (repeatable).
    #[arg(long = "slot", value_name = "SLOT")]
    pub slots: Vec<String>,
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

/// The output directory, checked to stay inside the project.
pub fn out_dir(inventory: &Inventory, out: &Path) -> Result<PathBuf> {
    if out.is_absolute() || out.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        bail!(
            "--out {} must be a relative path inside the project directory ({})",
            out.display(),
            inventory.root.display()
        );
    }
    if out.as_os_str().is_empty() || out == Path::new(".") {
        bail!("--out must name a directory below the project root, e.g. `rendered`");
    }
    let full = inventory.root.join(out);
    // A symlinked --out, or a symlink anywhere on its way (`a/b` with `a` a
    // link and `b` not yet created), could point anywhere: resolve the
    // deepest part that exists and refuse it unless it stays inside.
    let existing = full.ancestors().find(|p| p.symlink_metadata().is_ok()).unwrap_or(&inventory.root);
    let real = existing.canonicalize().map_err(|e| {
        anyhow::anyhow!(
            "--out {}: cannot resolve {} ({e}); use a plain directory inside the project",
            out.display(),
            existing.display()
        )
    })?;
    if !real.starts_with(&inventory.root) {
        bail!("--out {} resolves outside the project directory", out.display());
    }
    Ok(full)
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
                    let arg =
                        if id == "set" { ValueArg::Set(v.clone()) } else { ValueArg::SetString(v.clone()) };
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
            ValueArg::File(file) => values::read_values_file(file).map_err(Diagnostics)?,
        };
        for o in parsed {
            o.check(inventory).map_err(anyhow::Error::msg)?;
            out.push(o);
        }
    }
    Ok(out)
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

/// Checks a run id, from `--run-id` or read back from a `target.json`.
pub fn check_run_id(id: &str) -> Result<(), String> {
    match dns_label_problem(id) {
        Some(problem) => Err(format!("invalid --run-id `{id}`: it {problem}")),
        None => Ok(()),
    }
}

/// Checks a slot name, from `--slot` or read back from the tree.
pub fn check_slot(slot: &str) -> Result<(), String> {
    match dns_label_problem(slot) {
        Some(problem) => Err(format!("invalid slot `{slot}`: it {problem}; slots are DNS-1123 labels such as `pr-42`")),
        None => Ok(()),
    }
}

/// Checks a `target.json` read back from the tree or from git (`file` names
/// it) with the same checks as the command-line flags: it is untrusted input,
/// a pull request can edit it.
pub fn check_meta(inventory: &Inventory, file: &str, target: &Target, meta: &tree::TargetMeta) -> Result<()> {
    let fail = |e: String| anyhow::anyhow!("{file}: {e}; fix or delete the file (a render recreates it)");
    if meta.project != inventory.project {
        return Err(fail(format!(
            "records project `{}`, but services.yaml is project `{}`",
            meta.project, inventory.project
        )));
    }
    if meta.env != target.env || meta.slot != target.slot {
        let recorded = Target { env: meta.env.clone(), slot: meta.slot.clone() };
        return Err(fail(format!("records target {recorded}, but lies in the directory of {target}")));
    }
    if let Some(slot) = &meta.slot {
        check_slot(slot).map_err(fail)?;
    }
    if let Some(problem) = dns_label_problem(&meta.namespace) {
        return Err(fail(format!("invalid namespace `{}`: it {problem}", meta.namespace)));
    }
    if let Some(id) = &meta.run_id {
        check_run_id(id).map_err(fail)?;
    }
    for o in values::from_recorded(&meta.sets, "`sets`").map_err(fail)? {
        o.check(inventory).map_err(fail)?;
    }
    Ok(())
}

/// What the tree already holds: slots and their remembered run ids and
/// overrides, read from the work tree or from a branch (`--branch`).
pub trait TreeState {
    /// The target metadata of `dir` (`env` or `env/slot`): `None` when
    /// absent, an error naming the file when unreadable.
    fn read_meta(&self, dir: &str) -> Result<Option<tree::TargetMeta>, String>;
    /// How messages name the `target.json` of `dir`.
    fn meta_file(&self, dir: &str) -> String;
    /// The slots of `env`, sorted.
    fn list_slots(&self, env: &str) -> Vec<String>;
}

/// The tree on disk.
pub struct DiskTree<'a>(pub &'a Path);

impl TreeState for DiskTree<'_> {
    fn read_meta(&self, dir: &str) -> Result<Option<tree::TargetMeta>, String> {
        tree::read_meta_checked(self.0, dir)
    }
    fn meta_file(&self, dir: &str) -> String {
        self.0.join(dir).join(tree::TARGET_JSON).display().to_string()
    }
    fn list_slots(&self, env: &str) -> Vec<String> {
        tree::list_slots(self.0, env)
    }
}

/// The tree as committed on a branch.
pub struct GitTree<'r> {
    /// The repository.
    pub repo: &'r git2::Repository,
    /// The branch's root tree (none for a new branch).
    pub tree: Option<git2::Tree<'r>>,
    /// Path of `--out` inside the repository.
    pub prefix: String,
}

impl GitTree<'_> {
    fn path(&self, rest: &str) -> String {
        if self.prefix.is_empty() {
            rest.to_owned()
        } else {
            format!("{}/{rest}", self.prefix)
        }
    }
}

impl TreeState for GitTree<'_> {
    fn read_meta(&self, dir: &str) -> Result<Option<tree::TargetMeta>, String> {
        let Some(root) = self.tree.as_ref() else { return Ok(None) };
        let Ok(entry) = root.get_path(Path::new(&self.path(&format!("{dir}/{}", tree::TARGET_JSON)))) else {
            return Ok(None);
        };
        let blob = self.repo.find_blob(entry.id()).map_err(|e| format!("{}: {}", self.meta_file(dir), e.message()))?;
        tree::parse_meta(blob.content()).map(Some).map_err(|e| format!("{}: {e}", self.meta_file(dir)))
    }
    fn meta_file(&self, dir: &str) -> String {
        format!("{} (committed on the branch)", self.path(&format!("{dir}/{}", tree::TARGET_JSON)))
    }
    fn list_slots(&self, env: &str) -> Vec<String> {
        let Some(root) = &self.tree else { return Vec::new() };
        let Ok(entry) = root.get_path(Path::new(&self.path(env))) else { return Vec::new() };
        let Ok(env_tree) = self.repo.find_tree(entry.id()) else { return Vec::new() };
        let mut slots: Vec<String> = env_tree
            .iter()
            .filter(|e| e.kind() == Some(git2::ObjectType::Tree))
            .filter_map(|e| e.name().map(str::to_owned))
            .filter(|name| !matches!(self.read_meta(&format!("{env}/{name}")), Ok(None)))
            .collect();
        slots.sort();
        slots
    }
}

/// Builds the requests for a selection.
pub fn requests(
    inventory: &Inventory,
    sel: &Selection,
    args: &RequestArgs,
    state: &dyn TreeState,
) -> Result<Vec<Request>> {
    let sets = parse_values(inventory, &args.values)?;
    let mut targets = Vec::new();
    if sel.all {
        for (name, env) in &inventory.environments {
            if env.slots {
                for slot in state.list_slots(name) {
                    if let Err(e) = check_slot(&slot) {
                        bail!("{}: {e}; rename or remove the directory", state.meta_file(&format!("{name}/{slot}")));
                    }
                    targets.push(Target { env: name.clone(), slot: Some(slot) });
                }
            } else {
                targets.push(Target { env: name.clone(), slot: None });
            }
        }
        if args.run_id.is_some() {
            bail!("--run-id applies to one slot; it cannot be combined with --all");
        }
    } else {
        let Some(env_name) = &sel.env else {
            bail!("say what to render: --env ENV [--slot SLOT]… or --all");
        };
        let Some(env) = inventory.environment(env_name) else {
            let known: Vec<&str> = inventory.environments.keys().map(String::as_str).collect();
            let hint = crate::diagnostic::did_you_mean(env_name, known.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            bail!("unknown environment `{env_name}`{hint}; environments: {}", known.join(", "));
        };
        if env.slots && sel.slots.is_empty() {
            bail!("`{env_name}` is a slot environment: pass --slot SLOT (e.g. --slot pr-42)");
        }
        if !env.slots && !sel.slots.is_empty() {
            bail!("`{env_name}` is not a slot environment: drop --slot");
        }
        if sel.slots.is_empty() {
            targets.push(Target { env: env_name.clone(), slot: None });
        }
        for slot in &sel.slots {
            if let Err(e) = check_slot(slot) {
                bail!(e);
            }
            let t = Target { env: env_name.clone(), slot: Some(slot.clone()) };
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
        if let Some(max) = env.max_slots {
            let existing = state.list_slots(env_name);
            let new = sel.slots.iter().filter(|s| !existing.contains(s)).count();
            if existing.len() + new > max as usize {
                bail!(
                    "`{env_name}` holds {} slot(s) and allows {max} (maxSlots); rendering {new} new slot(s) would exceed it. Remove idle slots with `codex-k8s slots gc` or raise maxSlots",
                    existing.len()
                );
            }
        }
        if args.run_id.is_some() && !env.slots {
            bail!("--run-id applies to slot environments; `{env_name}` is not one");
        }
    }
    if let Some(id) = &args.run_id {
        if let Err(e) = check_run_id(id) {
            bail!(e);
        }
    }
    let mut requests = Vec::with_capacity(targets.len());
    for target in targets {
        let dir = target.dir();
        let previous = state.read_meta(&dir).map_err(anyhow::Error::msg)?;
        let mut recorded = Vec::new();
        if let Some(meta) = &previous {
            let file = state.meta_file(&dir);
            check_meta(inventory, &file, &target, meta)?;
            recorded = values::from_recorded(&meta.sets, &file).map_err(anyhow::Error::msg)?;
        }
        let merged = target_overrides(inventory, &target.env, &recorded, &sets)?;
        let run_id = args.run_id.clone().or_else(|| previous.and_then(|m| m.run_id));
        requests.push(Request { target, run_id, sets: merged });
    }
    Ok(requests)
}

/// The tree's path relative to the repository root (what Argo CD and Flux see).
pub fn out_prefix(inventory: &Inventory, out: &Path) -> String {
    let repo_root = git2::Repository::discover(&inventory.root).ok().and_then(|r| r.workdir().map(Path::to_path_buf));
    let base = repo_root.and_then(|r| r.canonicalize().ok()).unwrap_or_else(|| inventory.root.clone());
    let out = out.canonicalize().unwrap_or_else(|_| out.to_path_buf());
    let rel = out
        .strip_prefix(&base)
        .or_else(|_| out.strip_prefix(&inventory.root))
        .map(Path::to_path_buf)
        .unwrap_or(out.clone());
    rel.to_string_lossy().replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory_at(root: &Path) -> Inventory {
        std::fs::write(
            root.join("services.yaml"),
            "apiVersion: codex-k8s.io/v1alpha1\nkind: ServiceStack\nproject: p\nenvironments: {dev: {namespace: p-dev}}\n",
        )
        .unwrap();
        crate::inventory::load(&root.join("services.yaml")).unwrap().inventory
    }

    #[cfg(unix)]
    #[test]
    fn out_dir_refuses_a_path_through_a_symlink_that_leads_out() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("project");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let inv = inventory_at(&root);
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::os::unix::fs::symlink("/nonexistent-codex-k8s", root.join("dangling")).unwrap();
        for bad in ["link", "link/rendered", "link/a/b", "dangling", "dangling/x", "/tmp/x", "../x", "a/../../x"] {
            assert!(out_dir(&inv, Path::new(bad)).is_err(), "{bad} accepted");
        }
        std::fs::create_dir_all(root.join("inside")).unwrap();
        std::os::unix::fs::symlink(root.join("inside"), root.join("inner-link")).unwrap();
        for good in ["rendered", "a/b/c", "inner-link/rendered"] {
            assert!(out_dir(&inv, Path::new(good)).is_ok(), "{good} refused");
        }
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    }
}
