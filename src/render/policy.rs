//! Policy checks on a target's objects (SPEC section 4, step 6), and the
//! scope rules namespace defaulting relies on.

use std::collections::BTreeMap;

use super::kinds;
use super::object::{ObjectId, RenderedObject};

/// Cluster-scoped kinds of common add-ons (not in the Kubernetes API, so
/// not in [`kinds::BUILTIN_KINDS`]): namespace defaulting in plain
/// environments leaves them alone. In slot environments every kind outside
/// the Kubernetes API is refused unless declared namespaced.
pub const ADDON_CLUSTER_SCOPED_KINDS: [&str; 6] = [
    "ClusterIssuer",
    "GatewayClass",
    "VolumeSnapshotClass",
    "VolumeSnapshotContent",
    "ClusterSecretStore",
    "ClusterPolicy",
];

/// Namespaced kinds outside the Kubernetes API that the renderer itself
/// generates (the External Secrets Operator declarations of `secrets:`).
pub const GENERATED_KINDS: [(&str, &str); 2] =
    [("external-secrets.io", "ExternalSecret"), ("generators.external-secrets.io", "Password")];

/// API groups a slot's templates may not use: secrets reach a slot only
/// through the inventory's `secrets:`, under the stores its walls allow.
const SECRET_GROUPS: [&str; 2] = ["external-secrets.io", "generators.external-secrets.io"];

/// Where an object's kind lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Cluster-wide.
    Cluster,
    /// Inside a namespace.
    Namespaced,
    /// Neither the Kubernetes API nor the inventory knows the kind (a CRD).
    Unknown,
}

/// What the inventory says about kinds (`policy.clusterScopedKinds` and
/// `policy.namespacedKinds`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ScopeRules<'a> {
    /// `policy.clusterScopedKinds`: kind names.
    pub cluster: &'a [String],
    /// `policy.namespacedKinds`: `group/Kind`.
    pub namespaced: &'a [String],
}

/// The scope of `kind` in API group `group` (`""` for core): the Kubernetes
/// API's own answer for built-in kinds, then the inventory's declarations.
pub fn scope(group: &str, kind: &str, rules: ScopeRules<'_>) -> Scope {
    if rules.cluster.iter().any(|k| k == kind) {
        return Scope::Cluster;
    }
    match kinds::builtin_scope(group, kind) {
        Some(true) => return Scope::Cluster,
        Some(false) => return Scope::Namespaced,
        None => {}
    }
    if rules.namespaced.iter().any(|d| d.split_once('/').is_some_and(|(g, k)| g == group && k == kind)) {
        return Scope::Namespaced;
    }
    if GENERATED_KINDS.contains(&(group, kind)) {
        return Scope::Namespaced;
    }
    if ADDON_CLUSTER_SCOPED_KINDS.contains(&kind) {
        return Scope::Cluster;
    }
    Scope::Unknown
}

/// Namespaced kinds of the Kubernetes API that are requests to the API
/// server, never stored objects a slot declares: a pod's node `Binding`,
/// evictions, access reviews, certificate requests.
const REQUESTS: [(&str, &str); 5] = [
    ("", "Binding"),
    ("authorization.k8s.io", "LocalSubjectAccessReview"),
    ("certificates.k8s.io", "PodCertificateRequest"),
    ("lifecycle.k8s.io", "Eviction"),
    ("lifecycle.k8s.io", "EvictionRequest"),
];

/// The namespaced kinds a slot may create, as `(group, kind)`, sorted: every
/// namespaced kind of the Kubernetes API and `policy.namespacedKinds` — the
/// list a slot environment's Argo CD AppProject allows
/// (`namespaceResourceWhitelist`), so the cluster refuses any other kind
/// even when the renderer's own checks were bypassed.
pub fn slot_kinds(namespaced: &[String]) -> Vec<(String, String)> {
    let builtin = kinds::BUILTIN_KINDS
        .iter()
        .filter(|k| !k.cluster && !REQUESTS.contains(&(k.group, k.kind)))
        .map(|k| (k.group.to_owned(), k.kind.to_owned()));
    let declared = namespaced.iter().filter_map(|d| d.split_once('/')).map(|(g, k)| (g.to_owned(), k.to_owned()));
    let generated = GENERATED_KINDS.iter().map(|(g, k)| ((*g).to_owned(), (*k).to_owned()));
    let all: std::collections::BTreeSet<(String, String)> = builtin.chain(declared).chain(generated).collect();
    all.into_iter().collect()
}

/// The API group of an `apiVersion` (`""` for the core group).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// A policy violation on one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Index into the checked objects.
    pub object: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

