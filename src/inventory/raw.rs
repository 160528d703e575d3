//! The shape of `services.yaml` and `environments/<name>.yaml` as serde sees it.
//!
//! These structs mirror the YAML one to one (and generate the JSON Schema);
//! nothing here is checked beyond types. `resolve` turns them into the
//! validated [`crate::inventory::Inventory`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::scalar::Scalar;
use super::yaml::YamlPath;

/// The only `apiVersion` this build understands.
pub const API_VERSION: &str = "codex-k8s.io/v1alpha1";
/// The only `kind`.
pub const KIND: &str = "ServiceStack";

/// `services.yaml`: a whole project's runtime, described once.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "codex-k8s ServiceStack")]
pub struct RawInventory {
    /// Always `codex-k8s.io/v1alpha1`.
    pub api_version: String,
    /// Always `ServiceStack`.
    pub kind: String,
    /// Project name, a DNS-1123 label; prefixes namespaces and labels.
    pub project: String,
    /// Fragment files merged into this one: paths or globs relative to this
    /// file (a fragment may import more, relative to itself).
    #[serde(default)]
    pub imports: Vec<String>,
    /// Where partials live and which environment variables templates may read.
    #[serde(default)]
    pub templates: RawTemplates,
    /// Stage order; default `[stateful, migrations, internal, edge, frontend]`.
    #[serde(default)]
    pub stages: Option<Vec<String>>,
    /// Version strings by name, available to templates as `versions`.
    #[serde(default)]
    pub versions: BTreeMap<String, Scalar>,
    /// Container images by name; `repository` and `tag` are templates.
    #[serde(default)]
    pub images: BTreeMap<String, RawImage>,
    /// Environments by name (more may live in `environments/<name>.yaml`).
    #[serde(default)]
    pub environments: BTreeMap<String, RawEnvironment>,
    /// Stateful dependencies; their stage defaults to the first stage.
    #[serde(default)]
    pub infrastructure: Vec<RawComponent>,
    /// Application components; their stage defaults to `internal`.
    #[serde(default)]
    pub services: Vec<RawComponent>,
    /// Named partial components that components reuse with `use: [name, …]`.
    #[serde(default)]
    pub presets: BTreeMap<String, RawPreset>,
    /// The AI agent Job, rendered after the last stage in slot environments.
    #[serde(default)]
    pub agent: Option<RawAgent>,
    /// Render-time policy checks.
    #[serde(default)]
    pub policy: RawPolicy,
    /// Sandbox limits for templates.
    #[serde(default)]
    pub limits: RawLimits,
    /// How the Argo CD and Flux objects point at the rendered tree.
    #[serde(default)]
    pub gitops: RawGitops,
    /// What the cluster provides that no target renders: the classes,
    /// issuers and CRDs rendered references may name.
    #[serde(default)]
    pub prerequisites: super::prerequisites::Prerequisites,
    /// The Secrets targets need, declared: read from a store the environment
    /// allows, generated in the cluster, or provided out of band. The
    /// renderer never sees a value: it writes External Secrets Operator
    /// objects.
    #[serde(default)]
    pub secrets: Vec<RawSecret>,
}

/// One entry of `secrets:` — a Secret of the target's namespace. Exactly one
/// of `store` (with `data`), `generate` and `provided`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSecret {
    /// The Secret's name, a template (e.g. `"{{ project }}-postgres"`).
    pub name: String,
    /// Environments it applies to; default every environment.
    #[serde(default)]
    pub envs: Option<Vec<String>>,
    /// The Secret's type; default `Opaque` (`kubernetes.io/dockerconfigjson`
    /// for a pull secret).
    #[serde(default, rename = "type")]
    pub secret_type: Option<String>,
    /// Read from this store of the environment's `secretStores`.
    #[serde(default)]
    pub store: Option<String>,
    /// With `store`: each key of the Secret and where the store holds it.
    #[serde(default)]
    pub data: BTreeMap<String, RawRemoteRef>,
    /// Generated in the cluster once (an ESO `Password` generator), never
    /// rotated: a database keeps working.
    #[serde(default)]
    pub generate: Option<RawGenerate>,
    /// Created out of band (plain environments only): its keys.
    #[serde(default)]
    pub provided: Option<Vec<String>>,
}

/// Where a store holds one key of a Secret.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRemoteRef {
    /// The remote key, a template (`{{ slot }}` allowed); it must stay under
    /// the store's `prefix`.
    pub key: String,
    /// A property of the remote value (a JSON field), when it has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
}

/// `generate:` — random values created once in the cluster.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawGenerate {
    /// The keys to generate (one password each).
    pub keys: Vec<String>,
    /// Length of each; default 32.
    #[serde(default)]
    pub length: Option<u32>,
}

