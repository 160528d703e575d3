//! The validated inventory: what the renderer consumes.
//!
//! Everything here has been checked: names are DNS labels, references
//! resolve, stages are ordered, manifests exist inside the project. Templated
//! strings (`namespace`, `domain`, image parts, overlay strings, `when`) are
//! still raw template text; `render` evaluates them per target.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use super::prerequisites::Prerequisites;
use super::raw::{RawCluster, RawFlux, RawIsolation, RawSecret, RawSecretStore, RawTls};
pub use super::raw::{RawOverlay as Overlay, RawPvcMount as PvcMount};
use super::yaml::YamlPath;
use crate::diagnostic::Location;

/// The default stage order when `stages` is absent.
pub const DEFAULT_STAGES: [&str; 5] = ["stateful", "migrations", "internal", "edge", "frontend"];
/// Idle TTL of slot environments that do not set `idleTTL`.
pub const DEFAULT_IDLE_TTL: Duration = Duration::from_secs(8 * 3600);
/// Component names of the objects the renderer generates (the Namespace,
/// the secret declarations, a namespace's bounds): no component may take
/// one, or the two would share a directory and a label.
pub const GENERATED_COMPONENTS: [&str; 3] = ["namespace", "secrets", "bounds"];
/// Stage name used for the agent's directory and labels.
pub const AGENT_STAGE: &str = "agent";

/// `templates.env`: the globs of environment variables templates may read
/// with `env_or`, compiled once when the inventory loads (a glob that does
/// not compile is an error there, never an empty list later).
#[derive(Debug, Clone, Default)]
pub struct EnvAllow {
    set: globset::GlobSet,
    patterns: Vec<String>,
}

impl EnvAllow {
    /// Compiles `patterns`; the first that is not a glob is the error.
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, (usize, globset::Error)> {
        let mut set = globset::GlobSetBuilder::new();
        let mut written = Vec::new();
        for (i, p) in patterns.into_iter().enumerate() {
            set.add(globset::Glob::new(p).map_err(|e| (i, e))?);
            written.push(p.to_owned());
        }
        let set = set.build().map_err(|e| (0, e))?;
        Ok(EnvAllow { set, patterns: written })
    }

    /// Whether templates may read variable `name`.
    pub fn allows(&self, name: &str) -> bool {
        self.set.is_match(name)
    }

    /// The patterns as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// A loaded, validated project.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Directory holding `services.yaml`; every path is relative to it.
    pub root: PathBuf,
    /// The inventory file, relative to `root`.
    pub file: PathBuf,
    /// Project name (DNS label).
    pub project: String,
    /// Stage names in order.
    pub stages: Vec<String>,
    /// `versions`, as strings.
    pub versions: BTreeMap<String, String>,
    /// `images`, with templated repository and tag.
    pub images: BTreeMap<String, Image>,
    /// Every environment, inheritance already applied.
    pub environments: BTreeMap<String, Environment>,
    /// Infrastructure then services, in file order.
    pub components: Vec<Component>,
    /// The agent, if any.
    pub agent: Option<Component>,
    /// Partial files (relative to `root`), sorted.
    pub partials: Vec<PathBuf>,
    /// The environment variables `env_or` may read (`templates.env`).
    pub env_allow: EnvAllow,
    /// Policy switches.
    pub policy: Policy,
    /// Sandbox limits.
    pub limits: Limits,
    /// Argo CD / Flux glue settings.
    pub gitops: Gitops,
    /// Cluster prerequisites (`prerequisites:`), each list sorted.
    pub prerequisites: Prerequisites,
    /// `secrets:`, in file order.
    pub secrets: Vec<RawSecret>,
    /// Text of services.yaml and the environment files, for diagnostics found later.
    pub texts: BTreeMap<PathBuf, String>,
    /// Every file read to build this inventory (relative to `root`), sorted;
    /// their hash is the render's `Inputs-Digest`.
    pub sources: Vec<PathBuf>,
    /// Where each setting of `project`, `policy`, `templates`, `limits`,
    /// `gitops` and `images` is written, by dotted path (for messages).
    pub settings: BTreeMap<String, (PathBuf, Location)>,
}

/// An image with templated parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    /// Repository template.
    pub repository: String,
    /// Tag template.
    pub tag: String,
    /// How CI builds it, when declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<super::raw::ImageBuild>,
    /// The file that defines it (services.yaml or an imported fragment).
    #[serde(skip)]
    pub file: PathBuf,
    /// Where `repository` and `tag` are written in `file`.
    #[serde(skip)]
    pub positions: (Location, Location),
}