/// Inputs of the policy checks.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The target is a slot.
    pub slot_env: bool,
    /// The target's own namespace (its Namespace object is allowed in slots).
    pub namespace: &'a str,
    /// `policy.allowPlainSecrets`.
    pub allow_plain_secrets: bool,
    /// `policy.clusterScopedKinds` and `policy.namespacedKinds`.
    pub scopes: ScopeRules<'a>,
}

/// Whether `key` is one of the annotations the watcher keeps on a slot
/// Namespace — `codex-k8s.io/keep`, `codex-k8s.io/last-activity`, the agent
/// phase (`codex-k8s.io/agent-*`) and the readiness records
/// (`codex-k8s.io/ready*`). Only the watcher, or a person with kubectl,
/// sets them: a template that did could exempt its slot from idle removal
/// or forge its readiness.
pub fn is_watcher_key(key: &str) -> bool {
    const EXACT: [&str; 2] = ["codex-k8s.io/keep", "codex-k8s.io/last-activity"];
    EXACT.contains(&key) || key.starts_with("codex-k8s.io/agent-") || key.starts_with("codex-k8s.io/ready")
}

/// The watcher's keys among an object's labels and annotations, with where
/// each is (`annotations`, `labels`).
fn watcher_keys(value: &serde_yaml::Value) -> Vec<(&'static str, &str)> {
    let mut found = Vec::new();
    for field in ["annotations", "labels"] {
        let Some(map) = value.get("metadata").and_then(|m| m.get(field)).and_then(|m| m.as_mapping()) else {
            continue;
        };
        found.extend(map.keys().filter_map(|k| k.as_str()).filter(|k| is_watcher_key(k)).map(|k| (field, k)));
    }
    found
}

