//! From raw serde structs to the validated [`Inventory`]: environment files,
//! `from` inheritance, stage defaults, manifest globs, and every reference
//! check. All problems of a run are collected, then reported together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component as PathPart, Path, PathBuf};

use globset::Glob;

use super::imports::{self, Parsed};
use super::load::{self, SourceFile};
use super::model::*;
use super::names::{dns_label_problem, parse_duration};
use super::raw::*;
use super::yaml::{Document, YamlPath};
use crate::diagnostic::{did_you_mean, Diagnostic, Diagnostics};

/// The inventory plus the warnings found while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated project.
    pub inventory: Inventory,
    /// Non-fatal findings.
    pub warnings: Vec<Diagnostic>,
}

/// Directories never searched by manifest and partial globs.
const SKIPPED_DIRS: [&str; 5] = [".git", "target", "rendered", "node_modules", ".codex-k8s"];

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
    let walk = || walk_project(&root);
    let merged = imports::load_all(&root, Parsed { source, doc }, &walk).map_err(Diagnostics)?;
    let mut typed = Vec::new();
    for f in &merged.files {
        typed.extend(load::typed_strings(&f.source, &f.doc, STRING_PATHS));
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
    "environments.*.namespace",
    "environments.*.domain",
    "environments.*.from",
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
];

