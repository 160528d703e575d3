//! The scope of every built-in Kubernetes kind, taken from k8s-openapi's
//! resource metadata (`Resource::GROUP`, `KIND` and the `Scope` type) rather
//! than typed by hand: the list below names every type of k8s-openapi
//! (feature `latest`) that implements `Resource` with a cluster or namespace
//! scope, and the test `table_covers_every_kind_k8s_openapi_knows` fails when
//! an upgrade brings a kind this list does not name. Scope belongs to a
//! group and kind, not a version, so the table is keyed by `(group, kind)`;
//! the kinds of the older API versions k8s-openapi carries are all present
//! in the latest one (the test checks that too).

use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope, Resource};

/// Whether a k8s-openapi scope type is cluster-wide.
trait ScopeKind {
    const CLUSTER: bool;
}

impl ScopeKind for ClusterResourceScope {
    const CLUSTER: bool = true;
}

impl ScopeKind for NamespaceResourceScope {
    const CLUSTER: bool = false;
}

/// One built-in kind: API group (`""` for core), kind, cluster-scoped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinKind {
    /// API group, `""` for the core group.
    pub group: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Cluster-scoped (else namespaced).
    pub cluster: bool,
}

const fn entry<T>() -> BuiltinKind
where
    T: Resource,
    T::Scope: ScopeKind,
{
    BuiltinKind { group: T::GROUP, kind: T::KIND, cluster: <T::Scope as ScopeKind>::CLUSTER }
}

macro_rules! table {
    ($($path:path),* $(,)?) => {
        [$(entry::<$path>()),*]
    };
}