/// `secretStores.<name>:` — a store an environment's secrets may read.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSecretStore {
    /// `ClusterSecretStore` (default) or `SecretStore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The store's name in the cluster.
    pub name: String,
    /// Every remote key read through this store starts with it (after
    /// templating), e.g. `shop/ai/`.
    pub prefix: String,
}

/// `isolation:` — the NetworkPolicy a slot gets (slot environments).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawIsolation {
    /// Namespaces whose pods may reach the slot besides the slot itself: the
    /// ingress controller's; default `[ingress-nginx]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_from_namespaces: Option<Vec<String>>,
    /// Egress rules (NetworkPolicy `egress` entries) allowed besides DNS and
    /// the slot itself, e.g. HTTPS to the internet for the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<serde_json::Value>")]
    pub egress: Vec<serde_json::Value>,
}

/// `gitops:` — where Argo CD and Flux find the rendered tree.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawGitops {
    /// Git URL Argo CD clones; default `https://git.example.com/<project>.git`.
    #[serde(default, rename = "repoURL")]
    pub repo_url: Option<String>,
    /// Branch or tag to sync; default `rendered`, the deploy branch CI writes
    /// (`render … --branch rendered --push origin`).
    #[serde(default)]
    pub revision: Option<String>,
    /// Namespace of Argo CD's Application objects; default `argocd`.
    #[serde(default)]
    pub argocd_namespace: Option<String>,
    /// Argo CD project of the plain environments' Applications; default
    /// `default` (slot Applications use their environment's AppProject).
    #[serde(default)]
    pub argocd_project: Option<String>,
    /// Namespace of Flux Kustomizations; default `flux-system`.
    #[serde(default)]
    pub flux_namespace: Option<String>,
    /// Name of the Flux GitRepository holding this repository; default the project name.
    #[serde(default)]
    pub flux_source: Option<String>,
    /// Flux reconcile interval, a Go duration (units h, m, s, ms: `5m`, `1h30m`); default `5m`.
    #[serde(default)]
    pub interval: Option<String>,
    /// Flux `wait` and `timeout` per stage (a stage name or `agent`).
    #[serde(default)]
    pub stages: BTreeMap<String, RawStageSync>,
}

/// `gitops.stages.<stage>:` — how Flux applies one stage.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawStageSync {
    /// Flux `timeout` (a Go duration such as `30m` or `1h30m`); default 10m,
    /// or for a stage with Jobs: their longest `activeDeadlineSeconds` + 1 min
    /// (at least 10m), 30m when a Job has no deadline.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Flux `wait` (health of every object before the next stage); default
    /// `true`, `false` for the agent stage.
    #[serde(default)]
    pub wait: Option<bool>,
}

/// `templates:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTemplates {
    /// Globs of partial files; default `partials/**/*.j2`.
    #[serde(default)]
    pub partials: Option<Vec<String>>,
    /// Names or globs of environment variables `env_or()` may read; default none.
    #[serde(default)]
    pub env: Vec<String>,
}

/// `images.<name>:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawImage {
    /// Registry and path, a template.
    pub repository: String,
    /// Tag, a template (e.g. `"{{ env }}-{{ versions.users }}"`).
    pub tag: String,
    /// How CI builds the image (listed by `codex-k8s images`).
    #[serde(default)]
    pub build: Option<ImageBuild>,
}

/// `images.<name>.build:`: how CI builds the image; the renderer only lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageBuild {
    /// Build context, relative to the project root; default `.`.
    #[serde(default)]
    pub context: Option<String>,
    /// Dockerfile, relative to the project root; default `<context>/Dockerfile`.
    #[serde(default)]
    pub dockerfile: Option<String>,
    /// Build target (stage) of the Dockerfile; default: its last stage.
    #[serde(default)]
    pub target: Option<String>,
    /// Build target per environment, over `target` (e.g. `{dev: hot-reload}`).
    #[serde(default)]
    pub targets: BTreeMap<String, String>,
}

impl ImageBuild {
    /// The build context (`.` when unset).
    pub fn context(&self) -> &str {
        self.context.as_deref().unwrap_or(".")
    }

    /// The Dockerfile (`<context>/Dockerfile` when unset).
    pub fn dockerfile(&self) -> String {
        match &self.dockerfile {
            Some(d) => d.clone(),
            None if self.context() == "." => "Dockerfile".into(),
            None => format!("{}/Dockerfile", self.context().trim_end_matches('/')),
        }
    }

    /// The build target for environment `env`: `targets.<env>`, else `target`.
    pub fn target_for(&self, env: &str) -> Option<&str> {
        self.targets.get(env).or(self.target.as_ref()).map(String::as_str)
    }
}

