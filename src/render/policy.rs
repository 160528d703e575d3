//! Policy checks on a target's objects (SPEC section 4, step 6), and the
//! scope rules namespace defaulting relies on.

use std::collections::BTreeMap;

use super::object::{ObjectId, RenderedObject};

/// Built-in cluster-scoped kinds (core Kubernetes plus common add-ons).
pub const CLUSTER_SCOPED_KINDS: [&str; 22] = [
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "RuntimeClass",
    "IngressClass",
    "VolumeAttachment",
    "CSIDriver",
    "CSINode",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "APIService",
    "FlowSchema",
    "PriorityLevelConfiguration",
    "ClusterIssuer",
    "CertificateSigningRequest",
];

/// Whether `kind` is cluster-scoped (built-in list plus `policy.clusterScopedKinds`).
pub fn is_cluster_scoped(kind: &str, extra: &[String]) -> bool {
    CLUSTER_SCOPED_KINDS.contains(&kind) || extra.iter().any(|k| k == kind)
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
    /// `policy.clusterScopedKinds`.
    pub extra_cluster_scoped: &'a [String],
}

/// All violations among `objects`, in object order.
pub fn check(objects: &[RenderedObject], rules: Rules<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<&ObjectId, usize> = BTreeMap::new();
    for (i, o) in objects.iter().enumerate() {
        let kind = o.id.kind.as_str();
        let own_namespace = kind == "Namespace" && o.id.name == rules.namespace;
        if rules.slot_env && !own_namespace && is_cluster_scoped(kind, rules.extra_cluster_scoped) {
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
        let rules = Rules { slot_env: true, namespace: "ns", allow_plain_secrets: false, extra_cluster_scoped: &[] };
        let list = object(
            "apiVersion: v1\nkind: List\nmetadata: {name: l, namespace: ns}\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s, namespace: kube-system}, data: {k: dg==}}\n",
        );
        let v = check(&[list], rules);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("hiding them"), "{}", v[0].message);
        let fine = object("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: ns}\ndata: {items: x}\n");
        assert!(check(&[fine], rules).is_empty());
    }
}