/// The same, in an `environments/<name>.yaml` file.
const ENV_FILE_STRING_PATHS: &[&str] = &["namespace", "domain", "from"];

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
    fn new(root: PathBuf, merged: imports::Merged) -> Self {
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
    fn file_of(&self, path: &YamlPath) -> &SourceFile {
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
    fn error(&mut self, path: &YamlPath, message: impl Into<String>, help: impl Into<String>) {
        let file = self.file_of(path);
        let d = Diagnostic::error(&file.path, Some(self.main.doc.key_location(path)), message)
            .with_source(&file.text)
            .with_help(help);
        self.diagnostics.push(d);
    }

    /// An error at the value at `path` of the inventory.
    fn error_at_value(&mut self, path: &YamlPath, message: impl Into<String>, help: impl Into<String>) {
        let file = self.file_of(path);
        let d = Diagnostic::error(&file.path, Some(self.main.doc.value_location(path)), message)
            .with_source(&file.text)
            .with_help(help);
        self.diagnostics.push(d);
    }

    fn error_in_env_file(&mut self, env: &str, path: &YamlPath, message: impl Into<String>, help: impl Into<String>) {
        match self.env_files.get(env) {
            Some(p) => {
                let d = Diagnostic::error(&p.source.path, Some(p.doc.value_location(path)), message)
                    .with_source(&p.source.text)
                    .with_help(help);
                self.diagnostics.push(d);
            }
            None => self.error_at_value(
                &YamlPath::default()
                    .key("environments")
                    .key(env)
                    .0
                    .iter()
                    .chain(path.0.iter())
                    .cloned()
                    .collect::<Vec<_>>()
                    .into(),
                message,
                help,
            ),
        }
    }

    fn check_name(&mut self, path: &YamlPath, what: &str, name: &str) -> bool {
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
        let top = YamlPath::default();
        if raw.api_version != API_VERSION {
            self.error_at_value(
                &top.key("apiVersion"),
                format!("unsupported apiVersion `{}`", raw.api_version),
                format!("set `apiVersion: {API_VERSION}`"),
            );
        }
        if raw.kind != KIND {
            self.error_at_value(
                &top.key("kind"),
                format!("unsupported kind `{}`", raw.kind),
                format!("set `kind: {KIND}`"),
            );
        }
        self.check_name(&top.key("project"), "project name", &raw.project);

        let stages = self.resolve_stages(&raw);
        let partials = self.resolve_partials(&raw.templates);
        let env_allow = self.resolve_env_allow(&raw.templates);
        let images = self.resolve_images(&raw);
        let environments = self.resolve_environments(&raw);
        let env_names: Vec<String> = environments.keys().cloned().collect();

        let mut components = Vec::new();
        for (i, c) in raw.infrastructure.iter().enumerate() {
            let path = top.key("infrastructure").index(i);
            let (c, fields) = self.with_presets(&path, c, &raw.presets);
            components.push(self.resolve_component(
                &path,
                &c,
                &fields,
                ComponentKind::Infrastructure,
                &stages,
                &images,
                &env_names,
            ));
        }
        for (i, c) in raw.services.iter().enumerate() {
            let path = top.key("services").index(i);
            let (c, fields) = self.with_presets(&path, c, &raw.presets);
            components.push(self.resolve_component(
                &path,
                &c,
                &fields,
                ComponentKind::Service,
                &stages,
                &images,
                &env_names,
            ));
        }
        let agent = raw.agent.as_ref().map(|a| self.resolve_agent(a, &stages, &images, &environments));
        self.check_unique_names(&raw, agent.is_some());
        for f in super::validate::dependency_problems(&components) {
            self.depends_error(&raw, &f.component, f.dep_index, f.message, f.help);
        }

        let policy = Policy {
            cluster_scoped_kinds: raw.policy.cluster_scoped_kinds.clone(),
            namespaced_kinds: raw.policy.namespaced_kinds.clone(),
            reserved_namespaces: raw.policy.reserved_namespaces.clone(),
            allow_plain_secrets: raw.policy.allow_plain_secrets,
            hash_job_names: raw.policy.hash_job_names.unwrap_or(true),
        };
        for (i, entry) in raw.policy.namespaced_kinds.iter().enumerate() {
            let kind = entry.rsplit_once('/').map(|(_, k)| k).unwrap_or_default();
            if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
                self.error_at_value(
                    &top.key("policy").key("namespacedKinds").index(i),
                    format!("bad policy.namespacedKinds entry `{entry}`: expected `group/Kind`"),
                    "name the API group and the kind, e.g. `monitoring.coreos.com/ServiceMonitor`",
                );
            }
        }
        let limits = self.resolve_limits(&raw.limits);
        let g = &raw.gitops;
        if let Some(i) = &g.interval {
            if let Err(e) = parse_duration(i) {
                self.error_at_value(
                    &top.key("gitops").key("interval"),
                    format!("bad gitops.interval: {e}"),
                    "write a duration such as `5m`",
                );
            }
        }
        for (stage, sync) in &g.stages {
            let at = top.key("gitops").key("stages").key(stage);
            if stage != "agent" && !stages.contains(stage) {
                self.error(
                    &at,
                    format!("gitops.stages.{stage}: no stage `{stage}`"),
                    "name a stage of `stages` or `agent`",
                );
            }
            if let Some(problem) = sync.timeout.as_deref().and_then(super::model::flux_duration_problem) {
                self.error_at_value(
                    &at.key("timeout"),
                    format!("bad gitops.stages.{stage}.timeout: {problem}"),
                    "Flux reads Go durations",
                );
            }
        }
        let gitops = Gitops {
            repo_url: g.repo_url.clone().unwrap_or_else(|| format!("https://git.example.com/{}.git", raw.project)),
            revision: g.revision.clone().unwrap_or_else(|| "rendered".into()),
            argocd_namespace: g.argocd_namespace.clone().unwrap_or_else(|| "argocd".into()),
            argocd_project: g.argocd_project.clone().unwrap_or_else(|| "default".into()),
            flux_namespace: g.flux_namespace.clone().unwrap_or_else(|| "flux-system".into()),
            flux_source: g.flux_source.clone().unwrap_or_else(|| raw.project.clone()),
            interval: g.interval.clone().unwrap_or_else(|| "5m".into()),
            stages: g
                .stages
                .iter()
                .map(|(k, v)| (k.clone(), StageSync { timeout: v.timeout.clone(), wait: v.wait }))
                .collect(),
        };

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
            texts: self
                .files
                .iter()
                .map(|f| (f.path.clone(), f.text.clone()))
                .chain(self.env_files.values().map(|p| (p.source.path.clone(), p.source.text.clone())))
                .collect(),
            sources: std::mem::take(&mut self.sources).into_iter().collect(),
        })
    }

    fn resolve_stages(&mut self, raw: &RawInventory) -> Vec<String> {
        let Some(stages) = &raw.stages else {
            return DEFAULT_STAGES.iter().map(|s| s.to_string()).collect();
        };
        let path = YamlPath::default().key("stages");
        if stages.is_empty() {
            self.error_at_value(
                &path,
                "`stages` is empty",
                "list at least one stage, or remove `stages` for the default order",
            );
        }
        if stages.len() > 9 {
            self.error_at_value(
                &path,
                format!("{} stages; at most 9 fit the wave numbering", stages.len()),
                "merge stages",
            );
        }
        let mut seen = BTreeSet::new();
        for (i, s) in stages.iter().enumerate() {
            let p = path.index(i);
            self.check_name(&p, "stage name", s);
            if s == AGENT_STAGE {
                self.error_at_value(&p, "the stage name `agent` is reserved for the agent Job", "rename the stage");
            }
            if !seen.insert(s.clone()) {
                self.error_at_value(&p, format!("stage `{s}` is listed twice"), "remove the duplicate");
            }
        }
        stages.clone()
    }

    fn project_files(&mut self) -> Vec<PathBuf> {
        if let Some(files) = &self.project {
            return files.clone();
        }
        let files = walk_project(&self.root);
        self.project = Some(files.clone());
        files
    }

    /// Expands one manifest or partial entry: a plain path or a glob, relative
    /// to the root, never escaping it.
    fn expand(&mut self, path: &YamlPath, pattern: &str, what: &str, must_match: bool) -> Vec<PathBuf> {
        if let Some(problem) = escape_problem(pattern) {
            self.error_at_value(
                path,
                format!("{what} path `{pattern}` {problem}"),
                "use a path inside the project directory, relative to services.yaml",
            );
            return Vec::new();
        }
        let is_glob = pattern.contains(['*', '?', '[', '{']);
        let matches: Vec<PathBuf> = if is_glob {
            let glob = match Glob::new(pattern) {
                Ok(g) => g.compile_matcher(),
                Err(e) => {
                    self.error_at_value(path, format!("invalid glob `{pattern}`: {}", e.kind()), "fix the glob syntax");
                    return Vec::new();
                }
            };
            self.project_files().into_iter().filter(|f| glob.is_match(f)).collect()
        } else {
            let rel = PathBuf::from(pattern);
            if self.root.join(&rel).is_file() {
                vec![rel]
            } else {
                if must_match {
                    self.error_at_value(
                        path,
                        format!("{what} `{pattern}` does not exist"),
                        format!("create it, or fix the path (relative to {})", self.main.source.path.display()),
                    );
                }
                return Vec::new();
            }
        };
        if matches.is_empty() && must_match {
            self.error_at_value(path, format!("glob `{pattern}` matches no file"), "fix the pattern or add the files");
        }
        let mut kept = Vec::new();
        for m in matches {
            match self.root.join(&m).canonicalize() {
                Ok(real) if real.starts_with(&self.root) => {
                    self.sources.insert(m.clone());
                    kept.push(m);
                }
                Ok(_) => self.error_at_value(
                    path,
                    format!("{what} `{}` is a symlink that leads outside the project directory", m.display()),
                    "copy the file into the project instead of linking to it",
                ),
                Err(e) => {
                    self.error_at_value(path, format!("cannot read {what} `{}`: {e}", m.display()), "check the file")
                }
            }
        }
        kept
    }

    fn resolve_partials(&mut self, templates: &RawTemplates) -> Vec<PathBuf> {
        let path = YamlPath::default().key("templates").key("partials");
        let (patterns, explicit) = match &templates.partials {
            Some(p) => (p.clone(), true),
            None => (vec!["partials/**/*.j2".to_owned()], false),
        };
        let mut files = BTreeSet::new();
        for (i, p) in patterns.iter().enumerate() {
            files.extend(self.expand(&path.index(i), p, "partial", explicit));
        }
        files.into_iter().collect()
    }

    fn resolve_env_allow(&mut self, templates: &RawTemplates) -> Vec<String> {
        let path = YamlPath::default().key("templates").key("env");
        for (i, p) in templates.env.iter().enumerate() {
            if let Err(e) = Glob::new(p) {
                self.error_at_value(
                    &path.index(i),
                    format!("invalid glob `{p}`: {}", e.kind()),
                    "use a name or a glob like `SHOP_*`",
                );
            }
        }
        templates.env.clone()
    }

    fn resolve_images(&mut self, raw: &RawInventory) -> BTreeMap<String, Image> {
        let mut out = BTreeMap::new();
        for (name, img) in &raw.images {
            let path = YamlPath::default().key("images").key(name);
            if img.repository.trim().is_empty() {
                self.error_at_value(
                    &path.key("repository"),
                    format!("image `{name}` has an empty repository"),
                    "set the registry path",
                );
            }
            let positions =
                (self.main.doc.value_location(&path.key("repository")), self.main.doc.value_location(&path.key("tag")));
            let file = self.file_of(&path).path.clone();
            out.insert(
                name.clone(),
                Image {
                    repository: img.repository.clone(),
                    tag: img.tag.clone(),
                    build: img.build.clone(),
                    file,
                    positions,
                },
            );
        }
        out
    }

    fn load_env_files(&mut self) -> BTreeMap<String, RawEnvironment> {
        let mut out = BTreeMap::new();
        let dir = self.root.join("environments");
        let Ok(entries) = std::fs::read_dir(&dir) else { return out };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for full in paths {
            let ext = full.extension().and_then(|e| e.to_str());
            if !matches!(ext, Some("yaml" | "yml")) || !full.is_file() {
                continue;
            }
            let rel = full.strip_prefix(&self.root).map(Path::to_path_buf).unwrap_or(full.clone());
            let name = full.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            let source = match load::read_source(&self.root, &rel) {
                Ok(s) => s,
                Err(d) => {
                    self.diagnostics.push(d);
                    continue;
                }
            };
            self.sources.insert(rel.clone());
            let doc = match load::parse_document(&source) {
                Ok(d) => d,
                Err(d) => {
                    self.diagnostics.push(d);
                    continue;
                }
            };
            if let Some(problem) = dns_label_problem(&name) {
                self.diagnostics.push(
                    Diagnostic::error(
                        &rel,
                        None,
                        format!("invalid environment name `{name}` (from the file name): {problem}"),
                    )
                    .with_help("rename the file to a DNS-1123 label, e.g. environments/staging.yaml"),
                );
            }
            if let Some(problem) = crate::layout::reserved_env_problem(&name) {
                self.diagnostics.push(
                    Diagnostic::error(&rel, None, format!("invalid environment name (from the file name): {problem}"))
                        .with_help("rename the environment file, e.g. environments/flux-system.yaml"),
                );
            }
            let typed = load::typed_strings(&source, &doc, ENV_FILE_STRING_PATHS);
            if !typed.is_empty() {
                self.diagnostics.extend(typed);
                continue;
            }
            let raw = if doc.value.is_null() {
                RawEnvironment::default()
            } else {
                match load::deserialize::<RawEnvironment>(&source, &doc) {
                    Ok(r) => r,
                    Err(ds) => {
                        self.diagnostics.extend(ds);
                        continue;
                    }
                }
            };
            self.env_files.insert(name.clone(), Parsed { source, doc });
            out.insert(name, raw);
        }
        out
    }

    fn resolve_environments(&mut self, raw: &RawInventory) -> BTreeMap<String, Environment> {
        let envs_path = YamlPath::default().key("environments");
        let from_files = self.load_env_files();
        let mut all: BTreeMap<String, RawEnvironment> = BTreeMap::new();
        for (name, env) in &raw.environments {
            if let Some(problem) = dns_label_problem(name) {
                self.error(
                    &envs_path.key(name),
                    format!("invalid environment name `{name}`: {problem}"),
                    "use a DNS-1123 label: lower-case letters, digits and `-`, at most 63 characters",
                );
            }
            if let Some(problem) = crate::layout::reserved_env_problem(name) {
                self.error(
                    &envs_path.key(name),
                    format!("invalid environment name: {problem}"),
                    "rename the environment",
                );
            }
            all.insert(name.clone(), env.clone());
        }
        for (name, env) in from_files {
            if raw.environments.contains_key(&name) {
                let line = self.main.doc.key_location(&envs_path.key(&name)).line;
                let inline = self.file_of(&envs_path.key(&name)).path.clone();
                let file = self.env_files[&name].source.path.clone();
                self.diagnostics.push(
                    Diagnostic::error(
                        &file,
                        None,
                        format!("environment `{name}` is defined twice: here and in {}:{line}", inline.display()),
                    )
                    .with_help("keep one of the two definitions"),
                );
                continue;
            }
            all.insert(name, env);
        }

        let mut out = BTreeMap::new();
        for name in all.keys() {
            let chain = match self.inheritance_chain(name, &all) {
                Some(c) => c,
                None => continue,
            };
            // Merge from the root ancestor down to the environment itself.
            let mut merged = RawEnvironment::default();
            for ancestor in chain.iter().rev() {
                merged = merge_env(merged, &all[ancestor]);
            }
            let own = &all[name];
            let slots = merged.slots.unwrap_or(false);
            let namespace = match merged.namespace.clone() {
                Some(ns) => ns,
                None => {
                    self.error_in_env_file(
                        name,
                        &YamlPath::default(),
                        format!("environment `{name}` has no namespace"),
                        "add `namespace:`, e.g. \"{{ project }}-dev\"",
                    );
                    String::new()
                }
            };
            if slots && !namespace.contains("slot") {
                self.error_in_env_file(
                    name,
                    &YamlPath::default().key("namespace"),
                    format!("slot environment `{name}` has a namespace that does not use `slot`"),
                    "every slot needs its own namespace: include `{{ slot }}`, e.g. \"{{ project }}-dev-{{ slot }}\"",
                );
            }
            let manage_namespace = merged.manage_namespace.unwrap_or(true);
            if slots && !manage_namespace {
                let inherited = own.manage_namespace.is_none();
                let path = if inherited { YamlPath::default() } else { YamlPath::default().key("manageNamespace") };
                self.error_in_env_file(
                    name,
                    &path,
                    format!(
                        "slot environment `{name}` has `manageNamespace: false`{}; a slot's namespace is its isolation, so codex-k8s must own it",
                        if inherited { " (inherited)" } else { "" }
                    ),
                    "remove `manageNamespace: false` (or set `manageNamespace: true` here); only plain environments can render into a namespace they do not own",
                );
            }
            let mut idle_ttl = None;
            if let Some(text) = &merged.idle_ttl {
                match parse_duration(text) {
                    Ok(d) => idle_ttl = Some(d),
                    Err(e) => self.error_in_env_file(
                        name,
                        &YamlPath::default().key("idleTTL"),
                        format!("bad idleTTL: {e}"),
                        "write a duration such as `8h`, `90m` or `2d`",
                    ),
                }
            }
            if !slots && (own.idle_ttl.is_some() || own.max_slots.is_some()) {
                let key = if own.idle_ttl.is_some() { "idleTTL" } else { "maxSlots" };
                self.error_in_env_file(
                    name,
                    &YamlPath::default().key(key),
                    format!("`{key}` is set on `{name}`, which is not a slot environment"),
                    "add `slots: true`, or remove the key",
                );
            }
            if merged.max_slots == Some(0) {
                self.error_in_env_file(
                    name,
                    &YamlPath::default().key("maxSlots"),
                    "maxSlots is 0",
                    "allow at least one slot",
                );
            }
            if slots && idle_ttl.is_none() {
                idle_ttl = Some(DEFAULT_IDLE_TTL);
            }
            let file = self
                .env_files
                .get(name)
                .map(|p| p.source.path.clone())
                .unwrap_or_else(|| self.file_of(&envs_path.key(name)).path.clone());
            let mut positions = BTreeMap::new();
            for key in ["namespace", "domain"] {
                let has =
                    |e: &RawEnvironment| if key == "namespace" { e.namespace.is_some() } else { e.domain.is_some() };
                if let Some(definer) = chain.iter().find(|c| has(&all[c.as_str()])) {
                    positions.insert(key.to_owned(), self.env_field_location(definer, key));
                }
            }
            out.insert(
                name.clone(),
                Environment {
                    name: name.clone(),
                    file,
                    inherits: chain[1..].to_vec(),
                    slots,
                    namespace,
                    manage_namespace,
                    domain: merged.domain.clone(),
                    tls: merged.tls.clone(),
                    idle_ttl,
                    max_slots: merged.max_slots,
                    vars: merged.vars.clone().unwrap_or_default(),
                    positions,
                },
            );
        }
        out
    }

    /// Where `key` of environment `env` is written.
    fn env_field_location(&self, env: &str, key: &str) -> (PathBuf, crate::diagnostic::Location) {
        match self.env_files.get(env) {
            Some(p) => (p.source.path.clone(), p.doc.value_location(&YamlPath::default().key(key))),
            None => {
                let path = YamlPath::default().key("environments").key(env).key(key);
                (self.file_of(&path).path.clone(), self.main.doc.value_location(&path))
            }
        }
    }

    /// `[name, parent, grandparent, …]`, or `None` after reporting an unknown parent or a cycle.
    fn inheritance_chain(&mut self, name: &str, all: &BTreeMap<String, RawEnvironment>) -> Option<Vec<String>> {
        let mut chain = vec![name.to_owned()];
        let mut current = name.to_owned();
        while let Some(parent) = all[&current].from.clone() {
            if !all.contains_key(&parent) {
                if current == name {
                    let help = match did_you_mean(&parent, all.keys().map(String::as_str)) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("known environments: {}", all.keys().cloned().collect::<Vec<_>>().join(", ")),
                    };
                    self.error_in_env_file(
                        name,
                        &YamlPath::default().key("from"),
                        format!("environment `{name}` inherits from unknown environment `{parent}`"),
                        help,
                    );
                }
                return None;
            }
            if let Some(pos) = chain.iter().position(|c| *c == parent) {
                if pos == 0 && chain.iter().all(|c| c.as_str() >= name) {
                    let mut cycle = chain.clone();
                    cycle.push(parent);
                    self.error_in_env_file(
                        name,
                        &YamlPath::default().key("from"),
                        format!("`from` inheritance cycle: {}", cycle.join(" -> ")),
                        "break the cycle: one environment must not inherit",
                    );
                }
                return None;
            }
            chain.push(parent.clone());
            current = parent;
        }
        Some(chain)
    }

    /// `c` with the fields it leaves unset taken from its presets (a later
    /// preset over an earlier one; maps merge deeply), and where each field
    /// taken from a preset is written.
    fn with_presets(
        &mut self,
        path: &YamlPath,
        c: &RawComponent,
        presets: &BTreeMap<String, RawPreset>,
    ) -> (RawComponent, Fields) {
        let mut acc = RawPreset::default();
        let mut fields = Fields::new();
        for (j, name) in c.uses.iter().enumerate() {
            let Some(p) = presets.get(name) else {
                let help = match did_you_mean(name, presets.keys().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if presets.is_empty() => "define it under `presets:`".to_owned(),
                    None => format!("presets: {}", presets.keys().cloned().collect::<Vec<_>>().join(", ")),
                };
                self.error_at_value(
                    &path.key("use").index(j),
                    format!("component `{}` uses unknown preset `{name}`", c.name),
                    help,
                );
                continue;
            };
            let at = YamlPath::default().key("presets").key(name);
            macro_rules! take {
                ($field:ident, $key:literal) => {
                    if p.$field.is_some() {
                        acc.$field = p.$field.clone();
                        fields.insert($key, at.key($key));
                    }
                };
            }
            take!(stage, "stage");
            take!(depends_on, "dependsOn");
            take!(when, "when");
            take!(envs, "envs");
            take!(image, "image");
            take!(manifests, "manifests");
            acc.overlays = merge_overlays(std::mem::take(&mut acc.overlays), &p.overlays);
            acc.vars = merge_vars(acc.vars.take(), p.vars.as_ref());
        }
        for (key, set) in [
            ("stage", c.stage.is_some()),
            ("dependsOn", c.depends_on.is_some()),
            ("when", c.when.is_some()),
            ("envs", c.envs.is_some()),
            ("image", c.image.is_some()),
            ("manifests", c.manifests.is_some()),
        ] {
            if set {
                fields.remove(key);
            }
        }
        let merged = RawComponent {
            name: c.name.clone(),
            uses: c.uses.clone(),
            stage: c.stage.clone().or(acc.stage),
            depends_on: c.depends_on.clone().or(acc.depends_on),
            when: c.when.clone().or(acc.when),
            envs: c.envs.clone().or(acc.envs),
            image: c.image.clone().or(acc.image),
            manifests: c.manifests.clone().or(acc.manifests),
            overlays: merge_overlays(acc.overlays, &c.overlays),
            vars: merge_vars(acc.vars, c.vars.as_ref()),
        };
        (merged, fields)
    }

    #[allow(clippy::too_many_arguments)]
    fn resolve_component(
        &mut self,
        path: &YamlPath,
        raw: &RawComponent,
        fields: &Fields,
        kind: ComponentKind,
        stages: &[String],
        images: &BTreeMap<String, Image>,
        envs: &[String],
    ) -> Component {
        self.check_name(&path.key("name"), "component name", &raw.name);
        let field = |key: &'static str| fields.get(key).cloned().unwrap_or_else(|| path.key(key));
        let default_stage = match kind {
            ComponentKind::Infrastructure => stages.first().cloned().unwrap_or_default(),
            _ => "internal".to_owned(),
        };
        let stage = raw.stage.clone().unwrap_or(default_stage);
        let stage_index = match stages.iter().position(|s| *s == stage) {
            Some(i) => i,
            None => {
                let help = match did_you_mean(&stage, stages.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("stages are: {}", stages.join(", ")),
                };
                let (at, msg) = if raw.stage.is_some() {
                    (field("stage"), format!("component `{}` has unknown stage `{stage}`", raw.name))
                } else {
                    (
                        path.key("name"),
                        format!("component `{}` defaults to stage `{stage}`, which is not in `stages`", raw.name),
                    )
                };
                self.error_at_value(&at, msg, help);
                0
            }
        };
        self.check_image(&field("image"), raw.image.as_deref(), images);
        if let Some(list) = &raw.envs {
            for (i, e) in list.iter().enumerate() {
                self.check_env_ref(&field("envs").index(i), e, envs);
            }
        }
        if let Some(when) = &raw.when {
            if when.trim().is_empty() {
                self.error_at_value(
                    &field("when"),
                    "`when` is empty",
                    "write an expression such as `env != 'staging'`, or remove `when`",
                );
            }
        }
        let manifests = match &raw.manifests {
            Some(list) => self.resolve_manifests(&field("manifests").parent(), &raw.name, list),
            None => {
                let message = if raw.uses.is_empty() {
                    format!("missing required key `manifests` in `{path}`")
                } else {
                    format!("component `{}` has no `manifests`, and its presets give none", raw.name)
                };
                let file = self.file_of(path);
                let d = Diagnostic::error(&file.path, Some(self.main.doc.key_location(path)), message)
                    .with_source(&file.text)
                    .with_help("add `manifests:` (or `use` a preset that has them); see docs/inventory.md");
                self.diagnostics.push(d);
                Vec::new()
            }
        };
        let overlays = self.resolve_overlays(&path.key("overlays"), &raw.overlays, envs);
        let mut positions = self.component_positions(path, raw.overlays.keys());
        if let Some(at) = fields.get("when") {
            positions.insert("when".to_owned(), self.main.doc.value_location(at));
        }
        Component {
            name: raw.name.clone(),
            kind,
            stage,
            stage_index,
            depends_on: raw.depends_on.clone().unwrap_or_default(),
            when: raw.when.clone(),
            envs: raw.envs.clone(),
            image: raw.image.clone(),
            manifests,
            overlays,
            vars: raw.vars.clone().unwrap_or_default(),
            presets: raw.uses.clone(),
            file: self.file_of(path).path.clone(),
            line: self.main.doc.key_location(path).line,
            positions,
        }
    }

    fn component_positions<'k>(
        &self,
        path: &YamlPath,
        overlays: impl Iterator<Item = &'k String>,
    ) -> BTreeMap<String, crate::diagnostic::Location> {
        let mut positions = BTreeMap::new();
        positions.insert("when".to_owned(), self.main.doc.value_location(&path.key("when")));
        for env in overlays {
            positions.insert(format!("overlays.{env}"), self.main.doc.value_location(&path.key("overlays").key(env)));
        }
        positions
    }

    fn resolve_agent(
        &mut self,
        raw: &RawAgent,
        stages: &[String],
        images: &BTreeMap<String, Image>,
        envs: &BTreeMap<String, Environment>,
    ) -> Component {
        let path = YamlPath::default().key("agent");
        self.check_image(&path.key("image"), raw.image.as_deref(), images);
        let env_names: Vec<String> = envs.keys().cloned().collect();
        if let Some(list) = &raw.envs {
            for (i, e) in list.iter().enumerate() {
                let p = path.key("envs").index(i);
                if self.check_env_ref(&p, e, &env_names) && !envs[e].slots {
                    self.error_at_value(
                        &p,
                        format!("the agent runs only in slot environments; `{e}` is not one"),
                        "add `slots: true` to it, or remove it from agent.envs",
                    );
                }
            }
        }
        let manifests = self.resolve_manifests(&path, "agent", &raw.manifests);
        let overlays = self.resolve_overlays(&path.key("overlays"), &raw.overlays, &env_names);
        let positions = self.component_positions(&path, raw.overlays.keys());
        Component {
            name: "agent".into(),
            kind: ComponentKind::Agent,
            stage: AGENT_STAGE.into(),
            stage_index: stages.len(),
            depends_on: Vec::new(),
            when: None,
            envs: raw.envs.clone(),
            image: raw.image.clone(),
            manifests,
            overlays,
            vars: serde_yaml::Mapping::new(),
            presets: Vec::new(),
            file: self.file_of(&path).path.clone(),
            line: self.main.doc.key_location(&path).line,
            positions,
        }
    }

    fn resolve_manifests(&mut self, path: &YamlPath, name: &str, patterns: &[String]) -> Vec<PathBuf> {
        if patterns.is_empty() {
            self.error_at_value(
                &path.key("manifests"),
                format!("component `{name}` has no manifests"),
                "list at least one manifest template",
            );
        }
        let mut out: Vec<PathBuf> = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            for f in self.expand(&path.key("manifests").index(i), p, "manifest", true) {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        out
    }

    fn resolve_overlays(
        &mut self,
        path: &YamlPath,
        raw: &BTreeMap<String, RawOverlay>,
        envs: &[String],
    ) -> BTreeMap<String, Overlay> {
        let mut out = BTreeMap::new();
        for (env, o) in raw {
            let p = path.key(env);
            self.check_env_ref(&p, env, envs);
            for (i, m) in o.pvc_mounts.iter().enumerate() {
                if !m.mount_path.starts_with('/') {
                    self.error_at_value(
                        &p.key("pvcMounts").index(i).key("mountPath"),
                        format!("mountPath `{}` is not absolute", m.mount_path),
                        "start it with `/`",
                    );
                }
            }
            for (i, k) in o.drop_kinds.iter().enumerate() {
                if k.trim().is_empty() {
                    self.error_at_value(
                        &p.key("dropKinds").index(i),
                        "empty kind in dropKinds",
                        "write a kind such as `Ingress`",
                    );
                }
            }
            out.insert(
                env.clone(),
                Overlay {
                    pvc_mounts: o
                        .pvc_mounts
                        .iter()
                        .map(|m| PvcMount {
                            name: m.name.clone(),
                            claim_name: m.claim_name.clone(),
                            mount_path: m.mount_path.clone(),
                            sub_path: m.sub_path.clone(),
                            read_only: m.read_only,
                        })
                        .collect(),
                    drop_kinds: o.drop_kinds.clone(),
                    env: o.env.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
                    vars: o.vars.clone().unwrap_or_default(),
                },
            );
        }
        out
    }

    fn check_image(&mut self, path: &YamlPath, image: Option<&str>, images: &BTreeMap<String, Image>) {
        let Some(image) = image else { return };
        if !images.contains_key(image) {
            let help = match did_you_mean(image, images.keys().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "add it under `images:`".to_owned(),
            };
            self.error_at_value(path, format!("unknown image `{image}`"), help);
        }
    }

    fn check_env_ref(&mut self, path: &YamlPath, env: &str, envs: &[String]) -> bool {
        if envs.iter().any(|e| e == env) {
            return true;
        }
        let help = match did_you_mean(env, envs.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("known environments: {}", envs.join(", ")),
        };
        self.error(path, format!("unknown environment `{env}`"), help);
        false
    }

    fn check_unique_names(&mut self, raw: &RawInventory, has_agent: bool) {
        let mut seen: BTreeMap<String, YamlPath> = BTreeMap::new();
        let all = raw
            .infrastructure
            .iter()
            .enumerate()
            .map(|(i, c)| (YamlPath::default().key("infrastructure").index(i), &c.name))
            .chain(
                raw.services.iter().enumerate().map(|(i, c)| (YamlPath::default().key("services").index(i), &c.name)),
            );
        for (path, name) in all {
            if has_agent && name == "agent" {
                self.error_at_value(
                    &path.key("name"),
                    "the component name `agent` is reserved for the `agent` section",
                    "rename the component",
                );
            }
            if let Some(first) = seen.get(name) {
                let line = self.main.doc.value_location(&first.key("name")).line;
                let file = self.file_of(first).path.clone();
                let at = if file == self.file_of(&path).path {
                    format!("line {line}")
                } else {
                    format!("{}:{line}", file.display())
                };
                self.error_at_value(
                    &path.key("name"),
                    format!("duplicate component name `{name}` (first defined at {at})"),
                    "component names must be unique across infrastructure and services",
                );
            } else {
                seen.insert(name.clone(), path);
            }
        }
    }

    fn resolve_limits(&mut self, raw: &RawLimits) -> Limits {
        let mut limits = Limits::default();
        let path = YamlPath::default().key("limits");
        let ceiling = Limits::CEILING;
        let check = |r: &mut Self, key: &str, value: Option<u64>, max: u64, slot: &mut u64| {
            if let Some(v) = value {
                if v == 0 || v > max {
                    r.error_at_value(
                        &path.key(key),
                        format!("limits.{key} is {v}; it must be between 1 and {max}"),
                        "pick a value inside the bounds (see docs/security.md)",
                    );
                } else {
                    *slot = v;
                }
            }
        };
        check(self, "fuel", raw.fuel, ceiling.fuel, &mut limits.fuel);
        check(self, "maxOutputBytes", raw.max_output_bytes, ceiling.max_output_bytes, &mut limits.max_output_bytes);
        let mut depth = u64::from(limits.max_partial_depth);
        check(
            self,
            "maxPartialDepth",
            raw.max_partial_depth.map(u64::from),
            u64::from(ceiling.max_partial_depth),
            &mut depth,
        );
        limits.max_partial_depth = depth as u32;
        limits
    }

    /// For `validate`: reports an error at a component's `dependsOn` entry.
    pub(super) fn depends_error(
        &mut self,
        raw: &RawInventory,
        component: &str,
        dep_index: Option<usize>,
        message: String,
        help: String,
    ) {
        let path = component_path(raw, component);
        let path = match dep_index {
            Some(i) => path.key("dependsOn").index(i),
            None => path.key("dependsOn"),
        };
        self.error_at_value(&path, message, help);
    }
}