/// All violations among `objects`, in object order.
pub fn check(objects: &[RenderedObject], rules: Rules<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<&ObjectId, usize> = BTreeMap::new();
    for (i, o) in objects.iter().enumerate() {
        let kind = o.id.kind.as_str();
        let own_namespace = kind == "Namespace" && o.id.group().is_empty() && o.id.name == rules.namespace;
        let scope = scope(o.id.group(), kind, rules.scopes);
        if rules.slot_env && o.template.is_some() && SECRET_GROUPS.contains(&o.id.group()) {
            out.push(Violation {
                object: i,
                message: format!("{kind} `{}` ({}) is written by a template; in a slot environment secrets come only from the inventory's `secrets:`", o.id.name, o.id.api_version),
                help: "declare the Secret under `secrets:` (a store the environment allows, or `generate`); the renderer writes the ExternalSecret".into(),
            });
        }
        if rules.slot_env && scope == Scope::Unknown {
            out.push(Violation {
                object: i,
                message: format!(
                    "{kind} `{}` ({}) is not a Kubernetes API kind, so its scope is unknown; slot environments may only hold namespaced objects",
                    o.id.name, o.id.api_version
                ),
                help: format!(
                    "if it is namespaced, declare it under policy.namespacedKinds as `{}/{kind}`; otherwise render it in a plain environment",
                    o.id.group()
                ),
            });
        }
        if rules.slot_env && !own_namespace && scope == Scope::Cluster {
            out.push(Violation {
                object: i,
                message: format!(
                    "{kind} `{}` is cluster-scoped; slot environments may only hold namespaced objects",
                    o.id.name
                ),
                help:
                    "render it in a plain environment (e.g. a `platform` env), or restrict the component with `envs:`"
                        .into(),
            });
        }
        // kubectl and kustomize unpack `List` objects: their items would
        // escape every check here and the namespace rules of slots.
        if kind.ends_with("List") && o.value.get("items").is_some() {
            out.push(Violation {
                object: i,
                message: format!(
                    "{kind} `{}` wraps other objects in `items`, hiding them from namespace and policy checks",
                    o.id.name
                ),
                help: "render each item as its own YAML document (separate them with `---`)".into(),
            });
        }
        if kind == "Secret" && o.id.group().is_empty() && !rules.allow_plain_secrets {
            let carries = ["data", "stringData"]
                .into_iter()
                .filter(|k| o.value.get(*k).is_some_and(|v| !v.is_null()))
                .collect::<Vec<_>>();
            if !carries.is_empty() {
                out.push(Violation {
                    object: i,
                    message: format!("Secret `{}` carries `{}` in plain text; the rendered repository is readable", o.id.name, carries.join("`/`")),
                    help: "use a SealedSecret or an ExternalSecret, or set policy.allowPlainSecrets: true if the repository is private".into(),
                });
            }
        }
        for (field, key) in watcher_keys(&o.value) {
            out.push(Violation {
                object: i,
                message: format!("{kind} `{}` sets the {} `{key}`, which only the watcher sets", o.id.name, &field[..field.len() - 1]),
                help: "remove it: the watcher records agent phases, activity and readiness itself; a person pins a slot with `kubectl annotate namespace <ns> codex-k8s.io/keep=true`".into(),
            });
        }
        if kind == "Job" && o.value.get("spec").and_then(|s| s.get("ttlSecondsAfterFinished")).is_some() {
            out.push(Violation {
                object: i,
                message: format!("Job `{}` sets ttlSecondsAfterFinished", o.id.name),
                help: "remove it: once the TTL deletes the Job, Argo CD or Flux re-creates and re-runs it".into(),
            });
        }
        if let Some(&first) = seen.get(&o.id) {
            let other = &objects[first];
            out.push(Violation {
                object: i,
                message: format!(
                    "duplicate object {} (also rendered by component `{}`{})",
                    o.id,
                    other.component,
                    other.template.as_ref().map(|t| format!(", {}", t.display())).unwrap_or_default()
                ),
                help: "rename one of the two objects".into(),
            });
        } else {
            seen.insert(&o.id, i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(yaml: &str) -> RenderedObject {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        RenderedObject {
            id: ObjectId::of(&value).unwrap(),
            component: "c".into(),
            stage: "internal".into(),
            stage_index: 2,
            wave: 20,
            template: None,
            value,
        }
    }

    /// A `List` smuggled Secrets with data and cluster-scoped objects past
    /// the checks (and out of a slot's namespace): kubectl and kustomize unpack it.
    #[test]
    fn lists_are_refused_because_their_items_escape_the_checks() {
        let rules =
            Rules { slot_env: true, namespace: "ns", allow_plain_secrets: false, scopes: ScopeRules::default() };
        let list = object(
            "apiVersion: v1\nkind: List\nmetadata: {name: l, namespace: ns}\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s, namespace: kube-system}, data: {k: dg==}}\n",
        );
        let v = check(&[list], rules);
        assert!(v.iter().any(|v| v.message.contains("hiding them")), "{v:?}");
        let fine = object("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: ns}\ndata: {items: x}\n");
        assert!(check(&[fine], rules).is_empty());
    }

    #[test]
    fn a_slot_may_create_the_namespaced_api_kinds_and_the_declared_ones_only() {
        let kinds = slot_kinds(&["monitoring.coreos.com/ServiceMonitor".to_owned()]);
        let has = |g: &str, k: &str| kinds.iter().any(|(a, b)| a == g && b == k);
        assert!(has("apps", "Deployment") && has("", "Secret") && has("networking.k8s.io", "NetworkPolicy"));
        assert!(has("monitoring.coreos.com", "ServiceMonitor"));
        for (g, k) in [
            ("", "Namespace"),
            ("rbac.authorization.k8s.io", "ClusterRole"),
            ("", "Binding"),
            ("lifecycle.k8s.io", "Eviction"),
        ] {
            assert!(!has(g, k), "{g}/{k} allowed");
        }
        assert!(kinds.iter().all(|(_, k)| k != "*"));
        assert!(kinds.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    }

    /// A slot template that set the watcher's own annotations could pin its
    /// slot past the idle TTL or forge its readiness (issue 25 item 4).
    #[test]
    fn the_watchers_annotations_are_refused_on_any_object() {
        let rules =
            Rules { slot_env: true, namespace: "ns", allow_plain_secrets: false, scopes: ScopeRules::default() };
        for (field, key) in [
            ("annotations", "codex-k8s.io/keep"),
            ("annotations", "codex-k8s.io/last-activity"),
            ("annotations", "codex-k8s.io/agent-phase"),
            ("annotations", "codex-k8s.io/agent-finished-at"),
            ("annotations", "codex-k8s.io/ready-rendering"),
            ("annotations", "codex-k8s.io/ready.00-stateful"),
            ("labels", "codex-k8s.io/keep"),
        ] {
            for kind in ["Namespace", "ConfigMap"] {
                let name = if kind == "Namespace" { "ns" } else { "c" };
                let o = object(&format!(
                    "apiVersion: v1\nkind: {kind}\nmetadata: {{name: {name}, namespace: ns, {field}: {{'{key}': 'true'}}}}\n"
                ));
                let v = check(&[o], rules);
                assert!(
                    v.len() == 1 && v[0].message.contains(key) && v[0].message.contains(&format!("`{name}`")),
                    "{kind} {field} {key}: {v:?}"
                );
            }
        }
        let own = object("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, annotations: {codex-k8s.io/owner: x, keep: 'true'}}\n");
        assert!(check(&[own], rules).is_empty());
    }
}
