//! Documents → objects: a component's overlay for the environment applied
//! (dropped kinds, PVC mounts, environment variables), the target's
//! namespace set where the object has none (and refused in a slot where it
//! names another), Job names hashed, the renderer's labels and sync wave
//! added; plus the Namespace object the renderer adds itself.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};

use super::nouns::{Document, Target};
use super::object::{ObjectId, RenderedObject};
use super::overlay::{self, RenderedOverlay};
use super::part::Part;
use super::policy;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::inventory::yaml::YamlPath;
use crate::inventory::{Component, ComponentKind, Environment, Inventory};
use crate::template::Engine;

/// Label keys the renderer owns.
pub mod labels {
    /// `app.kubernetes.io/managed-by`.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// `app.kubernetes.io/part-of`.
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    /// `codex-k8s.io/env`.
    pub const ENV: &str = "codex-k8s.io/env";
    /// `codex-k8s.io/slot`.
    pub const SLOT: &str = "codex-k8s.io/slot";
    /// `codex-k8s.io/component`.
    pub const COMPONENT: &str = "codex-k8s.io/component";
    /// `codex-k8s.io/stage`.
    pub const STAGE: &str = "codex-k8s.io/stage";
    /// `codex-k8s.io/role`.
    pub const ROLE: &str = "codex-k8s.io/role";
    /// Value of managed-by.
    pub const MANAGER: &str = "codex-k8s";
    /// Argo CD's sync-wave annotation.
    pub const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
}

/// What every object of one target is placed into.
pub(super) struct Placement<'a> {
    /// The inventory.
    pub inventory: &'a Inventory,
    /// The target's environment.
    pub env: &'a Environment,
    /// The target.
    pub target: &'a Target,
    /// The target's rendered namespace.
    pub namespace: &'a str,
}

impl Placement<'_> {
    /// The objects of every part, from its documents (`documents[i]` are
    /// those of `parts[i]`), in part then document order. Every fault of
    /// every part is reported.
    pub fn objects(
        &self,
        engine: &Engine,
        parts: &[Part<'_>],
        documents: Vec<Vec<Document>>,
    ) -> Result<Vec<RenderedObject>, Diagnostics> {
        let mut diags = Diagnostics::default();
        let mut objects = Vec::new();
        for (part, docs) in parts.iter().zip(documents) {
            let c = part.component;
            let overlay = match c.overlays.get(&self.env.name) {
                Some(o) => match overlay::render(engine, o, &part.context) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        diags.push(self.overlay_error(c, &e));
                        continue;
                    }
                },
                None => None,
            };
            for doc in docs {
                if let Some(object) = self.object(part, overlay.as_ref(), doc, &mut diags) {
                    objects.push(object);
                }
            }
        }
        if diags.has_errors() {
            return Err(diags);
        }
        Ok(objects)
    }

    /// An overlay string of component `c` (at `rel` inside the overlay) that does not render.
    fn overlay_error(&self, c: &Component, (rel, message): &(YamlPath, String)) -> Diagnostic {
        let env = &self.env.name;
        let at = c.location(&YamlPath::default().key("overlays").key(env).join(rel));
        self.inventory
            .diagnostic(
                &c.file,
                at,
                format!("cannot render overlay `{env}` of component `{}` at `{rel}`: {message}", c.name),
            )
            .with_help("overlay strings are templates with the target's context")
    }

    /// One document placed as an object; `None` when the overlay drops its
    /// kind or a fault (pushed to `diags`) keeps it out.
    fn object(
        &self,
        part: &Part<'_>,
        overlay: Option<&RenderedOverlay<'_>>,
        doc: Document,
        diags: &mut Diagnostics,
    ) -> Option<RenderedObject> {
        let c = part.component;
        let mut value = doc.value;
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
        if let Some(o) = overlay {
            if o.drops(&kind) {
                return None;
            }
            o.apply(&mut value);
        }
        diags.0.extend(super::images::check_containers(&value, &doc.template, &c.name, self.target));
        let where_ = format!("document {} of {}", doc.index + 1, doc.template.display());
        let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        if policy::scope(policy::group_of(api_version), &kind, scope_rules(self.inventory)) != policy::Scope::Cluster {
            let explicit = value.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str);
            match explicit {
                Some(ns) if ns != self.namespace && self.env.slots => {
                    diags.push(
                        Diagnostic::error(
                            &doc.template,
                            None,
                            format!(
                                "{where_}: {kind} sets namespace `{ns}`, but slot target {} must stay in `{}`",
                                self.target, self.namespace
                            ),
                        )
                        .with_help("remove metadata.namespace; codex-k8s sets it"),
                    );
                    return None;
                }
                Some(_) => {}
                None => set_namespace(&mut value, self.namespace),
            }
        }
        if kind == "Job" && c.kind != ComponentKind::Agent && self.inventory.policy.hash_job_names {
            hash_job_name(&mut value);
        }
        add_labels(&mut value, self.inventory, self.target, c, part.planned.wave);
        let Some(id) = ObjectId::of(&value) else {
            diags.push(
                Diagnostic::error(&doc.template, None, format!("{where_} has no metadata.name"))
                    .with_help("give every object a name"),
            );
            return None;
        };
        Some(RenderedObject {
            id,
            component: c.name.clone(),
            stage: c.stage.clone(),
            stage_index: c.stage_index,
            wave: part.planned.wave,
            template: Some(doc.template),
            value,
        })
    }
}

