//! The variables every template sees (SPEC section 3), declared once: the
//! serializable structs, [`component_scope`] (the one place a component's
//! context is assembled), and [`CONTEXT_VARS`], the names it has, which a
//! partial carries into its macro and may not take ([`is_reserved`]).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::inventory::RawTls;

/// The top-level names of a component's context ([`component_scope`]);
/// `tests` checks they are exactly the keys it builds.
pub const CONTEXT_VARS: [&str; 12] =
    ["project", "env", "slot", "namespace", "host", "tls", "versions", "images", "vars", "component", "run", "source"];

/// The helper functions the engine registers besides minijinja's.
pub const HELPERS: [&str; 5] = ["env_or", "include", "required", "fail", "ns"];

/// Whether a partial macro may not take `name`: a helper or a context variable.
pub fn is_reserved(name: &str) -> bool {
    HELPERS.contains(&name) || CONTEXT_VARS.contains(&name)
}

/// The context of one component's templates: the target's variables
/// (`target`, [`TargetContext`] serialized once per target), then
/// `component`, `run` (the agent's, else none) and, where the component has
/// values of its own, its `vars` in place of the target's.
pub fn component_scope(
    target: &minijinja::Value,
    component: ComponentContext,
    run: Option<RunContext>,
    vars: Option<&serde_yaml::Mapping>,
) -> minijinja::Value {
    match vars {
        Some(vars) => minijinja::context! { component => component, run => run, vars => vars, ..target.clone() },
        None => minijinja::context! { component => component, run => run, ..target.clone() },
    }
}

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
    /// The source the target is rendered from (`source.ref`,
    /// `source.commit`), none outside git; the commit only when the tree
    /// lives apart from the source (`--branch`).
    pub source: Option<SourceContext>,
    /// Environment variables (`vars`), with `--set` overrides applied.
    pub vars: serde_yaml::Mapping,
    /// Images whose `repository` or `tag` rendered empty (name → which
    /// part); not seen by templates, checked for the components using them.
    #[serde(skip)]
    pub empty_images: BTreeMap<String, &'static str>,
}

/// `source` as templates see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SourceContext {
    /// The source ref (`refs/pull/7/head`).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The source commit, when recorded.
    pub commit: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_has_exactly_the_names_the_engine_reserves() {
        let target = TargetContext {
            project: "p".into(),
            env: "e".into(),
            slot: Some("s".into()),
            namespace: "n".into(),
            host: Some("h".into()),
            tls: Some(TlsContext { cluster_issuer: Some("i".into()), issuer: None, secret_name: Some("t".into()) }),
            versions: BTreeMap::new(),
            images: BTreeMap::new(),
            source: None,
            vars: serde_yaml::Mapping::new(),
            empty_images: BTreeMap::new(),
        };
        let base = minijinja::Value::from_serialize(&target);
        let component =
            ComponentContext { name: "c".into(), stage: "s".into(), wave: 0, image: None, depends_on: Vec::new() };
        let own = serde_yaml::Mapping::new();
        for (run, vars) in [(None, None), (Some(RunContext { id: "r".into() }), Some(&own))] {
            let scope = component_scope(&base, component.clone(), run, vars);
            let mut keys: Vec<String> = scope.try_iter().expect("a map").map(|k| k.to_string()).collect();
            keys.sort();
            let mut expected: Vec<&str> = CONTEXT_VARS.to_vec();
            expected.sort();
            assert_eq!(keys, expected);
        }
        for name in CONTEXT_VARS.iter().chain(&HELPERS) {
            assert!(is_reserved(name), "{name}");
        }
        assert!(!is_reserved("labels"));
    }
}
