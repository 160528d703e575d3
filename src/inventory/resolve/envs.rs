//! Environments: the inline ones and `environments/<name>.yaml`, their `from`
//! inheritance, and the checks on the merged result (namespace, slots, TTL).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{deep_merge, Resolver, ENV_FILE_STRING_PATHS};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::inventory::imports::Parsed;
use crate::inventory::load;
use crate::inventory::model::*;
use crate::inventory::names::{dns_label_problem, parse_duration};
use crate::inventory::raw::*;
use crate::inventory::yaml::YamlPath;

impl Resolver {
    pub(super) fn error_in_env_file(
        &mut self,
        env: &str,
        path: &YamlPath,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
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

    pub(super) fn load_env_files(&mut self) -> BTreeMap<String, RawEnvironment> {
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

    pub(super) fn resolve_environments(&mut self, raw: &RawInventory) -> BTreeMap<String, Environment> {
        let all = self.collect_environments(raw);
        let mut out = BTreeMap::new();
        for name in all.keys() {
            if let Some(chain) = self.inheritance_chain(name, &all) {
                let env = self.resolve_environment(name, &chain, &all);
                out.insert(name.clone(), env);
            }
        }
        out
    }

    /// The inline environments and the environment files, by name.
    fn collect_environments(&mut self, raw: &RawInventory) -> BTreeMap<String, RawEnvironment> {
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
        all
    }

    /// Environment `name` with its `chain` of ancestors merged in, checked.
    fn resolve_environment(
        &mut self,
        name: &str,
        chain: &[String],
        all: &BTreeMap<String, RawEnvironment>,
    ) -> Environment {
        let envs_path = YamlPath::default().key("environments");
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
            let has = |e: &RawEnvironment| if key == "namespace" { e.namespace.is_some() } else { e.domain.is_some() };
            if let Some(definer) = chain.iter().find(|c| has(&all[c.as_str()])) {
                positions.insert(key.to_owned(), self.env_field_location(definer, key));
            }
        }
        Environment {
            name: name.to_owned(),
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
        }
    }

    /// Where `key` of environment `env` is written.
    pub(super) fn env_field_location(&self, env: &str, key: &str) -> (PathBuf, crate::diagnostic::Location) {
        match self.env_files.get(env) {
            Some(p) => (p.source.path.clone(), p.doc.value_location(&YamlPath::default().key(key))),
            None => {
                let path = YamlPath::default().key("environments").key(env).key(key);
                (self.file_of(&path).path.clone(), self.main.doc.value_location(&path))
            }
        }
    }

    /// `[name, parent, grandparent, …]`, or `None` after reporting an unknown parent or a cycle.
    pub(super) fn inheritance_chain(
        &mut self,
        name: &str,
        all: &BTreeMap<String, RawEnvironment>,
    ) -> Option<Vec<String>> {
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
