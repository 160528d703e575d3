//! Objects the renderer generates for a target from the inventory, not from
//! a template: the Secret declarations of `secrets:` (External Secrets
//! Operator objects: the renderer never sees a value) and a namespace's
//! bounds (a slot's NetworkPolicy, the environment's ResourceQuota and
//! LimitRange). All land in the first stage at wave 0, before their
//! consumers. A new generator is one function here and one line in
//! [`objects`].

use minijinja::value::Value as JValue;
use serde_json::{json, Value};

use super::nouns::Target;
use super::place::generated_object;
use super::RenderedObject;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::inventory::{Environment, Inventory};
use crate::inventory::{RawSecret, RawSecretStore};
use crate::template::{Engine, TargetContext};

/// The ESO API the declarations use.
pub const EXTERNAL_SECRET: &str = "external-secrets.io/v1";
/// The ESO generator API (`Password`).
pub const GENERATORS: &str = "generators.external-secrets.io/v1alpha1";
/// Component name of the generated secret declarations.
pub const SECRETS: &str = crate::inventory::GENERATED_COMPONENTS[1];
/// Component name of the generated bounds.
pub const BOUNDS: &str = crate::inventory::GENERATED_COMPONENTS[2];

/// What every generator reads.
struct Gen<'a> {
    inventory: &'a Inventory,
    engine: &'a Engine,
    env: &'a Environment,
    target: &'a Target,
    namespace: &'a str,
    context: JValue,
}

/// Every object generated for `target`, or every problem found.
pub(super) fn objects(
    inventory: &Inventory,
    engine: &Engine,
    env: &Environment,
    target: &Target,
    ctx: &TargetContext,
) -> Result<Vec<RenderedObject>, Diagnostics> {
    let g = Gen { inventory, engine, env, target, namespace: &ctx.namespace, context: JValue::from_serialize(ctx) };
    let mut values: Vec<(&str, Value)> = Vec::new();
    let mut problems = Diagnostics::default();
    for (i, secret) in inventory.secrets.iter().enumerate() {
        if secret.envs.as_ref().is_none_or(|l| l.contains(&env.name)) {
            match g.secret(i, secret) {
                Ok(v) => values.extend(v.into_iter().map(|v| (SECRETS, v))),
                Err(d) => problems.push(d),
            }
        }
    }
    values.extend(g.network_policy().into_iter().map(|v| (BOUNDS, v)));
    values.extend(g.quota().into_iter().map(|v| (BOUNDS, v)));
    values.extend(g.limit_range().into_iter().map(|v| (BOUNDS, v)));
    if problems.has_errors() {
        return Err(problems);
    }
    Ok(values
        .into_iter()
        .map(|(component, v)| {
            let value = serde_yaml::to_value(v).expect("JSON values convert to YAML");
            generated_object(inventory, target, component, value, Some(g.namespace))
        })
        .collect())
}

