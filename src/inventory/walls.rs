//! The walls of a slot: the settings that decide where a slot's objects may
//! go and what they may be, as opposed to what they are. A slot render takes
//! them from the protected branch, never from the pull request it renders
//! (docs/security.md, "Trust model").
//!
//! [`Walls::of`] reads them off an inventory as one flat map, keyed by the
//! setting's path as a person writes it (`policy.allowPlainSecrets`,
//! `environments.ai.namespace`); [`Walls::changes`] compares two such maps;
//! the protected render records its map on the deploy branch
//! ([`Walls::to_json`], read back checked by [`Walls::from_json`]).
//!
//! What counts as a wall, and why:
//! - `project`: every namespace and name template reads it;
//! - every `policy.*` setting: which kinds, namespaces and Secrets pass;
//! - `templates.env`: which of the CI job's variables templates may read;
//! - `limits.*`: how much CPU and memory a render may take in the CI job;
//! - every `gitops.*` setting: the glue (repository, revision, Argo CD
//!   project, Flux source and timings) is built from them;
//! - `images.<name>.build`: the contexts and Dockerfiles CI builds;
//! - per slot environment: that it is one, its `namespace` and `domain`
//!   templates, `manageNamespace`, `idleTTL`, `maxSlots`, `tls`, where its
//!   objects are delivered (`cluster`, `flux`), the secret stores it may
//!   read (`secretStores`: store, name, key prefix) and its bounds
//!   (`isolation`, `quota`, `limitRange`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::model::{Environment, Inventory};

/// The wall settings of one inventory, by setting path. Absent settings are
/// `null`, so a head that adds a setting main leaves unset is a change too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Walls {
    /// Format of the record; [`Walls::VERSION`].
    pub version: u32,
    /// The settings.
    pub settings: BTreeMap<String, Value>,
}

/// One wall a head changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WallChange {
    /// The setting's path (`policy.allowPlainSecrets`).
    pub setting: String,
    /// Its value on the protected branch (`null`: unset there).
    pub protected: Value,
    /// Its value in the head (`null`: unset there).
    pub head: Value,
}

/// Largest walls record read back from a deploy branch.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

impl Walls {
    /// The record format this build writes and reads.
    pub const VERSION: u32 = 1;

    /// The walls of `inventory`.
    pub fn of(inventory: &Inventory) -> Walls {
        let mut s = BTreeMap::new();
        s.insert("project".to_owned(), json!(inventory.project));
        let p = &inventory.policy;
        s.insert("policy.clusterScopedKinds".into(), json!(p.cluster_scoped_kinds));
        s.insert("policy.namespacedKinds".into(), json!(p.namespaced_kinds));
        s.insert("policy.reservedNamespaces".into(), json!(p.reserved_namespaces));
        s.insert("policy.allowPlainSecrets".into(), json!(p.allow_plain_secrets));
        s.insert("policy.hashJobNames".into(), json!(p.hash_job_names));
        s.insert("templates.env".into(), json!(inventory.env_allow.patterns()));
        let l = &inventory.limits;
        s.insert("limits.fuel".into(), json!(l.fuel));
        s.insert("limits.maxOutputBytes".into(), json!(l.max_output_bytes));
        s.insert("limits.maxPartialDepth".into(), json!(l.max_partial_depth));
        gitops(inventory, &mut s);
        for (name, image) in &inventory.images {
            if let Some(build) = &image.build {
                s.insert(format!("images.{name}.build"), json!(build));
            }
        }
        for env in inventory.environments.values().filter(|e| e.slots) {
            slot_environment(env, &mut s);
        }
        Walls { version: Self::VERSION, settings: s }
    }

    /// The settings `head` holds with another value than `self`, in path order.
    pub fn changes(&self, head: &Walls) -> Vec<WallChange> {
        let keys: std::collections::BTreeSet<&String> = self.settings.keys().chain(head.settings.keys()).collect();
        keys.into_iter()
            .filter_map(|k| {
                let protected = self.settings.get(k).cloned().unwrap_or(Value::Null);
                let head = head.settings.get(k).cloned().unwrap_or(Value::Null);
                (protected != head).then(|| WallChange { setting: k.clone(), protected, head })
            })
            .collect()
    }

