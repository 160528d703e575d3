//! From a rendered target to its files: one object per file under
//! `<NN>-<stage>/<component>/`, a kustomization per stage and one at the
//! target root, and `.codex-k8s/target.json`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::inventory::Inventory;
use crate::render::RenderedTarget;

pub use crate::layout::{reserved_env_problem, RESERVED_DIRS, TARGET_JSON};

/// Contents of `.codex-k8s/target.json`: what was rendered, from what.
/// Argo CD's ApplicationSet git files generator reads it to discover slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetMeta {
    /// Project name.
    pub project: String,
    /// The target's environment.
    pub env: String,
    /// Slot (slot environments).
    #[serde(default)]
    pub slot: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// Public host.
    #[serde(default)]
    pub host: Option<String>,
    /// Agent run id, kept until a render sets another.
    #[serde(default)]
    pub run_id: Option<String>,
    /// Overrides (`--set`, `--values`), one entry per value path, kept
    /// until set again.
    #[serde(default)]
    pub sets: BTreeMap<String, serde_json::Value>,
    /// The source the target was rendered from (a slot's owner), kept by
    /// renders that do not name the slot (`render --all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::render::Source>,
    /// sha256 over the inventory, templates and partials, and this target's request.
    pub inputs_digest: String,
    /// sha256 over this target's object files (paths and contents).
    pub outputs_digest: String,
}

/// Files of one target, relative to the target directory, sorted.
///
/// `outputs_digest` covers every file of the target except `target.json`,
/// plus `flux` (the target's Flux file), so a later run can tell from disk
/// alone whether the target is still exactly what these inputs render.
pub fn target_files(
    inventory: &Inventory,
    rendered: &RenderedTarget,
    inputs_digest: &str,
    flux: &str,
) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut stages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for o in &rendered.objects {
        let dir = o.stage_dir();
        let rel = crate::layout::join(&o.component, &o.file_name());
        stages.entry(dir.clone()).or_default().insert(rel.clone());
        files.insert(format!("{dir}/{rel}"), o.to_yaml());
    }
    for (dir, resources) in &stages {
        files.insert(
            crate::layout::join(dir, crate::layout::KUSTOMIZATION),
            kustomization(resources.iter().map(String::as_str)),
        );
    }
    files.insert(crate::layout::KUSTOMIZATION.into(), kustomization(stages.keys().map(String::as_str)));
    let outputs_digest = outputs_digest(files.iter().map(|(p, c)| (p.as_str(), c.as_bytes())), flux.as_bytes());
    let meta = TargetMeta {
        project: inventory.project.clone(),
        env: rendered.target.env.clone(),
        slot: rendered.target.slot.clone(),
        namespace: rendered.namespace.clone(),
        host: rendered.host.clone(),
        run_id: rendered.run_id.clone(),
        sets: rendered.sets.recorded(),
        source: rendered.source.clone(),
        inputs_digest: inputs_digest.to_owned(),
        outputs_digest,
    };
    files.insert(TARGET_JSON.into(), serde_json::to_string_pretty(&meta).expect("metadata serializes") + "\n");
    files
}

fn kustomization<'a>(resources: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n");
    for r in resources {
        out.push_str("- ");
        out.push_str(r);
        out.push('\n');
    }
    out
}

/// Digest of this build's source: a tree written by another build is never
/// trusted by the skip-by-digest shortcut (see [`crate::tree::is_current`]).
pub const BUILD_ID: &str = env!("CODEX_K8S_BUILD_ID");

/// The outputs digest of a target: its files (without `target.json`) in path
/// order, then its Flux file.
pub fn outputs_digest<'a>(files: impl Iterator<Item = (&'a str, &'a [u8])>, flux: &[u8]) -> String {
    let mut h = Sha256::new();
    for (path, content) in files.filter(|(p, _)| *p != TARGET_JSON) {
        h.update(path.as_bytes());
        h.update([0]);
        h.update((content.len() as u64).to_le_bytes());
        h.update(content);
    }
    h.update(b"flux\0");
    h.update(flux);
    hex::encode(h.finalize())
}

/// sha256 over every input file of the inventory (paths and contents) and
/// the values of the environment variables templates may read (`env_or`).
pub fn inputs_digest(inventory: &Inventory) -> std::io::Result<String> {
    let mut h = Sha256::new();
    for rel in &inventory.sources {
        let bytes = std::fs::read(inventory.root.join(rel))?;
        h.update(rel.to_string_lossy().replace('\\', "/").as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    // `vars_os`: a variable whose name or value is not UTF-8 must not panic
    // (`std::env::vars` does). A name that is not UTF-8 cannot be allowed;
    // a value is hashed as its bytes (`env_or` refuses to read such a value).
    let mut vars: Vec<(String, std::ffi::OsString)> = std::env::vars_os()
        .filter_map(|(k, v)| k.into_string().ok().map(|k| (k, v)))
        .filter(|(k, _)| inventory.env_allow.allows(k))
        .collect();
    vars.sort();
    for (k, v) in vars {
        h.update(format!("env:{k}=").as_bytes());
        h.update(v.as_encoded_bytes());
        h.update([0]);
    }
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    Ok(hex::encode(h.finalize()))
}

/// The digest recorded for one target: project inputs plus the target's request.
pub fn target_inputs_digest(project_digest: &str, request: &crate::render::Request) -> String {
    let mut h = Sha256::new();
    h.update(project_digest.as_bytes());
    h.update(request.target.dir().as_bytes());
    h.update([0]);
    h.update(request.run_id.as_deref().unwrap_or("").as_bytes());
    for (k, v) in &request.sets.recorded() {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([b'=']);
        h.update(v.to_string().as_bytes());
    }
    // The owner and the commit: templates read both (`source`), and a
    // slot's workspace is filled with the commit it records, so a new
    // commit of the owner is a new render of the slot.
    if let Some(source) = &request.source {
        h.update(b"\0source\0");
        h.update(source.git_ref.as_bytes());
        h.update([0]);
        h.update(source.commit.as_deref().unwrap_or("").as_bytes());
    }
    hex::encode(h.finalize())
}