impl Gen<'_> {
    /// An error at secret `i` of `secrets:`.
    fn error(&self, i: usize, message: String, help: &str) -> Diagnostic {
        let (file, at) = self.inventory.setting_location(&format!("secrets[{i}]"));
        let d = match at {
            Some(at) => self.inventory.diagnostic(&file, at, message),
            None => Diagnostic::error(&file, None, message),
        };
        d.with_help(help.to_owned())
    }

    /// A template string of secret `i`, rendered with the target's context.
    fn render(&self, i: usize, text: &str) -> Result<String, Diagnostic> {
        self.engine.render_inline(text, &self.context).map_err(|e| {
            self.error(i, format!("secret template `{text}`: {e} (target {})", self.target), "fix the template")
        })
    }

    /// The declaration of secret `i`: an ExternalSecret (and its generator).
    fn secret(&self, i: usize, s: &RawSecret) -> Result<Vec<Value>, Diagnostic> {
        let name = self.render(i, &s.name)?;
        if let Some(problem) = crate::inventory::names::dns_label_problem(&name) {
            return Err(self.error(
                i,
                format!("secret name `{}` {problem} (target {})", name.escape_debug(), self.target),
                "a Secret name is a DNS label: lower-case letters, digits and `-`",
            ));
        }
        if s.provided.is_some() {
            return Ok(Vec::new()); // created out of band: declared for the reference check only
        }
        let mut target = json!({"name": name, "creationPolicy": "Owner"});
        if let Some(t) = &s.secret_type {
            target["template"] = json!({"type": t});
        }
        if let Some(g) = &s.generate {
            let generator = format!("{name}-password");
            let password = json!({
                "apiVersion": GENERATORS,
                "kind": "Password",
                "metadata": {"name": generator},
                "spec": {"length": g.length.unwrap_or(32), "digits": 6, "symbols": 0, "noUpper": false, "allowRepeat": true, "secretKeys": g.keys},
            });
            let external = json!({
                "apiVersion": EXTERNAL_SECRET,
                "kind": "ExternalSecret",
                "metadata": {"name": name},
                "spec": {
                    "refreshPolicy": "CreatedOnce",
                    "target": target,
                    "dataFrom": [{"sourceRef": {"generatorRef": {"apiVersion": GENERATORS, "kind": "Password", "name": generator}}}],
                },
            });
            return Ok(vec![password, external]);
        }
        let store_name = s.store.as_deref().unwrap_or_default();
        let Some(store) = self.env.secret_stores.get(store_name) else {
            return Err(self.error(
                i,
                format!(
                    "secret `{name}` reads store `{store_name}`, which environment `{}` does not allow",
                    self.env.name
                ),
                "add the store to the environment's `secretStores`",
            ));
        };
        let mut data = Vec::new();
        for (key, remote) in &s.data {
            let at = self.render(i, &remote.key)?;
            if let Some(problem) = remote_key_problem(&at, store) {
                return Err(self.error(i, format!("secret `{name}` key `{key}`: remote key `{}` {problem} (target {})", at.escape_debug(), self.target), "remote keys stay under the store's prefix, which the protected branch sets (`secretStores.<store>.prefix`)"));
            }
            let mut r = json!({"key": at});
            if let Some(p) = &remote.property {
                r["property"] = json!(p);
            }
            data.push(json!({"secretKey": key, "remoteRef": r}));
        }
        Ok(vec![json!({
            "apiVersion": EXTERNAL_SECRET,
            "kind": "ExternalSecret",
            "metadata": {"name": name},
            "spec": {
                "refreshInterval": "1h",
                "secretStoreRef": {"kind": store.kind.as_deref().unwrap_or("ClusterSecretStore"), "name": store.name},
                "target": target,
                "data": data,
            },
        })])
    }

    /// A slot's default NetworkPolicy: traffic within the slot, from the
    /// ingress controller, to DNS, and what the environment allows.
    fn network_policy(&self) -> Option<Value> {
        if !self.env.slots {
            return None;
        }
        let iso = self.env.isolation.clone().unwrap_or_default();
        let from_ns = iso.ingress_from_namespaces.unwrap_or_else(|| vec!["ingress-nginx".to_owned()]);
        let mut from = vec![json!({"podSelector": {}})];
        from.extend(
            from_ns.iter().map(|n| json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": n}}})),
        );
        let dns = json!({
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        });
        let mut egress = vec![json!({"to": [{"podSelector": {}}]}), dns];
        egress.extend(iso.egress);
        Some(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": format!("{}-slot", self.inventory.project)},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{"from": from}], "egress": egress},
        }))
    }

    /// The environment's ResourceQuota, when it sets `quota`.
    fn quota(&self) -> Option<Value> {
        let hard = self.env.quota.as_ref()?;
        Some(json!({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": format!("{}-quota", self.inventory.project)},
            "spec": {"hard": hard},
        }))
    }

    /// The environment's LimitRange for containers, when it sets `limitRange`.
    fn limit_range(&self) -> Option<Value> {
        let limits = self.env.limit_range.as_ref()?;
        let mut item = json!({"type": "Container"});
        for (k, v) in limits {
            item[k] = json!(v);
        }
        Some(json!({
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": format!("{}-limits", self.inventory.project)},
            "spec": {"limits": [item]},
        }))
    }
}

/// Why a rendered remote key may not be read through `store`, if it may not:
/// it must start with the store's prefix and never climb out of it.
pub fn remote_key_problem(key: &str, store: &RawSecretStore) -> Option<&'static str> {
    if !key.starts_with(&store.prefix) {
        return Some("is outside the store's prefix");
    }
    let rest = &key[store.prefix.len()..];
    if rest.is_empty() || rest.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Some("has an empty, `.` or `..` segment after the prefix");
    }
    if key.chars().any(|c| c.is_control() || c == '\\') {
        return Some("holds a control character or a backslash");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_key_stays_under_its_stores_prefix() {
        let store = RawSecretStore { kind: None, name: "s".into(), prefix: "shop/ai/".into() };
        assert_eq!(remote_key_problem("shop/ai/pr-1/git", &store), None);
        for bad in [
            "shop/prod/db",
            "shop/ai/",
            "shop/ai/../prod/db",
            "shop/ai//x",
            "shop/ai/./x",
            "shop/ai/x\n",
            "other",
            "shop/ai\\x",
        ] {
            assert!(remote_key_problem(bad, &store).is_some(), "{bad:?} accepted");
        }
    }
}
