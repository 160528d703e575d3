//! From raw serde structs to the validated [`Inventory`]: environment files,
//! `from` inheritance, stage defaults, manifest globs, and every reference
//! check. All problems of a run are collected, then reported together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::imports::{self, Parsed};
use super::load::{self, SourceFile};
use super::model::*;
use super::names::dns_label_problem;
use super::raw::*;
use super::yaml::{Document, YamlPath};
use crate::diagnostic::{Diagnostic, Diagnostics};

mod checks;
mod components;
mod envs;
pub(crate) mod secrets;
#[cfg(test)]
mod tests;
mod walk;

/// The inventory plus the warnings found while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated project.
    pub inventory: Inventory,
    /// Non-fatal findings.
    pub warnings: Vec<Diagnostic>,
}

/// Loads and validates `file` (usually `services.yaml`) and the
/// `environments/*.yaml` beside it. Nothing is rendered.
pub fn load(file: &Path) -> Result<Loaded, Diagnostics> {
    let file_name = PathBuf::from(file.file_name().unwrap_or(file.as_os_str()));
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let root = parent.canonicalize().map_err(|e| {
        Diagnostics(vec![Diagnostic::error(file, None, format!("cannot open the project directory: {e}"))
            .with_help("pass the inventory with -f, or change directory with -C")])
    })?;
    let source = load::read_source(&root, &file_name).map_err(|d| Diagnostics(vec![d]))?;
    let doc = load::parse_document(&source).map_err(|d| Diagnostics(vec![d]))?;
    if doc.value.is_null() {
        return Err(Diagnostics(vec![Diagnostic::error(&source.path, None, "the inventory is empty")
            .with_help("start from the example in docs/inventory.md")]));
    }
    let walk = || walk::walk_project(&root);
    let merged = imports::load_all(&root, Parsed { source, doc }, &walk).map_err(Diagnostics)?;
    let mut typed = Vec::new();
    let env_paths: Vec<String> = envs::STRING_FIELDS.iter().map(|p| format!("environments.*.{p}")).collect();
    let patterns: Vec<&str> = STRING_PATHS.iter().copied().chain(env_paths.iter().map(String::as_str)).collect();
    for f in &merged.files {
        typed.extend(load::typed_strings(&f.source, &f.doc, &patterns));
    }
    if !typed.is_empty() {
        return Err(Diagnostics(typed));
    }
    // Each fragment's own shape, so unknown keys and type errors keep its positions.
    let mut shape = Vec::new();
    for f in merged.files.iter().skip(1) {
        let Some(map) = f.doc.value.as_mapping() else { continue };
        let mut value = map.clone();
        for key in imports::ROOT_ONLY {
            if let Some(v) = merged.files[0].doc.value.get(key) {
                value.insert(key.into(), v.clone());
            }
        }
        let doc =
            Document { value: serde_yaml::Value::Mapping(value), spans: f.doc.spans.clone(), typed: BTreeMap::new() };
        if let Err(ds) = load::deserialize::<RawInventory>(&f.source, &doc) {
            shape.extend(ds);
        }
    }
    if !shape.is_empty() {
        return Err(Diagnostics(shape));
    }
    let raw: RawInventory = load::deserialize(&merged.files[0].source, &merged.doc).map_err(Diagnostics)?;
    let mut r = Resolver::new(root, merged);
    let inventory = r.resolve(raw);
    let mut diags = Diagnostics(r.diagnostics);
    diags.sort();
    match inventory {
        Some(inventory) if !diags.has_errors() => Ok(Loaded { inventory, warnings: diags.0 }),
        _ => Err(diags),
    }
}

/// Where services.yaml expects a string, so an unquoted number or bool
/// (`1.10`, `0755`, `true`) is refused instead of changed.
const STRING_PATHS: &[&str] = &[
    "project",
    "stages[]",
    "versions.*",
    "images.*.repository",
    "images.*.tag",
    "infrastructure[].name",
    "infrastructure[].image",
    "infrastructure[].stage",
    "services[].name",
    "services[].image",
    "services[].stage",
    "agent.image",
    "presets.*.image",
    "presets.*.stage",
    "infrastructure[].use[]",
    "services[].use[]",
    "gitops.revision",
    "prerequisites.ingressClasses[]",
    "prerequisites.clusterIssuers[]",
    "prerequisites.storageClasses[]",
    "prerequisites.priorityClasses[]",
    "prerequisites.crds[]",
];

struct Resolver {
    root: PathBuf,
    /// services.yaml with the merged document of every imported file.
    main: Parsed,
    /// Every file of the inventory: services.yaml, then its fragments.
    files: Vec<SourceFile>,
    /// Which of `files` wrote a path of `main.doc` (absent: services.yaml).
    origins: BTreeMap<YamlPath, usize>,
    env_files: BTreeMap<String, Parsed>,
    project: Option<Vec<PathBuf>>,
    diagnostics: Vec<Diagnostic>,
    sources: BTreeSet<PathBuf>,
}

impl Resolver {
    pub(super) fn new(root: PathBuf, merged: imports::Merged) -> Self {
        let files: Vec<SourceFile> = merged.files.iter().map(|f| f.source.clone()).collect();
        let sources = files.iter().map(|f| f.path.clone()).collect();
        Resolver {
            root,
            main: Parsed { source: files[0].clone(), doc: merged.doc },
            files,
            origins: merged.origins,
            env_files: BTreeMap::new(),
            project: None,
            diagnostics: Vec::new(),
            sources,
        }
    }

