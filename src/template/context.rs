//! The variables every template sees (SPEC section 3), as serializable structs.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::inventory::RawTls;

/// Per-target variables: the same for every component of a target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetContext {
    /// Project name.
    pub project: String,
    /// Environment name.
    pub env: String,
    /// Slot name, `none` outside slot environments.
    pub slot: Option<String>,
    /// Rendered namespace.
    pub namespace: String,
    /// Rendered domain, if any.
    pub host: Option<String>,
    /// TLS settings, if any.
    pub tls: Option<TlsContext>,
    /// Version strings.
    pub versions: BTreeMap<String, String>,
    /// Images as `repository:tag`.
    pub images: BTreeMap<String, String>,
    /// Environment variables (`vars`), with `--set` overrides applied.
    pub vars: serde_yaml::Mapping,
    /// Images whose `repository` or `tag` rendered empty (name → which
    /// part); not seen by templates, checked for the components using them.
    #[serde(skip)]
    pub empty_images: BTreeMap<String, &'static str>,
}

/// `tls` as templates see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TlsContext {
    /// cert-manager ClusterIssuer.
    pub cluster_issuer: Option<String>,
    /// cert-manager Issuer.
    pub issuer: Option<String>,
    /// Certificate Secret name.
    pub secret_name: Option<String>,
}

impl From<&RawTls> for TlsContext {
    fn from(t: &RawTls) -> Self {
        TlsContext {
            cluster_issuer: t.cluster_issuer.clone(),
            issuer: t.issuer.clone(),
            secret_name: t.secret_name.clone(),
        }
    }
}

/// `component` as templates see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentContext {
    /// Component name.
    pub name: String,
    /// Stage name.
    pub stage: String,
    /// Sync wave.
    pub wave: u32,
    /// `repository:tag` of its image.
    pub image: Option<String>,
    /// Dependencies.
    pub depends_on: Vec<String>,
}

/// `run` as the agent's templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct RunContext {
    /// The run id.
    pub id: String,
}