    /// The record as the deploy branch holds it (pretty JSON, sorted keys).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("walls serialize") + "\n"
    }

    /// A record read back from a deploy branch, checked: anyone who can push
    /// to that branch wrote it, so it is bounded and its shape is exact.
    pub fn from_json(bytes: &[u8]) -> Result<Walls, String> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(format!("the walls record is {} bytes, over the {MAX_RECORD_BYTES}-byte limit", bytes.len()));
        }
        let walls: Walls = serde_json::from_slice(bytes).map_err(|e| format!("not a walls record: {e}"))?;
        if walls.version != Self::VERSION {
            return Err(format!(
                "walls record version {} (this codex-k8s reads version {})",
                walls.version,
                Self::VERSION
            ));
        }
        Ok(walls)
    }

    /// The slot environments the walls allow.
    pub fn slot_environments(&self) -> Vec<&str> {
        self.settings.keys().filter_map(|k| k.strip_prefix("environments.")?.strip_suffix(".slots")).collect()
    }
}

fn gitops(inventory: &Inventory, s: &mut BTreeMap<String, Value>) {
    let g = &inventory.gitops;
    s.insert("gitops.repoURL".into(), json!(g.repo_url));
    s.insert("gitops.revision".into(), json!(g.revision));
    s.insert("gitops.argocdNamespace".into(), json!(g.argocd_namespace));
    s.insert("gitops.argocdProject".into(), json!(g.argocd_project));
    s.insert("gitops.fluxNamespace".into(), json!(g.flux_namespace));
    s.insert("gitops.fluxSource".into(), json!(g.flux_source));
    s.insert("gitops.interval".into(), json!(g.interval));
    for (stage, sync) in &g.stages {
        s.insert(format!("gitops.stages.{stage}.timeout"), json!(sync.timeout));
        s.insert(format!("gitops.stages.{stage}.wait"), json!(sync.wait));
    }
}

fn slot_environment(env: &Environment, s: &mut BTreeMap<String, Value>) {
    let key = |field: &str| format!("environments.{}.{field}", env.name);
    s.insert(key("slots"), json!(true));
    s.insert(key("namespace"), json!(env.namespace));
    s.insert(key("domain"), json!(env.domain));
    s.insert(key("manageNamespace"), json!(env.manage_namespace));
    s.insert(key("idleTTL"), json!(env.idle_ttl.map(|d| humantime::format_duration(d).to_string())));
    s.insert(key("maxSlots"), json!(env.max_slots));
    s.insert(key("tls"), serde_json::to_value(&env.tls).expect("tls serializes"));
    s.insert(key("cluster"), serde_json::to_value(&env.cluster).expect("cluster serializes"));
    s.insert(key("flux"), serde_json::to_value(&env.flux).expect("flux serializes"));
    s.insert(key("secretStores"), json!(env.secret_stores));
    s.insert(key("isolation"), serde_json::to_value(&env.isolation).expect("isolation serializes"));
    s.insert(key("quota"), json!(env.quota));
    s.insert(key("limitRange"), json!(env.limit_range));
}