    /// The file (services.yaml or a fragment) that wrote `path`.
    pub(super) fn file_of(&self, path: &YamlPath) -> &SourceFile {
        let mut p = path.clone();
        loop {
            if self.main.doc.spans.contains_key(&p) {
                return &self.files[self.origins.get(&p).copied().unwrap_or(0)];
            }
            if p.0.pop().is_none() {
                return &self.files[0];
            }
        }
    }

    /// An error at `path` of the inventory (pointing at the key).
    pub(super) fn error(&mut self, path: &YamlPath, message: impl Into<String>, help: impl Into<String>) {
        let file = self.file_of(path);
        let d = Diagnostic::error(&file.path, Some(self.main.doc.key_location(path)), message)
            .with_source(&file.text)
            .with_help(help);
        self.diagnostics.push(d);
    }

    /// An error at the value at `path` of the inventory.
    pub(super) fn error_at_value(&mut self, path: &YamlPath, message: impl Into<String>, help: impl Into<String>) {
        let file = self.file_of(path);
        let d = Diagnostic::error(&file.path, Some(self.main.doc.value_location(path)), message)
            .with_source(&file.text)
            .with_help(help);
        self.diagnostics.push(d);
    }

    pub(super) fn check_name(&mut self, path: &YamlPath, what: &str, name: &str) -> bool {
        match dns_label_problem(name) {
            None => true,
            Some(problem) => {
                self.error_at_value(
                    path,
                    format!("invalid {what} `{name}`: {problem}"),
                    "use a DNS-1123 label: lower-case letters, digits and `-`, at most 63 characters",
                );
                false
            }
        }
    }

    fn resolve(&mut self, raw: RawInventory) -> Option<Inventory> {
        self.check_header(&raw);
        let stages = self.resolve_stages(&raw);
        let partials = self.resolve_partials(&raw.templates);
        let env_allow = self.resolve_env_allow(&raw.templates);
        let images = self.resolve_images(&raw);
        let environments = self.resolve_environments(&raw);
        let components = self.resolve_components(&raw, &stages, &images, &environments);
        let agent = raw.agent.as_ref().map(|a| self.resolve_agent(a, &stages, &images, &environments));
        self.check_unique_names(&raw, agent.is_some());
        for f in super::validate::dependency_problems(&components) {
            self.depends_error(&raw, &f.component, f.dep_index, f.message, f.help);
        }
        let policy = self.resolve_policy(&raw.policy);
        let limits = self.resolve_limits(&raw.limits);
        let gitops = self.resolve_gitops(&raw, &stages);
        let prerequisites = self.resolve_prerequisites(&raw.prerequisites);
        self.check_secrets(&raw, &environments);
        Some(Inventory {
            root: self.root.clone(),
            file: self.main.source.path.clone(),
            project: raw.project.clone(),
            stages,
            versions: raw.versions.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
            images,
            environments,
            components,
            agent,
            partials,
            env_allow,
            policy,
            limits,
            gitops,
            prerequisites,
            texts: self
                .files
                .iter()
                .map(|f| (f.path.clone(), f.text.clone()))
                .chain(self.env_files.values().map(|p| (p.source.path.clone(), p.source.text.clone())))
                .collect(),
            sources: std::mem::take(&mut self.sources).into_iter().collect(),
            settings: self.setting_positions(),
            secrets: raw.secrets.clone(),
        })
    }

    /// Where each setting of the sections that hold walls is written
    /// (`inventory::walls`), by its dotted path.
    fn setting_positions(&self) -> BTreeMap<String, (PathBuf, crate::diagnostic::Location)> {
        const SECTIONS: [&str; 7] = ["project", "policy", "templates", "limits", "gitops", "images", "secrets"];
        self.main
            .doc
            .spans
            .iter()
            .filter(
                |(p, _)| matches!(p.0.first(), Some(super::yaml::Segment::Key(k)) if SECTIONS.contains(&k.as_str())),
            )
            .map(|(p, span)| (p.to_string(), (self.file_of(p).path.clone(), span.key)))
            .collect()
    }
}

impl From<Vec<super::yaml::Segment>> for YamlPath {
    fn from(v: Vec<super::yaml::Segment>) -> Self {
        YamlPath(v)
    }
}

/// Path of a component's mapping in services.yaml.
pub(super) fn component_path(raw: &RawInventory, name: &str) -> YamlPath {
    let top = YamlPath::default();
    if let Some(i) = raw.infrastructure.iter().position(|c| c.name == name) {
        return top.key("infrastructure").index(i);
    }
    if let Some(i) = raw.services.iter().position(|c| c.name == name) {
        return top.key("services").index(i);
    }
    top.key("agent")
}

/// Maps merge recursively; any other value (lists included) replaces.
pub fn deep_merge(base: &mut serde_yaml::Mapping, over: &serde_yaml::Mapping) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(serde_yaml::Value::Mapping(b)), serde_yaml::Value::Mapping(o)) => deep_merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The project walk of glob imports and manifests, for tests elsewhere.
#[cfg(test)]
pub(crate) fn walk_project_for_tests(root: &Path) -> Vec<PathBuf> {
    walk::walk_project(root)
}
