//! Object-level diff of two rendered trees: objects are matched by
//! target and apiVersion/kind/namespace/name (not by file path), compared as
//! YAML values (key order and file moves are not changes), and shown as a
//! unified diff of just that object. Hash-suffixed Jobs are paired as one
//! change when only their spec hash moved.
//!
//! Entry points: [`Snapshot::from_files`] (any source of files) and [`diff`];
//! [`mod@format`] prints a [`Report`] as text, markdown or JSON; [`source`]
//! renders two source revisions in memory and diffs them the same way;
//! [`between`] reads a rendered tree at two git revisions.

pub mod format;
mod revisions;
pub mod source;

pub use revisions::{between, Rev};

use std::collections::BTreeMap;

use serde::Serialize;
use serde_yaml::Value;

use crate::layout;
use crate::render::ObjectId;

/// One object found in a tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Stage directory (`20-internal`), or the glue directory.
    pub stage: String,
    /// File path relative to the tree root.
    pub path: String,
    /// The object.
    pub value: Value,
}

/// Every object of a tree, by target and identity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// `(target, id)` → object.
    pub objects: BTreeMap<(String, ObjectId), Entry>,
}

/// Splits a tree path into (target, stage) for object files; `None` for
/// kustomizations, metadata and anything that is not a manifest.
fn classify(path: &str) -> Option<(String, String)> {
    let meta = format!("{}/", layout::META_DIR);
    if !path.ends_with(".yaml") || path.ends_with(layout::KUSTOMIZATION) || path.contains(&meta) {
        return None;
    }
    let parts: Vec<&str> = path.split('/').collect();
    if layout::is_glue_dir(parts[0]) {
        let target = parts[..parts.len() - 1].join("/");
        return Some((target, "glue".into()));
    }
    let stage_at = parts.iter().position(|p| layout::is_stage_dir(p))?;
    if stage_at == 0 {
        return None;
    }
    Some((parts[..stage_at].join("/"), parts[stage_at].to_owned()))
}

/// The unit a changed tree path belongs to: its target directory (`staging`,
/// `ai/pr-1`) for a target's files, or the file itself for Argo CD / Flux
/// glue. Diffing whole units keeps Job renames paired.
pub fn unit_of(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    if layout::is_glue_dir(parts[0]) || parts.len() == 1 {
        return path.to_owned();
    }
    let end = parts
        .iter()
        .position(|p| layout::is_stage_dir(p) || *p == layout::META_DIR || *p == layout::KUSTOMIZATION)
        .unwrap_or(parts.len() - 1);
    parts[..end.max(1)].join("/")
}

impl Snapshot {
    /// Reads objects from `(path, contents)` pairs of a tree; unparsable files are skipped.
    pub fn from_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Snapshot {
        let mut snap = Snapshot::default();
        for (path, bytes) in files {
            let Some((target, stage)) = classify(path) else { continue };
            let Ok(text) = std::str::from_utf8(bytes) else { continue };
            for doc in serde_yaml::Deserializer::from_str(text) {
                // After a syntax error serde_yaml's document iterator yields
                // the same error forever: stop reading this file.
                let Ok(value) = <Value as serde::Deserialize>::deserialize(doc) else { break };
                let Some(id) = ObjectId::of(&value) else { continue };
                snap.objects.insert((target.clone(), id), Entry { stage: stage.clone(), path: path.to_owned(), value });
            }
        }
        snap
    }
}

/// How an object changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Only in head.
    Added,
    /// Only in base.
    Removed,
    /// In both, different.
    Changed,
}

/// One object that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectChange {
    /// Target (`staging`, `ai/pr-42`, or a glue directory).
    pub target: String,
    /// Stage directory.
    pub stage: String,
    /// Identity (head's, or base's when removed).
    pub id: ObjectId,
    /// Added, removed or changed.
    pub kind: Kind,
    /// Base name when a hash-suffixed Job was renamed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// Unified diff of the object's YAML.
    pub diff: String,
}

/// The result of a diff.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Changes, by target, stage, kind, name.
    pub changes: Vec<ObjectChange>,
}

impl Report {
    /// Number of changes of `kind`.
    pub fn count(&self, kind: Kind) -> usize {
        self.changes.iter().filter(|c| c.kind == kind).count()
    }

    /// Targets with at least one change, sorted.
    pub fn targets(&self) -> Vec<&str> {
        let mut t: Vec<&str> = self.changes.iter().map(|c| c.target.as_str()).collect();
        t.dedup();
        t
    }