/// One environment, after `from` inheritance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Environment {
    /// Its name.
    pub name: String,
    /// The file that defines it (relative to the root).
    pub file: PathBuf,
    /// The chain it inherits from, nearest first.
    pub inherits: Vec<String>,
    /// Rendered once per slot.
    pub slots: bool,
    /// Namespace template.
    pub namespace: String,
    /// Whether the project owns its namespace (`manageNamespace`, default
    /// true): renders its Namespace object and lets the glue create it.
    pub manage_namespace: bool,
    /// Host template.
    pub domain: Option<String>,
    /// TLS settings.
    pub tls: Option<RawTls>,
    /// Idle TTL (slot environments only).
    #[serde(with = "humantime_serde_opt")]
    pub idle_ttl: Option<Duration>,
    /// Slot capacity.
    pub max_slots: Option<u32>,
    /// Destination cluster of its Argo CD Applications (none: Argo CD's own).
    pub cluster: Option<RawCluster>,
    /// Flux apply settings (service account, decryption).
    pub flux: Option<RawFlux>,
    /// The stores its secrets may read, by name.
    pub secret_stores: BTreeMap<String, RawSecretStore>,
    /// NetworkPolicy settings (slot environments).
    pub isolation: Option<RawIsolation>,
    /// ResourceQuota `hard` limits.
    pub quota: Option<BTreeMap<String, String>>,
    /// LimitRange limits for containers.
    pub limit_range: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// Template variables.
    pub vars: serde_yaml::Mapping,
    /// Where templated fields (`namespace`, `domain`) are written, for messages.
    #[serde(skip)]
    pub positions: BTreeMap<String, (PathBuf, Location)>,
}

mod humantime_serde_opt {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

/// What a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    /// From `infrastructure`.
    Infrastructure,
    /// From `services`.
    Service,
    /// The `agent` section.
    Agent,
}

/// A component: one unit of manifests with a stage and dependencies.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// Name (DNS label).
    pub name: String,
    /// Where it came from.
    pub kind: ComponentKind,
    /// Stage name (`agent` for the agent).
    pub stage: String,
    /// Index of the stage (number of stages for the agent).
    pub stage_index: usize,
    /// Dependencies by name.
    pub depends_on: Vec<String>,
    /// `when` expression.
    pub when: Option<String>,
    /// `envs` shorthand.
    pub envs: Option<Vec<String>>,
    /// Image name.
    pub image: Option<String>,
    /// Manifest files (relative to root), glob-expanded, in declaration order.
    pub manifests: Vec<PathBuf>,
    /// Overlays by environment name.
    pub overlays: BTreeMap<String, Overlay>,
    /// The component's own values: defaults under the environment's `vars`.
    pub vars: serde_yaml::Mapping,
    /// The presets it uses, in order.
    pub presets: Vec<String>,
    /// The file that defines it (services.yaml or an imported fragment).
    #[serde(skip)]
    pub file: PathBuf,
    /// Line of the component in services.yaml, for messages.
    #[serde(skip)]
    pub line: usize,
    /// Where `when`, each overlay and each overlay string are written, by
    /// their path inside the component (`when`, `overlays.dev.env.LOG`).
    #[serde(skip)]
    pub positions: BTreeMap<YamlPath, Location>,
}

impl Component {
    /// Where the value at `path` (inside the component) is written: its own
    /// position, else its nearest parent's, else the component's line.
    pub fn location(&self, path: &YamlPath) -> Location {
        let mut at = path.clone();
        loop {
            if let Some(l) = self.positions.get(&at) {
                return *l;
            }
            if at.0.pop().is_none() {
                return Location { line: self.line, col: 1 };
            }
        }
    }
}

/// Policy switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Extra cluster-scoped kinds.
    pub cluster_scoped_kinds: Vec<String>,
    /// Kinds outside the Kubernetes API declared namespaced (`group/Kind`).
    pub namespaced_kinds: Vec<String>,
    /// Namespaces no target may render (besides the built-in reserved ones).
    pub reserved_namespaces: Vec<String>,
    /// Secrets with data allowed.
    pub allow_plain_secrets: bool,
    /// Jobs get a spec-hash suffix.
    pub hash_job_names: bool,
}

/// Where GitOps controllers find the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gitops {
    /// Repository URL.
    pub repo_url: String,
    /// Branch to sync.
    pub revision: String,
    /// Argo CD namespace.
    pub argocd_namespace: String,
    /// Argo CD project.
    pub argocd_project: String,
    /// Flux namespace.
    pub flux_namespace: String,
    /// Flux GitRepository name.
    pub flux_source: String,
    /// Flux `interval` of the GitRepository and the Kustomizations.
    pub interval: FluxDuration,
    /// Flux `wait`/`timeout` set per stage (`agent` for the agent's).
    pub stages: BTreeMap<String, StageSync>,
}