/// `environments.<name>:` or the whole of `environments/<name>.yaml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawEnvironment {
    /// Inherit from this environment (maps merge, lists replace).
    #[serde(default)]
    pub from: Option<String>,
    /// Render once per slot (one namespace per PR/issue run).
    #[serde(default)]
    pub slots: Option<bool>,
    /// Namespace, a template.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `false`: the namespace belongs to someone else (a platform team);
    /// no Namespace object is rendered and the GitOps glue never creates it.
    /// Plain environments only. Default `true`.
    #[serde(default)]
    pub manage_namespace: Option<bool>,
    /// Public host, a template (`host` in templates).
    #[serde(default)]
    pub domain: Option<String>,
    /// TLS settings referenced by templates (`tls`).
    #[serde(default)]
    pub tls: Option<RawTls>,
    /// How long a slot may stay idle before the watcher removes it (e.g. `8h`).
    #[serde(default, rename = "idleTTL")]
    pub idle_ttl: Option<String>,
    /// Most slots this environment may hold at once.
    #[serde(default)]
    pub max_slots: Option<u32>,
    /// The cluster the environment's Argo CD Applications deploy to; default
    /// the cluster Argo CD runs in (`https://kubernetes.default.svc`).
    #[serde(default)]
    pub cluster: Option<RawCluster>,
    /// How Flux applies the environment's Kustomizations.
    #[serde(default)]
    pub flux: Option<RawFlux>,
    /// The secret stores the environment's `secrets:` may read, by name.
    #[serde(default)]
    pub secret_stores: Option<BTreeMap<String, RawSecretStore>>,
    /// A slot's NetworkPolicy (slot environments get one by default).
    #[serde(default)]
    pub isolation: Option<RawIsolation>,
    /// A ResourceQuota for the namespace: its `hard` limits
    /// (`requests.cpu: "4"`, `limits.memory: 16Gi`, `pods: "30"`).
    #[serde(default)]
    pub quota: Option<BTreeMap<String, String>>,
    /// A LimitRange for the namespace's containers: `default`,
    /// `defaultRequest`, `max` (each `{cpu, memory}`).
    #[serde(default)]
    pub limit_range: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// Free-form values for templates (`vars`).
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub vars: Option<serde_yaml::Mapping>,
}

/// `cluster:` — the destination cluster of Argo CD Applications: one of
/// `server` (its API URL) or `name` (a cluster registered in Argo CD).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCluster {
    /// The cluster's API server URL, as Argo CD knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The cluster's name in Argo CD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `flux:` — what Flux's kustomize-controller applies the environment with.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawFlux {
    /// Service account (in `gitops.fluxNamespace`) the Kustomizations
    /// impersonate, so the cluster's RBAC bounds what they may apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// SOPS decryption of the environment's files (plain environments only:
    /// a slot never holds the keys to the project's encrypted files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption: Option<RawDecryption>,
}

/// `flux.decryption:` — Flux's SOPS decryption.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawDecryption {
    /// Decryption provider; Flux knows `sops`.
    pub provider: String,
    /// Secret (in `gitops.fluxNamespace`) holding the decryption keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<RawSecretRef>,
}

/// A Secret by name.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawSecretRef {
    /// The Secret's name.
    pub name: String,
}

/// `tls:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTls {
    /// cert-manager ClusterIssuer name.
    #[serde(default)]
    pub cluster_issuer: Option<String>,
    /// cert-manager Issuer name (namespaced).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Secret holding the certificate.
    #[serde(default)]
    pub secret_name: Option<String>,
}

/// One entry of `infrastructure:` or `services:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawComponent {
    /// Component name, a DNS-1123 label, unique across the file.
    pub name: String,
    /// Stage; defaults to the first stage (infrastructure) or `internal` (services).
    #[serde(default)]
    pub stage: Option<String>,
    /// Presets (names of `presets` entries) this component starts from, in
    /// order: a later one over an earlier one, the component over all.
    #[serde(default, rename = "use")]
    pub uses: Vec<String>,
    /// Components that must be ready first (same or earlier stage).
    #[serde(default)]
    pub depends_on: Option<Vec<String>>,
    /// A minijinja expression; the component renders only where it is true.
    #[serde(default)]
    pub when: Option<String>,
    /// Shorthand: enabled only in these environments.
    #[serde(default)]
    pub envs: Option<Vec<String>>,
    /// Name of an entry of `images`.
    #[serde(default)]
    pub image: Option<String>,
    /// Manifest templates (paths or globs, relative to services.yaml);
    /// required unless a preset gives them.
    #[serde(default)]
    pub manifests: Option<Vec<String>>,
    /// Post-render changes per environment.
    #[serde(default)]
    pub overlays: BTreeMap<String, RawOverlay>,
    /// Values for this component's templates: defaults that the
    /// environment's `vars` (and `overlays.<env>.vars`) override.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub vars: Option<serde_yaml::Mapping>,
}

