//! Environments: the inline ones and `environments/<name>.yaml`, their `from`
//! inheritance, and the checks on the merged result (namespace, slots, TTL).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::Resolver;
use crate::diagnostic::{did_you_mean, Diagnostic, Location};
use crate::inventory::imports::Parsed;
use crate::inventory::load;
use crate::inventory::model::*;
use crate::inventory::names::{dns_label_problem, parse_duration};
use crate::inventory::raw::*;
use crate::inventory::yaml::{Segment, YamlPath};

/// Where an environment expects a string (so an unquoted number or bool is
/// refused instead of changed): in `environments/<name>.yaml`, and under
/// `environments.<name>` in services.yaml.
pub(super) const STRING_FIELDS: &[&str] = &["namespace", "domain", "from"];

/// The fields whose position an [`Environment`] remembers: its templates and
/// its walls (`inventory::walls`), for messages that point at them.
const WALL_FIELDS: [&str; 13] = [
    "namespace",
    "domain",
    "slots",
    "manageNamespace",
    "idleTTL",
    "maxSlots",
    "tls",
    "cluster",
    "flux",
    "secretStores",
    "isolation",
    "quota",
    "limitRange",
];

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
            let typed = load::typed_strings(&source, &doc, STRING_FIELDS);
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

    /// `cluster:` names one destination: a `server` URL or a `name`.
    fn check_cluster(&mut self, chain: &[String], cluster: Option<&RawCluster>) {
        let Some(c) = cluster else { return };
        let path = YamlPath::default().key("cluster");
        match (&c.server, &c.name) {
            (Some(_), Some(_)) | (None, None) => self.error_in_env(
                chain,
                &path,
                "`cluster` needs exactly one of `server` and `name`".to_owned(),
                "write `cluster: {server: https://…}` or `cluster: {name: <a cluster Argo CD knows>}`",
            ),
            (Some(server), None) if !server.starts_with("https://") => self.error_in_env(
                chain,
                &path.key("server"),
                format!("`cluster.server` `{server}` is not an https URL"),
                "write the cluster's API server URL as Argo CD knows it, e.g. https://kubernetes.default.svc",
            ),
            (None, Some(name)) if name.trim().is_empty() || name.chars().any(char::is_control) => self.error_in_env(
                chain,
                &path.key("name"),
                "`cluster.name` is empty or holds control characters".to_owned(),
                "write the cluster's name as registered in Argo CD",
            ),
            _ => {}
        }
    }

    /// Environment `name` with its `chain` of ancestors merged in, checked.
    fn resolve_environment(
        &mut self,
        name: &str,
        chain: &[String],
        all: &BTreeMap<String, RawEnvironment>,
    ) -> Environment {
        let root = YamlPath::default();
        let merged = self.inherited(chain);
        let own = &all[name];
        let slots = merged.slots.unwrap_or(false);
        let namespace = merged.namespace.clone().unwrap_or_else(|| {
            let message = format!("environment `{name}` has no namespace");
            self.error_in_env(chain, &root, message, "add `namespace:`, e.g. \"{{ project }}-dev\"");
            String::new()
        });
        if slots && !namespace.contains("slot") {
            self.error_in_env(
                chain,
                &root.key("namespace"),
                format!("slot environment `{name}` has a namespace that does not use `slot`"),
                "every slot needs its own namespace: include `{{ slot }}`, e.g. \"{{ project }}-dev-{{ slot }}\"",
            );
        }
        let manage_namespace = merged.manage_namespace.unwrap_or(true);
        if slots && !manage_namespace {
            // Said at the environment that is a slot environment: the fix is there.
            let inherited = own.manage_namespace.is_none();
            let path = if inherited { root.clone() } else { root.key("manageNamespace") };
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
                Err(e) => self.error_in_env(
                    chain,
                    &root.key("idleTTL"),
                    format!("bad idleTTL: {e}"),
                    "write a duration such as `8h`, `90m` or `2d`",
                ),
            }
        }
        if !slots && (own.idle_ttl.is_some() || own.max_slots.is_some()) {
            let key = if own.idle_ttl.is_some() { "idleTTL" } else { "maxSlots" };
            self.error_in_env_file(
                name,
                &root.key(key),
                format!("`{key}` is set on `{name}`, which is not a slot environment"),
                "add `slots: true`, or remove the key",
            );
        }
        if merged.max_slots == Some(0) {
            self.error_in_env(chain, &root.key("maxSlots"), "maxSlots is 0", "allow at least one slot");
        }
        if slots && idle_ttl.is_none() {
            idle_ttl = Some(DEFAULT_IDLE_TTL);
        }
        if let (true, Some(f)) = (slots, merged.flux.as_ref()) {
            if f.decryption.is_some() {
                self.error_in_env(
                    chain,
                    &root.key("flux").key("decryption"),
                    format!("slot environment `{name}` sets `flux.decryption`; a slot never decrypts the project's SOPS files"),
                    "keep `flux.decryption` to plain environments: a slot never holds the keys to the project's encrypted files",
                );
            }
        }
        if let Some(sa) = merged.flux.as_ref().and_then(|f| f.service_account_name.as_deref()) {
            if let Some(problem) = dns_label_problem(sa) {
                self.error_in_env(
                    chain,
                    &root.key("flux").key("serviceAccountName"),
                    format!("invalid flux.serviceAccountName `{}`: it {problem}", sa.escape_debug()),
                    "name the ServiceAccount (in gitops.fluxNamespace) Flux impersonates for this environment",
                );
            }
        }
        self.check_cluster(chain, merged.cluster.as_ref());
        let mut positions = BTreeMap::new();
        for key in WALL_FIELDS {
            if let Some(at) = self.env_value_location(chain, &root.key(key)) {
                positions.insert(key.to_owned(), at);
            }
        }
        Environment {
            name: name.to_owned(),
            file: self.env_file_path(name),
            inherits: chain[1..].to_vec(),
            slots,
            namespace,
            manage_namespace,
            domain: merged.domain,
            tls: merged.tls,
            idle_ttl,
            max_slots: merged.max_slots,
            cluster: merged.cluster,
            flux: merged.flux,
            secret_stores: merged.secret_stores.unwrap_or_default(),
            isolation: merged.isolation,
            quota: merged.quota,
            limit_range: merged.limit_range,
            vars: merged.vars.unwrap_or_default(),
            positions,
        }
    }

    /// The environment `chain[0]` with its ancestors merged under it, on the
    /// YAML values (see [`inherit`]), then read as a [`RawEnvironment`].
    fn inherited(&mut self, chain: &[String]) -> RawEnvironment {
        let values: Vec<&Value> = chain.iter().filter_map(|e| self.env_value(e)).collect();
        match serde_yaml::from_value(Value::Mapping(inherit(&values))) {
            Ok(raw) => raw,
            Err(e) => {
                // Each environment alone was read without error, so this is
                // a merge of two shapes that do not fit together.
                let message = format!("environment `{}` after `from` inheritance: {e}", chain[0]);
                self.error_in_env_file(&chain[0], &YamlPath::default(), message, "see docs/inventory.md");
                RawEnvironment::default()
            }
        }
    }

    /// The YAML value environment `name` is written as (its file, or its
    /// entry under `environments:`).
    fn env_value(&self, name: &str) -> Option<&Value> {
        match self.env_files.get(name) {
            Some(p) => Some(&p.doc.value),
            None => self.main.doc.value.get("environments").and_then(|e| e.get(name)),
        }
    }

    /// The file that defines environment `name`.
    fn env_file_path(&self, name: &str) -> PathBuf {
        match self.env_files.get(name) {
            Some(p) => p.source.path.clone(),
            None => self.file_of(&YamlPath::default().key("environments").key(name)).path.clone(),
        }
    }

    /// Which environment of `chain` (nearest first) wrote the value found at
    /// `path` after inheritance, and the path it wrote: the nearest one that
    /// sets `path`, else the nearest that sets a parent of it, else `chain[0]`.
    fn definer<'c>(&self, chain: &'c [String], path: &YamlPath) -> (&'c str, YamlPath) {
        let mut p = path.clone();
        loop {
            let sets = |env: &&String| self.env_value(env).and_then(|v| value_at(v, &p)).is_some_and(|v| !v.is_null());
            if let Some(env) = chain.iter().find(sets) {
                return (env, p);
            }
            if p.0.pop().is_none() {
                return (&chain[0], YamlPath::default());
            }
        }
    }

    /// An error at the value at `path` of environment `chain[0]`, placed
    /// where that value is written (an ancestor's file when inherited). Two
    /// environments that inherit the same bad value get one error.
    fn error_in_env(&mut self, chain: &[String], path: &YamlPath, message: impl Into<String>, help: &str) {
        let (env, at) = self.definer(chain, path);
        self.error_in_env_file(env, &at, message, help);
        let last = self.diagnostics.pop().expect("just pushed");
        if !self
            .diagnostics
            .iter()
            .any(|d| d.file == last.file && d.location == last.location && d.message == last.message)
        {
            self.diagnostics.push(last);
        }
    }

    /// Where the value at `path` of environment `chain[0]` is written, when
    /// it or an ancestor sets it.
    fn env_value_location(&self, chain: &[String], path: &YamlPath) -> Option<(PathBuf, Location)> {
        let (env, at) = self.definer(chain, path);
        if at != *path {
            return None;
        }
        Some(match self.env_files.get(env) {
            Some(p) => (p.source.path.clone(), p.doc.value_location(&at)),
            None => {
                let full = YamlPath::default().key("environments").key(env);
                let full = YamlPath(full.0.into_iter().chain(at.0).collect());
                (self.file_of(&full).path.clone(), self.main.doc.value_location(&full))
            }
        })
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

/// `values` (an environment, its parent, its grandparent, …) merged into
/// one mapping, the root ancestor first and each descendant over it: maps
/// merge key by key, recursively; any other value (a scalar, a list)
/// replaces; a `null` (a key written without a value) leaves the inherited
/// value. `from` itself is not inherited. Nothing here names a field, so a
/// new field of [`RawEnvironment`] inherits with no code.
pub(super) fn inherit(values: &[&Value]) -> Mapping {
    let mut merged = Mapping::new();
    for value in values.iter().rev() {
        if let Some(m) = value.as_mapping() {
            merge_over(&mut merged, m);
        }
    }
    merged.remove("from");
    merged
}

/// `over` merged over `base` by the rules of [`inherit`].
fn merge_over(base: &mut Mapping, over: &Mapping) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Mapping(b)), Value::Mapping(o)) => merge_over(b, o),
            (Some(_), Value::Null) => {}
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The value at `path` inside `value`.
fn value_at<'v>(value: &'v Value, path: &YamlPath) -> Option<&'v Value> {
    path.0.iter().try_fold(value, |v, segment| match segment {
        Segment::Key(k) => v.get(k.as_str()),
        Segment::Index(i) => v.get(*i),
    })
}
