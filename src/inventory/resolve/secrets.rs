//! `secrets:` and the environments' `secretStores`, checked when the
//! inventory loads: each item is one kind of declaration, names the
//! environments it applies to, reads only stores those environments allow,
//! and gives Secret keys Kubernetes accepts. What depends on the target (the
//! templated name and remote keys, the store's key prefix) is checked when
//! the target renders (`render::secrets`).

use std::collections::BTreeMap;

use super::Resolver;
use crate::inventory::model::Environment;
use crate::inventory::raw::{RawInventory, RawSecret};
use crate::inventory::yaml::YamlPath;

/// Whether `key` can name a key of a Secret (`[-._a-zA-Z0-9]+`).
pub fn secret_key_ok(key: &str) -> bool {
    !key.is_empty() && key.len() <= 253 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// The environments a secret applies to.
pub fn applies_to<'a>(secret: &'a RawSecret, environments: &'a BTreeMap<String, Environment>) -> Vec<&'a Environment> {
    environments.values().filter(|e| secret.envs.as_ref().is_none_or(|l| l.contains(&e.name))).collect()
}

impl Resolver {
    pub(super) fn check_secrets(&mut self, raw: &RawInventory, environments: &BTreeMap<String, Environment>) {
        for env in environments.values() {
            self.check_stores(env);
        }
        for (i, s) in raw.secrets.iter().enumerate() {
            let at = YamlPath::default().key("secrets").index(i);
            for name in s.envs.iter().flatten().filter(|n| !environments.contains_key(*n)) {
                self.error_at_value(
                    &at.key("envs"),
                    format!("secret `{}`: no environment `{name}`", s.name),
                    "name an environment of the project",
                );
            }
            let kinds = [s.store.is_some(), s.generate.is_some(), s.provided.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                self.error(&at, format!("secret `{}` needs exactly one of `store` (with `data`), `generate` and `provided`", s.name), "say where its values come from: a store the environment allows, generated in the cluster, or provided out of band (plain environments)");
                continue;
            }
            let keys: Vec<&String> = match (&s.store, &s.generate, &s.provided) {
                (Some(_), _, _) => s.data.keys().collect(),
                (_, Some(g), _) => g.keys.iter().collect(),
                (_, _, Some(p)) => p.iter().collect(),
                _ => Vec::new(),
            };
            if keys.is_empty() {
                self.error(
                    &at,
                    format!("secret `{}` declares no key", s.name),
                    "list the Secret's keys (`data`, `generate.keys` or `provided`)",
                );
            }
            for k in keys.iter().filter(|k| !secret_key_ok(k)) {
                self.error(
                    &at,
                    format!("secret `{}`: `{}` is not a Secret key", s.name, k.escape_debug()),
                    "use letters, digits, `-`, `_` and `.`",
                );
            }
            if !s.data.is_empty() && s.store.is_none() {
                self.error(
                    &at.key("data"),
                    format!("secret `{}` has `data` but no `store`", s.name),
                    "name the store `data` is read from",
                );
            }
            if let Some(len) = s.generate.as_ref().and_then(|g| g.length) {
                if !(8..=128).contains(&len) {
                    self.error_at_value(
                        &at.key("generate").key("length"),
                        format!("secret `{}`: generate.length {len} is outside 8..=128", s.name),
                        "use a length between 8 and 128",
                    );
                }
            }
            if s.secret_type.as_deref() == Some("kubernetes.io/dockerconfigjson")
                && !keys.iter().any(|k| *k == ".dockerconfigjson")
            {
                self.error(
                    &at,
                    format!("pull secret `{}` has no `.dockerconfigjson` key", s.name),
                    "a kubernetes.io/dockerconfigjson Secret holds one key, `.dockerconfigjson`",
                );
            }
            for env in applies_to(s, environments) {
                if let Some(store) = &s.store {
                    if !env.secret_stores.contains_key(store) {
                        let allowed: Vec<&str> = env.secret_stores.keys().map(String::as_str).collect();
                        self.error_at_value(&at.key("store"), format!("secret `{}` reads store `{store}`, which environment `{}` does not allow (allowed: {})", s.name, env.name, if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") }), "add the store to the environment's `secretStores` (on the protected branch: it is a wall), or limit the secret with `envs:`");
                    }
                }
                if s.provided.is_some() && env.slots {
                    self.error(&at, format!("secret `{}` is provided out of band, but `{}` is a slot environment", s.name, env.name), "a slot's namespace is new for every slot: read the secret from a store or generate it, or limit it to plain environments with `envs:`");
                }
            }
        }
    }

    fn check_stores(&mut self, env: &Environment) {
        for (name, store) in &env.secret_stores {
            let path = YamlPath::default().key("secretStores").key(name);
            if !matches!(store.kind.as_deref(), None | Some("ClusterSecretStore") | Some("SecretStore")) {
                self.error_in_env_file(
                    &env.name,
                    &path.key("kind"),
                    format!("secret store `{name}`: kind must be ClusterSecretStore or SecretStore"),
                    "name the External Secrets Operator store kind",
                );
            }
            let p = &store.prefix;
            if p.is_empty() || p.starts_with('/') || p.split('/').any(|s| s == ".." || s == ".") || p.contains("{{") {
                self.error_in_env_file(
                    &env.name,
                    &path.key("prefix"),
                    format!("secret store `{name}`: prefix `{}` must be a plain relative key prefix", p.escape_debug()),
                    "write the part every remote key of this environment starts with, e.g. `shop/ai/`",
                );
            }
        }
    }
}