impl From<Vec<super::yaml::Segment>> for YamlPath {
    fn from(v: Vec<super::yaml::Segment>) -> Self {
        YamlPath(v)
    }
}

/// Every file of the project (relative to `root`), sorted, outside the
/// skipped directories; symlinks are listed, not followed.
fn walk_project(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(root).follow_links(false).sort_by_file_name().into_iter();
    for entry in walker.filter_entry(|e| {
        !(e.file_type().is_dir() && e.depth() > 0 && SKIPPED_DIRS.iter().any(|s| e.file_name() == *s))
    }) {
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_dir() {
            continue;
        }
        if let Ok(rel) = entry.path().strip_prefix(root) {
            files.push(rel.to_path_buf());
        }
    }
    files
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

/// Why a relative path pattern would leave the project directory, if it would.
fn escape_problem(pattern: &str) -> Option<&'static str> {
    let p = Path::new(pattern);
    if pattern.is_empty() {
        return Some("is empty");
    }
    if p.is_absolute() || pattern.starts_with('/') || pattern.starts_with('\\') {
        return Some("is absolute");
    }
    if p.components().any(|c| matches!(c, PathPart::ParentDir | PathPart::Prefix(_))) {
        return Some("escapes the project directory (`..`)");
    }
    None
}

/// Deep merge of environments: child fields win; `vars` and `tls` merge as
/// maps; lists replace; `from` is not inherited.
fn merge_env(parent: RawEnvironment, child: &RawEnvironment) -> RawEnvironment {
    let tls = match (parent.tls, &child.tls) {
        (Some(p), Some(c)) => Some(RawTls {
            cluster_issuer: c.cluster_issuer.clone().or(p.cluster_issuer),
            issuer: c.issuer.clone().or(p.issuer),
            secret_name: c.secret_name.clone().or(p.secret_name),
        }),
        (p, c) => c.clone().or(p),
    };
    let vars = match (parent.vars, &child.vars) {
        (Some(mut p), Some(c)) => {
            deep_merge(&mut p, c);
            Some(p)
        }
        (p, c) => c.clone().or(p),
    };
    RawEnvironment {
        from: child.from.clone(),
        slots: child.slots.or(parent.slots),
        namespace: child.namespace.clone().or(parent.namespace),
        manage_namespace: child.manage_namespace.or(parent.manage_namespace),
        domain: child.domain.clone().or(parent.domain),
        tls,
        idle_ttl: child.idle_ttl.clone().or(parent.idle_ttl),
        max_slots: child.max_slots.or(parent.max_slots),
        vars,
    }
}