/// A value as one line of a message.
pub fn show(value: &Value) -> String {
    match value {
        Value::Null => "unset".to_owned(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(services: &str, envs: &[(&str, &str)]) -> Inventory {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("services.yaml"), services).unwrap();
        std::fs::create_dir_all(dir.path().join("environments")).unwrap();
        for (name, text) in envs {
            std::fs::write(dir.path().join("environments").join(format!("{name}.yaml")), text).unwrap();
        }
        let loaded = crate::inventory::load(&dir.path().join("services.yaml"));
        loaded.unwrap_or_else(|e| panic!("{e:?}")).inventory
    }

    const BASE: &str = "apiVersion: codex-k8s.io/v1alpha1\nkind: ServiceStack\nproject: shop\n";
    const AI: &str = "slots: true\nnamespace: \"{{ project }}-ai-{{ slot }}\"\nmaxSlots: 4\n";

    #[test]
    fn every_wall_setting_is_read_and_a_change_to_each_is_named() {
        let protected = Walls::of(&load(BASE, &[("ai", AI), ("dev", "namespace: shop-dev\n")]));
        let cases: [(&str, &str, &str); 11] = [
            ("policy:\n  allowPlainSecrets: true\n", AI, "policy.allowPlainSecrets"),
            ("policy:\n  reservedNamespaces: [cert-manager]\n", AI, "policy.reservedNamespaces"),
            ("templates:\n  env: [\"*\"]\n", AI, "templates.env"),
            ("limits:\n  fuel: 400000000\n", AI, "limits.fuel"),
            ("gitops:\n  revision: other\n", AI, "gitops.revision"),
            ("", "slots: true\nnamespace: \"{{ 'cert-manager' if slot == 'pr-46' else project ~ '-ai-' ~ slot }}\"\nmaxSlots: 4\n", "environments.ai.namespace"),
            ("", "slots: true\nnamespace: \"{{ project }}-ai-{{ slot }}\"\nmaxSlots: 40\n", "environments.ai.maxSlots"),
            ("", "slots: true\nnamespace: \"{{ project }}-ai-{{ slot }}\"\nmaxSlots: 4\nidleTTL: 900h\n", "environments.ai.idleTTL"),
            ("", "slots: true\nnamespace: \"{{ project }}-ai-{{ slot }}\"\nmaxSlots: 4\ndomain: x.example.com\n", "environments.ai.domain"),
            ("", "slots: true\nnamespace: \"{{ project }}-ai-{{ slot }}\"\nmaxSlots: 4\nsecretStores: {prod: {name: prod, prefix: \"shop/\"}}\n", "environments.ai.secretStores"),
            ("", "slots: true\nnamespace: \"{{ project }}-ai-{{ slot }}\"\nmaxSlots: 4\nisolation: {ingressFromNamespaces: [default]}\n", "environments.ai.isolation"),
        ];
        for (extra, ai, setting) in cases {
            let head = Walls::of(&load(&format!("{BASE}{extra}"), &[("ai", ai), ("dev", "namespace: shop-dev\n")]));
            let changes = protected.changes(&head);
            let named: Vec<&str> = changes.iter().map(|c| c.setting.as_str()).collect();
            assert_eq!(named, [setting], "{extra}{ai}");
        }
    }

    #[test]
    fn what_is_not_a_wall_changes_nothing() {
        let protected = Walls::of(&load(BASE, &[("ai", AI), ("dev", "namespace: shop-dev\n")]));
        let head = load(
            &format!("{BASE}versions: {{a: \"2\"}}\n"),
            &[("ai", &format!("{AI}vars: {{x: 1}}\n")), ("dev", "namespace: shop-dev-two\nvars: {y: 2}\n")],
        );
        assert!(protected.changes(&Walls::of(&head)).is_empty());
    }

    #[test]
    fn a_new_slot_environment_or_a_plain_one_turned_slot_is_a_change() {
        let protected = Walls::of(&load(BASE, &[("ai", AI), ("dev", "namespace: shop-dev\n")]));
        let head = Walls::of(&load(BASE, &[("ai", AI), ("dev", "slots: true\nnamespace: \"shop-dev-{{ slot }}\"\n")]));
        let changes = protected.changes(&head);
        assert!(changes.iter().any(|c| c.setting == "environments.dev.slots" && c.protected.is_null()), "{changes:?}");
        assert_eq!(head.slot_environments(), ["ai", "dev"]);
    }

    #[test]
    fn the_record_round_trips_and_a_bad_record_is_refused() {
        let walls = Walls::of(&load(BASE, &[("ai", AI)]));
        assert_eq!(Walls::from_json(walls.to_json().as_bytes()).unwrap(), walls);
        for bad in [
            &b"{}"[..],
            b"{\"version\": 2, \"settings\": {}}",
            b"{\"version\": 1, \"settings\": {}, \"extra\": 1}",
            b"not json",
        ] {
            assert!(Walls::from_json(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let huge = vec![b' '; MAX_RECORD_BYTES + 1];
        assert!(Walls::from_json(&huge).unwrap_err().contains("limit"));
    }
}