/// `presets.<name>`: a partial component. Components name presets in `use`;
/// the fields they leave unset come from them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPreset {
    /// Stage.
    #[serde(default)]
    pub stage: Option<String>,
    /// Components that must be ready first.
    #[serde(default)]
    pub depends_on: Option<Vec<String>>,
    /// A minijinja expression; the component renders only where it is true.
    #[serde(default)]
    pub when: Option<String>,
    /// Shorthand: enabled only in these environments.
    #[serde(default)]
    pub envs: Option<Vec<String>>,
    /// Name of an entry of `images`.
    #[serde(default)]
    pub image: Option<String>,
    /// Manifest templates (paths or globs, relative to services.yaml).
    #[serde(default)]
    pub manifests: Option<Vec<String>>,
    /// Post-render changes per environment (merged with the component's).
    #[serde(default)]
    pub overlays: BTreeMap<String, RawOverlay>,
    /// Values (merged deeply under the component's own `vars`).
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub vars: Option<serde_yaml::Mapping>,
}

/// `agent:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawAgent {
    /// Slot environments the agent runs in; default every slot environment.
    #[serde(default)]
    pub envs: Option<Vec<String>>,
    /// Name of an entry of `images`.
    #[serde(default)]
    pub image: Option<String>,
    /// Manifest templates of the agent Job.
    pub manifests: Vec<String>,
    /// Post-render changes per environment.
    #[serde(default)]
    pub overlays: BTreeMap<String, RawOverlay>,
}

// Read as is: the same type is the validated model's `Overlay`. A new kind
// of change is a field here (with its strings in `templates`) and its effect
// in `render/overlay.rs`; presets merge it with no code (lists given
// replace, mappings merge).
/// `overlays.<env>:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawOverlay {
    /// Volumes added to every pod template of the component.
    #[serde(default)]
    pub pvc_mounts: Vec<RawPvcMount>,
    /// Kinds removed from the component's output.
    #[serde(default)]
    pub drop_kinds: Vec<String>,
    /// Environment variables added to every container.
    #[serde(default)]
    pub env: BTreeMap<String, Scalar>,
    /// Values over the component's and the environment's `vars` in this environment.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub vars: Option<serde_yaml::Mapping>,
}

impl RawOverlay {
    /// Every template string of the overlay with its path inside the
    /// overlay: what the engine compiles, and where a failure is shown.
    pub fn templates(&self) -> Vec<(YamlPath, &str)> {
        let mut out = Vec::new();
        for (i, m) in self.pvc_mounts.iter().enumerate() {
            let at = YamlPath::default().key("pvcMounts").index(i);
            out.push((at.key("claimName"), m.claim_name.as_str()));
            out.push((at.key("mountPath"), m.mount_path.as_str()));
            out.extend(m.sub_path.as_deref().map(|t| (at.key("subPath"), t)));
            out.extend(m.name.as_deref().map(|t| (at.key("name"), t)));
        }
        for (k, v) in &self.env {
            out.push((YamlPath::default().key("env").key(k), v.0.as_str()));
        }
        out
    }
}

/// One `pvcMounts` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPvcMount {
    /// PersistentVolumeClaim name, a template.
    pub claim_name: String,
    /// Where it is mounted in every container.
    pub mount_path: String,
    /// Sub-path inside the volume, a template.
    #[serde(default)]
    pub sub_path: Option<String>,
    /// Mount read-only (default false).
    #[serde(default)]
    pub read_only: bool,
    /// Volume name; default derived from the claim name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `policy:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPolicy {
    /// More kinds to treat as cluster-scoped (refused in slot environments).
    #[serde(default)]
    pub cluster_scoped_kinds: Vec<String>,
    /// Kinds outside the Kubernetes API (CRDs) that are namespaced, as
    /// `group/Kind` (e.g. `monitoring.coreos.com/ServiceMonitor`); slot
    /// environments refuse any other kind the Kubernetes API does not know.
    #[serde(default)]
    pub namespaced_kinds: Vec<String>,
    /// Namespaces no environment or slot may render, in addition to
    /// kube-system, kube-public, kube-node-lease, default and the GitOps
    /// controllers' namespaces.
    #[serde(default)]
    pub reserved_namespaces: Vec<String>,
    /// Allow `Secret` objects with `data`/`stringData` (default false).
    #[serde(default)]
    pub allow_plain_secrets: bool,
    /// Suffix Job names with a hash of their spec (default true).
    #[serde(default)]
    pub hash_job_names: Option<bool>,
}

/// `limits:` — the template sandbox.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawLimits {
    /// Instructions one template render may execute (minijinja fuel).
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Bytes of rendered YAML one target may produce.
    #[serde(default)]
    pub max_output_bytes: Option<u64>,
    /// Nesting depth of partial calls.
    #[serde(default)]
    pub max_partial_depth: Option<u32>,
}
