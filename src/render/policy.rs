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
    if ADDON_CLUSTER_SCOPED_KINDS.contains(&kind) {
        return Scope::Cluster;
    }
    Scope::Unknown
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

/// All violations among `objects`, in object order.
pub fn check(objects: &[RenderedObject], rules: Rules<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<&ObjectId, usize> = BTreeMap::new();
    for (i, o) in objects.iter().enumerate() {
        let kind = o.id.kind.as_str();
        let own_namespace = kind == "Namespace" && o.id.group().is_empty() && o.id.name == rules.namespace;
        let scope = scope(o.id.group(), kind, rules.scopes);
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
}
