//! `prerequisites:` of `services.yaml`: the cluster-wide objects (classes,
//! issuers, CRDs) targets may name without rendering them. Read by serde
//! as written, checked and sorted by `resolve`; `render::refs` resolves
//! references against it.

use serde::Serialize;

/// `prerequisites:` — cluster-wide objects every target may rely on without
/// rendering them. A reference to any other class, issuer or CRD is an
/// error (`render::refs`); `plan` lists what each target uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Prerequisites {
    /// IngressClass names (`spec.ingressClassName` of Ingresses).
    #[serde(default)]
    pub ingress_classes: Vec<String>,
    /// cert-manager ClusterIssuer names (the `cert-manager.io/cluster-issuer`
    /// annotation, a Certificate's `issuerRef` of kind ClusterIssuer).
    #[serde(default)]
    pub cluster_issuers: Vec<String>,
    /// StorageClass names (`storageClassName` of claims and claim templates).
    #[serde(default)]
    pub storage_classes: Vec<String>,
    /// PriorityClass names (`priorityClassName` of pods), besides the
    /// built-in `system-cluster-critical` and `system-node-critical`.
    #[serde(default)]
    pub priority_classes: Vec<String>,
    /// Custom resource definitions, as `group/Kind`
    /// (`external-secrets.io/ExternalSecret`): every kind outside the
    /// Kubernetes API that a target renders needs one.
    #[serde(default)]
    pub crds: Vec<String>,
}