/// Every built-in kind k8s-openapi knows, one entry per API version.
pub static BUILTIN_KINDS: &[BuiltinKind] = &table![
    k8s_openapi::api::admissionregistration::v1::MutatingAdmissionPolicy,
    k8s_openapi::api::admissionregistration::v1::MutatingAdmissionPolicyBinding,
    k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration,
    k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy,
    k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
    k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
    k8s_openapi::api::admissionregistration::v1alpha1::MutatingAdmissionPolicy,
    k8s_openapi::api::admissionregistration::v1alpha1::MutatingAdmissionPolicyBinding,
    k8s_openapi::api::admissionregistration::v1beta1::MutatingAdmissionPolicy,
    k8s_openapi::api::admissionregistration::v1beta1::MutatingAdmissionPolicyBinding,
    k8s_openapi::api::apiserverinternal::v1alpha1::StorageVersion,
    k8s_openapi::api::apps::v1::ControllerRevision,
    k8s_openapi::api::apps::v1::DaemonSet,
    k8s_openapi::api::apps::v1::Deployment,
    k8s_openapi::api::apps::v1::ReplicaSet,
    k8s_openapi::api::apps::v1::StatefulSet,
    k8s_openapi::api::authentication::v1::SelfSubjectReview,
    k8s_openapi::api::authentication::v1::TokenReview,
    k8s_openapi::api::authorization::v1::LocalSubjectAccessReview,
    k8s_openapi::api::authorization::v1::SelfSubjectAccessReview,
    k8s_openapi::api::authorization::v1::SelfSubjectRulesReview,
    k8s_openapi::api::authorization::v1::SubjectAccessReview,
    k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler,
    k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
    k8s_openapi::api::batch::v1::CronJob,
    k8s_openapi::api::batch::v1::Job,
    k8s_openapi::api::certificates::v1::CertificateSigningRequest,
    k8s_openapi::api::certificates::v1::ClusterTrustBundle,
    k8s_openapi::api::certificates::v1::PodCertificateRequest,
    k8s_openapi::api::certificates::v1beta1::ClusterTrustBundle,
    k8s_openapi::api::certificates::v1beta1::PodCertificateRequest,
    k8s_openapi::api::coordination::v1::Lease,
    k8s_openapi::api::coordination::v1alpha2::LeaseCandidate,
    k8s_openapi::api::coordination::v1beta1::LeaseCandidate,
    k8s_openapi::api::core::v1::Binding,
    k8s_openapi::api::core::v1::ComponentStatus,
    k8s_openapi::api::core::v1::ConfigMap,
    k8s_openapi::api::core::v1::Endpoints,
    k8s_openapi::api::core::v1::Event,
    k8s_openapi::api::core::v1::LimitRange,
    k8s_openapi::api::core::v1::Namespace,
    k8s_openapi::api::core::v1::Node,
    k8s_openapi::api::core::v1::PersistentVolume,
    k8s_openapi::api::core::v1::PersistentVolumeClaim,
    k8s_openapi::api::core::v1::Pod,
    k8s_openapi::api::core::v1::PodTemplate,
    k8s_openapi::api::core::v1::ReplicationController,
    k8s_openapi::api::core::v1::ResourceQuota,
    k8s_openapi::api::core::v1::Secret,
    k8s_openapi::api::core::v1::Service,
    k8s_openapi::api::core::v1::ServiceAccount,
    k8s_openapi::api::discovery::v1::EndpointSlice,
    k8s_openapi::api::events::v1::Event,
    k8s_openapi::api::flowcontrol::v1::FlowSchema,
    k8s_openapi::api::flowcontrol::v1::PriorityLevelConfiguration,
    k8s_openapi::api::lifecycle::v1alpha1::Eviction,
    k8s_openapi::api::lifecycle::v1alpha1::EvictionRequest,
    k8s_openapi::api::networking::v1::IPAddress,
    k8s_openapi::api::networking::v1::Ingress,
    k8s_openapi::api::networking::v1::IngressClass,
    k8s_openapi::api::networking::v1::NetworkPolicy,
    k8s_openapi::api::networking::v1::ServiceCIDR,
    k8s_openapi::api::node::v1::RuntimeClass,
    k8s_openapi::api::policy::v1::PodDisruptionBudget,
    k8s_openapi::api::rbac::v1::ClusterRole,
    k8s_openapi::api::rbac::v1::ClusterRoleBinding,
    k8s_openapi::api::rbac::v1::Role,
    k8s_openapi::api::rbac::v1::RoleBinding,
    k8s_openapi::api::resource::v1::DeviceClass,
    k8s_openapi::api::resource::v1::DeviceTaintRule,
    k8s_openapi::api::resource::v1::ResourceClaim,
    k8s_openapi::api::resource::v1::ResourceClaimTemplate,
    k8s_openapi::api::resource::v1::ResourceSlice,
    k8s_openapi::api::resource::v1alpha3::DeviceTaintRule,
    k8s_openapi::api::resource::v1alpha3::ResourcePoolStatusRequest,
    k8s_openapi::api::resource::v1beta1::DeviceClass,
    k8s_openapi::api::resource::v1beta1::ResourceClaim,
    k8s_openapi::api::resource::v1beta1::ResourceClaimTemplate,
    k8s_openapi::api::resource::v1beta1::ResourceSlice,
    k8s_openapi::api::resource::v1beta2::DeviceClass,
    k8s_openapi::api::resource::v1beta2::DeviceTaintRule,
    k8s_openapi::api::resource::v1beta2::ResourceClaim,
    k8s_openapi::api::resource::v1beta2::ResourceClaimTemplate,
    k8s_openapi::api::resource::v1beta2::ResourceSlice,
    k8s_openapi::api::scheduling::v1::PriorityClass,
    k8s_openapi::api::scheduling::v1alpha3::CompositePodGroup,
    k8s_openapi::api::scheduling::v1alpha3::PodGroup,
    k8s_openapi::api::scheduling::v1alpha3::Workload,
    k8s_openapi::api::scheduling::v1beta1::PodGroup,
    k8s_openapi::api::scheduling::v1beta1::Workload,
    k8s_openapi::api::storage::v1::CSIDriver,
    k8s_openapi::api::storage::v1::CSINode,
    k8s_openapi::api::storage::v1::CSIStorageCapacity,
    k8s_openapi::api::storage::v1::StorageClass,
    k8s_openapi::api::storage::v1::VolumeAttachment,
    k8s_openapi::api::storage::v1::VolumeAttributesClass,
    k8s_openapi::api::storagemigration::v1::StorageVersionMigration,
    k8s_openapi::api::storagemigration::v1beta1::StorageVersionMigration,
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroup,
    k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroupList,
    k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList,
    k8s_openapi::apimachinery::pkg::apis::meta::v1::APIVersions,
    k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
];