/// `map[key]` as a mapping: inserted empty when absent, replaced by an empty
/// one when it holds something else.
fn child_mapping<'a>(map: &'a mut Mapping, key: &str) -> &'a mut Mapping {
    let entry = map.entry(Value::from(key)).or_insert(Value::Null);
    if !entry.is_mapping() {
        *entry = Value::Mapping(Mapping::new());
    }
    // Invariant: `entry` was a mapping or was replaced by one on the line above.
    entry.as_mapping_mut().expect("child_mapping: just made a mapping")
}

/// The document's `metadata`, created when absent; `None` for a document
/// that is not a mapping (`split_documents` refuses those before any of this runs).
fn metadata_mut(value: &mut Value) -> Option<&mut Mapping> {
    Some(child_mapping(value.as_mapping_mut()?, "metadata"))
}

/// Sets metadata.namespace right after metadata.name, so files read naturally.
fn set_namespace(value: &mut Value, namespace: &str) {
    let Some(meta) = metadata_mut(value) else { return };
    let old = std::mem::take(meta);
    for (k, v) in old {
        let is_name = k.as_str() == Some("name");
        meta.insert(k, v);
        if is_name {
            meta.insert("namespace".into(), namespace.into());
        }
    }
    if !meta.contains_key("namespace") {
        meta.insert("namespace".into(), namespace.into());
    }
}

/// Suffixes a Job's name with 8 hex digits of the sha256 of its spec: Jobs
/// are immutable, so a changed Job must be a new Job.
fn hash_job_name(value: &mut Value) {
    let spec = value.get("spec").map(super::emit::to_yaml).unwrap_or_default();
    let digest = hex::encode(Sha256::digest(spec.as_bytes()));
    let Some(meta) = metadata_mut(value) else { return };
    if let Some(name) = meta.get("name").and_then(Value::as_str) {
        // Job names feed the `job-name` label of their pods: 63 characters at most.
        let base: String = name.chars().take(63 - 9).collect();
        let base = base.trim_end_matches('-');
        meta.insert("name".into(), format!("{base}-{}", &digest[..8]).into());
    }
}

