//! What a target provides for its references: the objects it renders, what
//! Kubernetes and known controllers create from them, and what the
//! inventory declares as provided out of band.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

use super::{seq, str_at};
use crate::render::object::RenderedObject;

/// The keys a Secret or ConfigMap is known to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// Unknown to the renderer (a generator, a template, `dataFrom`): any key resolves.
    Any,
    /// Exactly these.
    Only(BTreeSet<String>),
}

impl Keys {
    /// Keys from a list of names.
    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> Keys {
        Keys::Only(names.into_iter().map(str::to_owned).collect())
    }

    /// Whether `key` resolves.
    pub fn has(&self, key: &str) -> bool {
        match self {
            Keys::Any => true,
            Keys::Only(keys) => keys.contains(key),
        }
    }

    /// Both sets: the same name created twice holds either's keys.
    fn merge(&mut self, other: Keys) {
        match (&mut *self, other) {
            (Keys::Only(mine), Keys::Only(theirs)) => mine.extend(theirs),
            _ => *self = Keys::Any,
        }
    }
}

/// Secrets a target may read that no object of it creates: declared in the
/// inventory as provided out of band (by name, keys when declared).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provided {
    /// Secret name → its keys.
    pub secrets: BTreeMap<String, Keys>,
}

/// Keys of a TLS Secret cert-manager writes.
const TLS_KEYS: [&str; 3] = ["ca.crt", "tls.crt", "tls.key"];

/// Everything of one target a reference may resolve to.
#[derive(Debug, Default)]
pub(super) struct Index<'a> {
    /// Secrets: rendered, made by a controller, or provided.
    pub secrets: BTreeMap<String, Keys>,
    /// ConfigMaps, `kube-root-ca.crt` included.
    pub config_maps: BTreeMap<String, Keys>,
    /// ServiceAccounts, `default` included.
    pub service_accounts: BTreeSet<String>,
    /// PersistentVolumeClaims rendered.
    pub claims: BTreeSet<String>,
    /// StatefulSet claim templates: (template name, StatefulSet name).
    pub claim_templates: Vec<(String, String)>,
    /// Services by name: their `spec`.
    pub services: BTreeMap<String, &'a Value>,
    /// Pod templates (metadata and spec) of every workload.
    pub pods: Vec<&'a Value>,
    /// Every object as (group, kind, name).
    pub objects: BTreeSet<(String, String, String)>,
    /// Custom resources the target's CustomResourceDefinitions define, `group/Kind`.
    pub crds: BTreeSet<String>,
}

impl<'a> Index<'a> {
    /// The index of `objects`, plus `provided`.
    pub fn new(objects: &'a [RenderedObject], provided: &Provided) -> Self {
        let mut ix = Index::default();
        ix.config_maps.insert("kube-root-ca.crt".into(), Keys::of(["ca.crt"]));
        ix.service_accounts.insert("default".into());
        for (name, keys) in &provided.secrets {
            ix.secret(name, keys.clone());
        }
        for o in objects {
            ix.objects.insert((o.id.group().to_owned(), o.id.kind.clone(), o.id.name.clone()));
            ix.crds.extend(super::cluster::defines_crd(o));
            ix.add(o);
        }
        ix
    }

    fn secret(&mut self, name: &str, keys: Keys) {
        match self.secrets.get_mut(name) {
            Some(k) => k.merge(keys),
            None => {
                self.secrets.insert(name.to_owned(), keys);
            }
        }
    }

    fn add(&mut self, o: &'a RenderedObject) {
        let v = &o.value;
        let name = o.id.name.as_str();
        match (o.id.group(), o.id.kind.as_str()) {
            ("", "Secret") => {
                let keys = if str_at(v, &["type"]) == Some("kubernetes.io/service-account-token") {
                    Keys::Any
                } else {
                    map_keys(v, &["data", "stringData"])
                };
                self.secret(name, keys);
            }
            ("", "ConfigMap") => {
                let keys = map_keys(v, &["data", "binaryData"]);
                match self.config_maps.get_mut(name) {
                    Some(k) => k.merge(keys),
                    None => {
                        self.config_maps.insert(name.to_owned(), keys);
                    }
                }
            }
            ("", "ServiceAccount") => {
                self.service_accounts.insert(name.to_owned());
            }
            ("", "PersistentVolumeClaim") => {
                self.claims.insert(name.to_owned());
            }
            ("", "Service") => {
                if let Some(spec) = v.get("spec") {
                    self.services.insert(name.to_owned(), spec);
                }
            }
            ("apps", "StatefulSet") => {
                for t in seq(v, &["spec", "volumeClaimTemplates"]) {
                    if let Some(t) = str_at(t, &["metadata", "name"]) {
                        self.claim_templates.push((t.to_owned(), name.to_owned()));
                    }
                }
            }
            ("external-secrets.io", "ExternalSecret") => {
                let target = str_at(v, &["spec", "target", "name"]).unwrap_or(name);
                self.secret(target, external_secret_keys(v));
            }
            ("cert-manager.io", "Certificate") => {
                if let Some(secret) = str_at(v, &["spec", "secretName"]) {
                    let keys = if v.get("spec").and_then(|s| s.get("additionalOutputFormats")).is_some() {
                        Keys::Any
                    } else {
                        Keys::of(TLS_KEYS)
                    };
                    self.secret(secret, keys);
                }
            }
            ("networking.k8s.io", "Ingress") if super::network::cert_manager_issuer(v).is_some() => {
                for tls in seq(v, &["spec", "tls"]) {
                    if let Some(secret) = str_at(tls, &["secretName"]) {
                        self.secret(secret, Keys::of(TLS_KEYS));
                    }
                }
            }
            ("bitnami.com", "SealedSecret") => {
                let target = str_at(v, &["spec", "template", "metadata", "name"]).unwrap_or(name);
                let mut keys = map_keys(&v["spec"], &["encryptedData"]);
                keys.merge(map_keys(&v["spec"]["template"], &["data"]));
                self.secret(target, keys);
            }
            _ => {}
        }
        if let Some(pod) = super::pods::pod_template(o) {
            self.pods.push(pod);
        }
    }

    /// Whether the target renders an object of `kind` named `name` (in
    /// `group` when given).
    pub fn has_object(&self, group: Option<&str>, kind: &str, name: &str) -> bool {
        self.objects.iter().any(|(g, k, n)| k == kind && n == name && group.is_none_or(|want| want == g))
    }
}

/// The keys of the mappings at `fields` of `v`.
fn map_keys(v: &Value, fields: &[&str]) -> Keys {
    let keys = fields
        .iter()
        .filter_map(|f| v.get(*f).and_then(Value::as_mapping))
        .flat_map(|m| m.keys().filter_map(Value::as_str));
    Keys::of(keys)
}

/// The keys of the Secret an ExternalSecret creates: `spec.data[].secretKey`,
/// any key when `dataFrom` or `target.template` decides them.
fn external_secret_keys(v: &Value) -> Keys {
    let spec = &v["spec"];
    let from = spec.get("dataFrom").and_then(Value::as_sequence).is_some_and(|s| !s.is_empty());
    if from || spec.get("target").and_then(|t| t.get("template")).is_some_and(|t| !t.is_null()) {
        return Keys::Any;
    }
    Keys::of(seq(v, &["spec", "data"]).filter_map(|d| str_at(d, &["secretKey"])))
}