/// Where fields a component takes from a preset are written (`stage` →
/// `presets.web.stage`).
type Fields = BTreeMap<&'static str, YamlPath>;

/// `over`'s overlays over `base`'s: per environment, lists given replace,
/// `env` and `vars` merge.
fn merge_overlays(
    mut base: BTreeMap<String, RawOverlay>,
    over: &BTreeMap<String, RawOverlay>,
) -> BTreeMap<String, RawOverlay> {
    for (env, o) in over {
        let b = base.entry(env.clone()).or_default();
        if !o.pvc_mounts.is_empty() {
            b.pvc_mounts = o.pvc_mounts.clone();
        }
        if !o.drop_kinds.is_empty() {
            b.drop_kinds = o.drop_kinds.clone();
        }
        b.env.extend(o.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        b.vars = merge_vars(b.vars.take(), o.vars.as_ref());
    }
    base
}

/// `over` merged deeply over `base`.
fn merge_vars(base: Option<serde_yaml::Mapping>, over: Option<&serde_yaml::Mapping>) -> Option<serde_yaml::Mapping> {
    match (base, over) {
        (Some(mut b), Some(o)) => {
            deep_merge(&mut b, o);
            Some(b)
        }
        (b, o) => o.cloned().or(b),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_paths_are_refused() {
        assert!(escape_problem("../x.yaml").is_some());
        assert!(escape_problem("/etc/passwd").is_some());
        assert!(escape_problem("a/../../b").is_some());
        assert!(escape_problem("manifests/a.yaml.j2").is_none());
    }

    #[test]
    fn deep_merge_merges_maps_and_replaces_lists() {
        let mut base: serde_yaml::Mapping = serde_yaml::from_str("a: {x: 1, y: 2}\nl: [1, 2]\n").unwrap();
        let over: serde_yaml::Mapping = serde_yaml::from_str("a: {y: 3}\nl: [9]\n").unwrap();
        deep_merge(&mut base, &over);
        let expected: serde_yaml::Mapping = serde_yaml::from_str("a: {x: 1, y: 3}\nl: [9]\n").unwrap();
        assert_eq!(base, expected);
    }
}