/// The scope of built-in kind `kind` of API group `group`: `Some(true)` for
/// cluster-scoped, `Some(false)` for namespaced, `None` if the Kubernetes API
/// has no such kind (a CRD or an add-on).
pub fn builtin_scope(group: &str, kind: &str) -> Option<bool> {
    BUILTIN_KINDS.iter().find(|k| k.group == group && k.kind == kind).map(|k| k.cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The k8s-openapi source the build uses, found through `cargo metadata`.
    fn k8s_openapi_src() -> Option<std::path::PathBuf> {
        let out = std::process::Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", env!("CODEX_K8S_TARGET")])
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .output()
            .ok()?;
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let pkg = meta["packages"].as_array()?.iter().find(|p| p["name"] == "k8s-openapi")?;
        Some(std::path::Path::new(pkg["manifest_path"].as_str()?).parent()?.join("src"))
    }

    /// Every `impl crate::Resource for X` of every API version k8s-openapi
    /// ships (cluster or namespace scope) is in the table with that scope.
    #[test]
    fn table_covers_every_kind_k8s_openapi_knows() {
        let src = k8s_openapi_src().expect("cargo metadata locates k8s-openapi");
        let field = |block: &str, name: &str| -> String {
            let key = format!("const {name}: &'static str = \"");
            let start = block.find(&key).map(|i| i + key.len()).expect("field present");
            block[start..].split('"').next().unwrap_or_default().to_owned()
        };
        let mut seen = 0;
        for entry in walkdir::WalkDir::new(&src).into_iter().flatten() {
            if entry.path().extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).expect("readable");
            for block in text.split("impl crate::Resource for ").skip(1) {
                let block = block.split("\n}").next().unwrap_or_default();
                let cluster = if block.contains("type Scope = crate::ClusterResourceScope;") {
                    true
                } else if block.contains("type Scope = crate::NamespaceResourceScope;") {
                    false
                } else {
                    continue;
                };
                let (group, kind) = (field(block, "GROUP"), field(block, "KIND"));
                assert_eq!(
                    builtin_scope(&group, &kind),
                    Some(cluster),
                    "{group}/{kind} of {} is missing from BUILTIN_KINDS (or has the wrong scope)",
                    entry.path().display()
                );
                seen += 1;
            }
        }
        assert!(seen > 400, "only {seen} kinds found under {}", src.display());
    }

    #[test]
    fn kinds_the_hand_list_missed_are_cluster_scoped() {
        for (group, kind) in [
            ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
            ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),
            ("networking.k8s.io", "ServiceCIDR"),
            ("networking.k8s.io", "IPAddress"),
            ("certificates.k8s.io", "ClusterTrustBundle"),
            ("storage.k8s.io", "VolumeAttributesClass"),
            ("resource.k8s.io", "DeviceClass"),
            ("resource.k8s.io", "ResourceSlice"),
            ("", "Namespace"),
            ("rbac.authorization.k8s.io", "ClusterRole"),
        ] {
            assert_eq!(builtin_scope(group, kind), Some(true), "{group}/{kind}");
        }
        assert_eq!(builtin_scope("apps", "Deployment"), Some(false));
        assert_eq!(builtin_scope("", "ConfigMap"), Some(false));
        assert_eq!(builtin_scope("gateway.networking.k8s.io", "GatewayClass"), None);
    }
}
