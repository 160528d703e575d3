//! Checks of the inventory's smaller sections: stages, `templates.env`,
//! images, references to images and environments, unique component names,
//! limits, and the `dependsOn` findings of `validate`.

use std::collections::{BTreeMap, BTreeSet};

use super::{component_path, Resolver};
use crate::diagnostic::did_you_mean;
use crate::inventory::model::*;
use crate::inventory::names::dns_label_problem;
use crate::inventory::raw::*;
use crate::inventory::yaml::YamlPath;

impl Resolver {
    /// `apiVersion`, `kind` and the project name.
    pub(super) fn check_header(&mut self, raw: &RawInventory) {
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
    }

    pub(super) fn resolve_policy(&mut self, raw: &RawPolicy) -> Policy {
        for (i, entry) in raw.namespaced_kinds.iter().enumerate() {
            let kind = entry.rsplit_once('/').map(|(_, k)| k).unwrap_or_default();
            if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
                self.error_at_value(
                    &YamlPath::default().key("policy").key("namespacedKinds").index(i),
                    format!("bad policy.namespacedKinds entry `{entry}`: expected `group/Kind`"),
                    "name the API group and the kind, e.g. `monitoring.coreos.com/ServiceMonitor`",
                );
            }
        }
        for (i, entry) in raw.reserved_namespaces.iter().enumerate() {
            // An entry that is no namespace name can never match one: it
            // would reserve nothing while reading as a wall.
            if let Some(problem) = dns_label_problem(entry) {
                self.error_at_value(
                    &YamlPath::default().key("policy").key("reservedNamespaces").index(i),
                    format!("bad policy.reservedNamespaces entry `{}`: it {problem}, so no namespace can match it", entry.escape_debug()),
                    "write the namespace exactly as Kubernetes names it: lower-case letters, digits and `-`, at most 63 characters",
                );
            }
        }
        Policy {
            cluster_scoped_kinds: raw.cluster_scoped_kinds.clone(),
            namespaced_kinds: raw.namespaced_kinds.clone(),
            reserved_namespaces: raw.reserved_namespaces.clone(),
            allow_plain_secrets: raw.allow_plain_secrets,
            hash_job_names: raw.hash_job_names.unwrap_or(true),
        }
    }

    /// `prerequisites:`: names that Kubernetes could give an object (DNS
    /// subdomains) and CRDs as `group/Kind`; each list sorted and deduplicated.
    pub(super) fn resolve_prerequisites(&mut self, raw: &Prerequisites) -> Prerequisites {
        let top = YamlPath::default().key("prerequisites");
        let lists = [
            ("ingressClasses", &raw.ingress_classes),
            ("clusterIssuers", &raw.cluster_issuers),
            ("storageClasses", &raw.storage_classes),
            ("priorityClasses", &raw.priority_classes),
        ];
        for (key, list) in lists {
            for (i, name) in list.iter().enumerate() {
                if !is_subdomain(name) {
                    self.error_at_value(
                        &top.key(key).index(i),
                        format!("bad prerequisites.{key} entry `{}`: not an object name", name.escape_debug()),
                        "write the name as the cluster has it: lower-case letters, digits, `-` and `.`, at most 253 characters",
                    );
                }
            }
        }
        for (i, entry) in raw.crds.iter().enumerate() {
            let ok = entry.split_once('/').is_some_and(|(g, k)| {
                g.contains('.')
                    && is_subdomain(g)
                    && k.starts_with(|c: char| c.is_ascii_uppercase())
                    && k.chars().all(|c| c.is_ascii_alphanumeric())
            });
            if !ok {
                self.error_at_value(
                    &top.key("crds").index(i),
                    format!("bad prerequisites.crds entry `{}`: expected `group/Kind`", entry.escape_debug()),
                    "name the CRD's API group and kind, e.g. `cert-manager.io/Certificate`",
                );
            }
        }
        let sorted = |l: &[String]| l.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>();
        Prerequisites {
            ingress_classes: sorted(&raw.ingress_classes),
            cluster_issuers: sorted(&raw.cluster_issuers),
            storage_classes: sorted(&raw.storage_classes),
            priority_classes: sorted(&raw.priority_classes),
            crds: sorted(&raw.crds),
        }
    }

    pub(super) fn resolve_gitops(&mut self, raw: &RawInventory, stages: &[String]) -> Gitops {
        let top = YamlPath::default();
        let g = &raw.gitops;
        let interval = match g.interval.as_deref().map(|i| FluxDuration::parse(i, true)) {
            None => FluxDuration::default_interval(),
            Some(Ok(i)) => i,
            Some(Err(e)) => {
                self.error_at_value(
                    &top.key("gitops").key("interval"),
                    format!("bad gitops.interval: {e}"),
                    "write a duration such as `5m` (Flux reads Go durations: units h, m, s, ms)",
                );
                FluxDuration::default_interval()
            }
        };
        let mut syncs = BTreeMap::new();
        for (stage, sync) in &g.stages {
            let at = top.key("gitops").key("stages").key(stage);
            if stage != "agent" && !stages.contains(stage) {
                self.error(
                    &at,
                    format!("gitops.stages.{stage}: no stage `{stage}`"),
                    "name a stage of `stages` or `agent`",
                );
            }
            let timeout = match sync.timeout.as_deref().map(|t| FluxDuration::parse(t, false)) {
                Some(Err(problem)) => {
                    self.error_at_value(
                        &at.key("timeout"),
                        format!("bad gitops.stages.{stage}.timeout: {problem}"),
                        "Flux reads Go durations",
                    );
                    None
                }
                Some(Ok(t)) => Some(t),
                None => None,
            };
            syncs.insert(stage.clone(), StageSync { timeout, wait: sync.wait });
        }
        Gitops {
            repo_url: g.repo_url.clone().unwrap_or_else(|| format!("https://git.example.com/{}.git", raw.project)),
            revision: g.revision.clone().unwrap_or_else(|| "rendered".into()),
            argocd_namespace: g.argocd_namespace.clone().unwrap_or_else(|| "argocd".into()),
            argocd_project: g.argocd_project.clone().unwrap_or_else(|| "default".into()),
            flux_namespace: g.flux_namespace.clone().unwrap_or_else(|| "flux-system".into()),
            flux_source: g.flux_source.clone().unwrap_or_else(|| raw.project.clone()),
            interval,
            stages: syncs,
        }
    }

    pub(super) fn resolve_stages(&mut self, raw: &RawInventory) -> Vec<String> {
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
    pub(super) fn resolve_env_allow(&mut self, templates: &RawTemplates) -> EnvAllow {
        match EnvAllow::new(templates.env.iter().map(String::as_str)) {
            Ok(allow) => allow,
            Err((i, e)) => {
                let p = templates.env.get(i).map(String::as_str).unwrap_or_default();
                self.error_at_value(
                    &YamlPath::default().key("templates").key("env").index(i),
                    format!("invalid glob `{p}`: {}", e.kind()),
                    "use a name or a glob like `SHOP_*`",
                );
                EnvAllow::default()
            }
        }
    }

    pub(super) fn resolve_images(&mut self, raw: &RawInventory) -> BTreeMap<String, Image> {
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
            if let Some(build) = &img.build {
                self.check_build_paths(&path.key("build"), name, build);
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
    /// `build.context` and `build.dockerfile` name paths inside the project
    /// (CI hands them to `docker build`): relative, no `..`, nothing in
    /// `.git/`, and no symlink that leads out.
    fn check_build_paths(&mut self, path: &YamlPath, name: &str, build: &ImageBuild) {
        for (key, value) in [("context", build.context.as_deref()), ("dockerfile", build.dockerfile.as_deref())] {
            let Some(value) = value else { continue };
            let git = || std::path::Path::new(value).components().any(|c| c.as_os_str() == ".git");
            let problem =
                super::walk::escape_problem(value).or_else(|| git().then_some("is inside `.git/`")).or_else(|| {
                    let real = self.root.join(value).canonicalize().ok()?;
                    (!real.starts_with(&self.root)).then_some("is a symlink that leads outside the project directory")
                });
            if let Some(problem) = problem {
                self.error_at_value(
                    &path.key(key),
                    format!("`images.{name}.build.{key}` `{value}` {problem}"),
                    "CI builds from the project only: use a path relative to services.yaml, inside the project",
                );
            }
        }
    }

    pub(super) fn check_image(&mut self, path: &YamlPath, image: Option<&str>, images: &BTreeMap<String, Image>) {
        let Some(image) = image else { return };
        if !images.contains_key(image) {
            let help = match did_you_mean(image, images.keys().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "add it under `images:`".to_owned(),
            };
            self.error_at_value(path, format!("unknown image `{image}`"), help);
        }
    }

    pub(super) fn check_env_ref(&mut self, path: &YamlPath, env: &str, envs: &[String]) -> bool {
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

    pub(super) fn check_unique_names(&mut self, raw: &RawInventory, has_agent: bool) {
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
            if crate::inventory::GENERATED_COMPONENTS.contains(&name.as_str()) {
                self.error_at_value(
                    &path.key("name"),
                    format!("the component name `{name}` is reserved for the objects codex-k8s generates (its directory and label would be shared)"),
                    format!("rename the component; reserved: {}", crate::inventory::GENERATED_COMPONENTS.join(", ")),
                );
            }
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

    pub(super) fn resolve_limits(&mut self, raw: &RawLimits) -> Limits {
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

/// A DNS-1123 subdomain: what Kubernetes accepts as most object names.
fn is_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}