/// Flux settings of one stage; `None` takes the glue's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageSync {
    /// Flux `timeout`.
    pub timeout: Option<FluxDuration>,
    /// Flux `wait`.
    pub wait: Option<bool>,
}

/// A duration as Flux reads it — Go's units `h`, `m`, `s`, `ms`, as in
/// `30m` or `1h30m` — checked when the inventory loads, so the glue never
/// emits one the Flux CRDs reject (`2days` is a duration to humantime, not
/// to Flux).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FluxDuration(String);

impl FluxDuration {
    /// Checks `text`; `positive` also refuses a zero duration.
    pub fn parse(text: &str, positive: bool) -> Result<Self, String> {
        if let Some(problem) = flux_duration_problem(text) {
            return Err(problem);
        }
        if positive && text.chars().all(|c| !c.is_ascii_digit() || c == '0') {
            return Err(format!("`{text}` is zero; use a positive duration such as `5m`"));
        }
        Ok(FluxDuration(text.to_owned()))
    }

    /// `gitops.interval` when the inventory does not set it.
    pub fn default_interval() -> Self {
        FluxDuration("5m".to_owned())
    }

    /// The duration as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `text` is not a Flux (Go) duration such as `30m` or `1h30m`.
pub fn flux_duration_problem(text: &str) -> Option<String> {
    let mut rest = text;
    let mut units = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..digits];
        let unit = ["ms", "h", "m", "s"].into_iter().find(|u| rest[digits..].starts_with(u));
        match (number.parse::<f64>(), unit) {
            (Ok(_), Some(u)) if !number.starts_with('.') && !number.ends_with('.') => rest = &rest[digits + u.len()..],
            _ => {
                return Some(format!(
                    "`{text}` is not a Flux duration: write e.g. `30m` or `1h30m` (units h, m, s, ms)"
                ))
            }
        }
        units += 1;
    }
    (units == 0).then(|| "an empty duration: write e.g. `30m`".to_owned())
}

/// Template sandbox limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// minijinja fuel per template render.
    pub fuel: u64,
    /// Rendered bytes per target.
    pub max_output_bytes: u64,
    /// Nesting of partial calls.
    pub max_partial_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { fuel: 5_000_000, max_output_bytes: 16 * 1024 * 1024, max_partial_depth: 32 }
    }
}

impl Limits {
    /// Upper bounds a project may raise its limits to.
    pub const CEILING: Limits =
        Limits { fuel: 500_000_000, max_output_bytes: 512 * 1024 * 1024, max_partial_depth: 128 };
}

impl Inventory {
    /// An error at `file:location` with the source line attached.
    pub fn diagnostic(
        &self,
        file: &std::path::Path,
        location: Location,
        message: impl Into<String>,
    ) -> crate::diagnostic::Diagnostic {
        let d = crate::diagnostic::Diagnostic::error(file, Some(location), message);
        match self.texts.get(file) {
            Some(text) => d.with_source(text),
            None => d,
        }
    }

    /// Where setting `path` (dotted, as [`crate::inventory::walls`] names
    /// it) is written: its own position, else its nearest parent's, else
    /// the file that would hold it.
    pub fn setting_location(&self, path: &str) -> (PathBuf, Option<Location>) {
        if let Some(rest) = path.strip_prefix("environments.") {
            let (env, field) = rest.split_once('.').unwrap_or((rest, ""));
            return match self.environments.get(env) {
                Some(e) => match e.positions.get(field) {
                    Some((file, at)) => (file.clone(), Some(*at)),
                    None => (e.file.clone(), None),
                },
                None => (self.file.clone(), None),
            };
        }
        let mut at = path;
        loop {
            if let Some((file, location)) = self.settings.get(at) {
                return (file.clone(), Some(*location));
            }
            match at.rfind('.') {
                Some(i) => at = &at[..i],
                None => return (self.file.clone(), None),
            }
        }
    }

    /// The environment called `name`.
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.get(name)
    }

    /// A component (or the agent) by name.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().chain(self.agent.as_ref()).find(|c| c.name == name)
    }

    /// Wave of the agent: after every stage.
    pub fn agent_wave(&self) -> u32 {
        10 * self.stages.len() as u32
    }

    /// Every manifest file of every component, sorted and deduplicated.
    pub fn manifest_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> =
            self.components.iter().chain(self.agent.as_ref()).flat_map(|c| c.manifests.iter().cloned()).collect();
        files.sort();
        files.dedup();
        files
    }
}