    /// `N target(s) touched: +a -r ~c objects`.
    pub fn summary(&self) -> String {
        if self.changes.is_empty() {
            return "no changes".into();
        }
        format!(
            "{} target(s) touched: +{} -{} ~{} object(s)",
            self.targets().len(),
            self.count(Kind::Added),
            self.count(Kind::Removed),
            self.count(Kind::Changed)
        )
    }
}

fn yaml_text(v: &Value) -> String {
    crate::render::emit::to_yaml(v)
}

fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    similar::TextDiff::from_lines(old, new).unified_diff().context_radius(3).header(old_name, new_name).to_string()
}

/// A Job's name split into its base and `-<8 hex>` spec-hash suffix.
fn job_hash<'a>(kind: &str, name: &'a str) -> Option<(&'a str, &'a str)> {
    if kind != "Job" {
        return None;
    }
    let (base, hash) = name.rsplit_once('-')?;
    (hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some((base, hash))
}

/// `name` without a Job's `-<8 hex>` spec-hash suffix.
fn job_base(id: &ObjectId) -> Option<&str> {
    job_hash(&id.kind, &id.name).map(|(base, _)| base)
}

/// Compares two snapshots.
pub fn diff(base: &Snapshot, head: &Snapshot) -> Report {
    let mut changes = Vec::new();
    let mut removed: Vec<(&(String, ObjectId), &Entry)> = Vec::new();
    let mut added: Vec<(&(String, ObjectId), &Entry)> = Vec::new();
    for (key, old) in &base.objects {
        match head.objects.get(key) {
            None => removed.push((key, old)),
            Some(new) if new.value != old.value => changes.push(ObjectChange {
                target: key.0.clone(),
                stage: new.stage.clone(),
                id: key.1.clone(),
                kind: Kind::Changed,
                renamed_from: None,
                diff: unified(&yaml_text(&old.value), &yaml_text(&new.value), &old.path, &new.path),
            }),
            Some(_) => {}
        }
    }
    for (key, new) in &head.objects {
        if !base.objects.contains_key(key) {
            added.push((key, new));
        }
    }
    // Pair a removed and an added Job that differ only in their spec hash.
    let mut paired_added = vec![false; added.len()];
    for (rkey, old) in removed {
        let partner = job_base(&rkey.1).and_then(|b| {
            added.iter().enumerate().position(|(i, (akey, _))| {
                !paired_added[i]
                    && akey.0 == rkey.0
                    && akey.1.api_version == rkey.1.api_version
                    && akey.1.namespace == rkey.1.namespace
                    && job_base(&akey.1) == Some(b)
            })
        });
        match partner {
            Some(i) => {
                paired_added[i] = true;
                let (akey, new) = added[i];
                changes.push(ObjectChange {
                    target: akey.0.clone(),
                    stage: new.stage.clone(),
                    id: akey.1.clone(),
                    kind: Kind::Changed,
                    renamed_from: Some(rkey.1.name.clone()),
                    diff: unified(&yaml_text(&old.value), &yaml_text(&new.value), &old.path, &new.path),
                });
            }
            None => changes.push(ObjectChange {
                target: rkey.0.clone(),
                stage: old.stage.clone(),
                id: rkey.1.clone(),
                kind: Kind::Removed,
                renamed_from: None,
                diff: unified(&yaml_text(&old.value), "", &old.path, "/dev/null"),
            }),
        }
    }
    for (i, (akey, new)) in added.into_iter().enumerate() {
        if !paired_added[i] {
            changes.push(ObjectChange {
                target: akey.0.clone(),
                stage: new.stage.clone(),
                id: akey.1.clone(),
                kind: Kind::Added,
                renamed_from: None,
                diff: unified("", &yaml_text(&new.value), "/dev/null", &new.path),
            });
        }
    }
    changes.sort_by(|a, b| (&a.target, &a.stage, a.kind, &a.id).cmp(&(&b.target, &b.stage, b.kind, &b.id)));
    Report { changes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(files: &[(&str, &str)]) -> Snapshot {
        Snapshot::from_files(files.iter().map(|(p, c)| (*p, c.as_bytes())))
    }

    const DEPLOY: &str =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: users, namespace: ns}\nspec: {replicas: 1}\n";

    #[test]
    fn units_are_target_directories_or_glue_files() {
        assert_eq!(unit_of("ai/pr-1/20-internal/users/deployment-users.yaml"), "ai/pr-1");
        assert_eq!(unit_of("staging/.codex-k8s/target.json"), "staging");
        assert_eq!(unit_of("staging/kustomization.yaml"), "staging");
        assert_eq!(unit_of("flux/ai/pr-1.yaml"), "flux/ai/pr-1.yaml");
        assert_eq!(unit_of("argocd/ai.yaml"), "argocd/ai.yaml");
    }

    #[test]
    fn identical_trees_have_no_changes() {
        let a = snap(&[("staging/20-internal/users/deployment-users.yaml", DEPLOY)]);
        assert!(diff(&a, &a).changes.is_empty());
    }

    #[test]
    fn key_order_and_moved_files_are_not_changes() {
        let a = snap(&[("staging/20-internal/users/deployment-users.yaml", DEPLOY)]);
        let b = snap(&[(
            "staging/30-edge/users/deployment-users.yaml",
            "kind: Deployment\napiVersion: apps/v1\nspec: {replicas: 1}\nmetadata: {namespace: ns, name: users}\n",
        )]);
        assert!(diff(&a, &b).changes.is_empty());
    }

    #[test]
    fn a_changed_field_is_one_changed_object_with_a_diff() {
        let a = snap(&[("staging/20-internal/users/deployment-users.yaml", DEPLOY)]);
        let b =
            snap(&[("staging/20-internal/users/deployment-users.yaml", &DEPLOY.replace("replicas: 1", "replicas: 2"))]);
        let r = diff(&a, &b);
        assert_eq!(r.changes.len(), 1);
        assert_eq!(r.changes[0].kind, Kind::Changed);
        assert!(
            r.changes[0].diff.contains("-  replicas: 1") && r.changes[0].diff.contains("+  replicas: 2"),
            "{}",
            r.changes[0].diff
        );
        assert_eq!(r.summary(), "1 target(s) touched: +0 -0 ~1 object(s)");
    }

    #[test]
    fn rehashed_jobs_pair_up_as_one_change() {
        let job = |h: &str, img: &str| {
            format!("apiVersion: batch/v1\nkind: Job\nmetadata: {{name: migrate-{h}, namespace: ns}}\nspec: {{image: {img}}}\n")
        };
        let a = snap(&[("dev/10-migrations/m/job-migrate-aaaaaaaa.yaml", &job("aaaaaaaa", "v1"))]);
        let b = snap(&[("dev/10-migrations/m/job-migrate-bbbbbbbb.yaml", &job("bbbbbbbb", "v2"))]);
        let r = diff(&a, &b);
        assert_eq!(r.changes.len(), 1);
        assert_eq!(r.changes[0].renamed_from.as_deref(), Some("migrate-aaaaaaaa"));
    }

    /// Found by tests/props.rs (diff applied to base gives head): a
    /// rehashed Job was paired across apiVersions, so the report named only
    /// the new identity and the old one (another apiVersion) was lost.
    #[test]
    fn rehashed_jobs_pair_only_within_one_api_version() {
        let job = |api: &str, h: &str| {
            format!("apiVersion: {api}\nkind: Job\nmetadata: {{name: migrate-{h}, namespace: ns}}\nspec: {{}}\n")
        };
        let a = snap(&[("dev/10-migrations/m/job-migrate-aaaaaaaa.yaml", &job("batch/v1beta1", "aaaaaaaa"))]);
        let b = snap(&[("dev/10-migrations/m/job-migrate-bbbbbbbb.yaml", &job("batch/v1", "bbbbbbbb"))]);
        let r = diff(&a, &b);
        assert_eq!(r.changes.len(), 2, "{:?}", r.changes);
        assert_eq!((r.count(Kind::Added), r.count(Kind::Removed)), (1, 1));
    }

    /// Found by fuzz/diff (a timeout): a file with a YAML error after a
    /// `---` made `from_files` loop forever.
    #[test]
    fn a_broken_document_ends_the_file_instead_of_looping() {
        let s = snap(&[(
            "argocd/staging.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
        )]);
        assert_eq!(s.objects.len(), 1);
    }

    #[test]
    fn kustomizations_and_metadata_are_not_objects() {
        let s = snap(&[("staging/kustomization.yaml", "resources: []\n"), ("ai/pr-1/.codex-k8s/target.json", "{}")]);
        assert!(s.objects.is_empty());
    }
}