/// The renderer's labels and the sync-wave annotation of component `c`.
fn add_labels(value: &mut Value, inventory: &Inventory, target: &Target, c: &Component, wave: u32) {
    let Some(meta) = metadata_mut(value) else { return };
    let labels = child_mapping(meta, "labels");
    labels.insert(labels::MANAGED_BY.into(), labels::MANAGER.into());
    labels.insert(labels::PART_OF.into(), inventory.project.clone().into());
    labels.insert(labels::ENV.into(), target.env.clone().into());
    if let Some(slot) = &target.slot {
        labels.insert(labels::SLOT.into(), slot.clone().into());
    }
    labels.insert(labels::COMPONENT.into(), c.name.clone().into());
    labels.insert(labels::STAGE.into(), c.stage.clone().into());
    if c.kind == ComponentKind::Agent {
        labels.insert(labels::ROLE.into(), "agent".into());
    }
    child_mapping(meta, "annotations").insert(labels::SYNC_WAVE.into(), wave.to_string().into());
}

/// The target's Namespace object, which the renderer adds when the
/// environment manages its namespace and no template renders it.
pub(super) fn namespace_object(inventory: &Inventory, target: &Target, namespace: &str) -> RenderedObject {
    // Built as a value, not parsed from text: the namespace comes from a template.
    let mut metadata = Mapping::new();
    metadata.insert("name".into(), namespace.into());
    let mut object = Mapping::new();
    object.insert("apiVersion".into(), "v1".into());
    object.insert("kind".into(), "Namespace".into());
    object.insert("metadata".into(), Value::Mapping(metadata));
    generated_object(inventory, target, crate::inventory::GENERATED_COMPONENTS[0], Value::Mapping(object), None)
}

/// An object the renderer generates (not a template's): in the first stage
/// at wave 0, labelled as component `component`, in `namespace` when given.
/// `value` is a whole object with `apiVersion`, `kind` and `metadata.name`.
pub(super) fn generated_object(
    inventory: &Inventory,
    target: &Target,
    component: &str,
    mut value: Value,
    namespace: Option<&str>,
) -> RenderedObject {
    let first = inventory.stages.first().cloned().unwrap_or_default();
    let c = Component {
        name: component.into(),
        kind: ComponentKind::Infrastructure,
        stage: first.clone(),
        stage_index: 0,
        depends_on: Vec::new(),
        when: None,
        envs: None,
        image: None,
        manifests: Vec::new(),
        overlays: BTreeMap::new(),
        vars: Mapping::new(),
        presets: Vec::new(),
        file: inventory.file.clone(),
        line: 0,
        positions: BTreeMap::new(),
    };
    if let Some(ns) = namespace {
        set_namespace(&mut value, ns);
    }
    add_labels(&mut value, inventory, target, &c, 0);
    let text = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let name = value.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default().to_owned();
    RenderedObject {
        id: ObjectId {
            api_version: text("apiVersion"),
            kind: text("kind"),
            namespace: namespace.map(str::to_owned),
            name,
        },
        component: component.into(),
        stage: first,
        stage_index: 0,
        wave: 0,
        template: None,
        value,
    }
}

/// The inventory's declarations about kind scopes.
pub(super) fn scope_rules(inventory: &Inventory) -> policy::ScopeRules<'_> {
    policy::ScopeRules {
        cluster: &inventory.policy.cluster_scoped_kinds,
        namespaced: &inventory.policy.namespaced_kinds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_get_a_spec_hash_that_changes_with_the_spec() {
        let mut a: Value = serde_yaml::from_str("kind: Job\nmetadata: {name: migrate}\nspec: {x: 1}\n").unwrap();
        let mut b: Value = serde_yaml::from_str("kind: Job\nmetadata: {name: migrate}\nspec: {x: 2}\n").unwrap();
        hash_job_name(&mut a);
        hash_job_name(&mut b);
        let (na, nb) = (a["metadata"]["name"].as_str().unwrap(), b["metadata"]["name"].as_str().unwrap());
        assert!(na.starts_with("migrate-") && na.len() == "migrate-".len() + 8, "{na}");
        assert_ne!(na, nb);
    }

    #[test]
    fn namespace_goes_right_after_the_name() {
        let mut v: Value = serde_yaml::from_str("metadata: {name: a, labels: {x: y}}\n").unwrap();
        set_namespace(&mut v, "ns");
        let keys: Vec<_> = v["metadata"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_owned()).collect();
        assert_eq!(keys, ["name", "namespace", "labels"]);
    }
}
