//! The stages of a slot as its committed tree has them: each stage
//! directory's workloads (Deployments, StatefulSets, DaemonSets, Jobs),
//! for [`super::ready`]. Reads git only, never fetches: the watcher reads
//! the tip its TTL pass fetched last; `status --wait` the branch or rev it
//! is given.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{ObjectType, Oid, Repository, Tree};
use serde_json::Value;

use super::ready::{self, Kind, SlotTree, Stage, Workload};
use super::source::Source;
use super::Result;
use crate::git;
use crate::layout::{is_stage_dir, TARGET_JSON};
use crate::render::labels;
use crate::tree::TargetMeta;

/// File-name prefixes of the kinds readiness judges (`<kind lower-case>-<name>.yaml`).
const WORKLOAD_FILES: &[&str] = &["deployment-", "statefulset-", "daemonset-", "job-"];

/// A slot's tree, or why it cannot be read (the slot is then not judged).
pub type Read = std::result::Result<SlotTree, String>;

/// The commit to read: `rev` when given (a branch, `origin/rendered`, any
/// revision); else what the watcher follows: with a remote, the ref its
/// fetch writes (`refs/codex-k8s/remote/<branch>`, then the
/// remote-tracking branch), else the local branch (the checked-out one
/// unless `src.branch` names another). None: nothing to read.
pub fn tip(repo: &Repository, src: &Source, rev: Option<&str>) -> Result<Option<Oid>> {
    if let Some(rev) = rev {
        let commit = repo
            .revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .map_err(|e| git::Error::Refused(format!("cannot read `{rev}`: {}", e.message())))?;
        return Ok(Some(commit.id()));
    }
    let branch = match &src.branch {
        Some(b) => b.trim_start_matches("refs/heads/").to_owned(),
        None => {
            let head = repo.find_reference("HEAD").map_err(git::Error::from)?;
            match head.symbolic_target() {
                Some(t) => t.trim_start_matches("refs/heads/").to_owned(),
                None => return Err(git::Error::DetachedHead.into()),
            }
        }
    };
    let mut refs = Vec::new();
    if let Some(remote) = &src.remote {
        refs.push(format!("refs/codex-k8s/remote/{branch}"));
        refs.push(format!("refs/remotes/{remote}/{branch}"));
    }
    refs.push(format!("refs/heads/{branch}"));
    Ok(refs.iter().find_map(|r| repo.refname_to_id(r).ok()))
}

/// The trees of `slots` (env, slot) at `rev` (see [`tip`]); a slot absent
/// there is absent from the map.
pub fn read(src: &Source, rev: Option<&str>, slots: &[(String, String)]) -> Result<BTreeMap<(String, String), Read>> {
    let repo = Repository::discover(&src.repo).map_err(git::Error::from)?;
    let mut out = BTreeMap::new();
    let Some(tip) = tip(&repo, src, rev)? else { return Ok(out) };
    let root = repo.find_commit(tip).and_then(|c| c.tree()).map_err(git::Error::from)?;
    let namespaces = super::source::SlotNamespaces::load(src);
    for (env, slot) in slots {
        let dir = crate::layout::join(&src.prefix, &crate::layout::target_dir(env, Some(slot)));
        let Ok(entry) = root.get_path(Path::new(&dir)) else { continue };
        if entry.kind() != Some(ObjectType::Tree) {
            continue;
        }
        let slot_tree = repo.find_tree(entry.id()).map_err(git::Error::from)?;
        let read = slot_of(&repo, &slot_tree, &dir, env, slot).and_then(|t| {
            let expected = namespaces.of(env, slot);
            if t.namespace == expected {
                return Ok(t);
            }
            Err(format!(
                "{dir}/{TARGET_JSON} names namespace `{}`, but the inventory gives slot {env}/{slot} `{expected}`: \
                 re-render the slot",
                t.namespace
            ))
        });
        out.insert((env.clone(), slot.clone()), read);
    }
    Ok(out)
}

fn slot_of(repo: &Repository, tree: &Tree<'_>, dir: &str, env: &str, slot: &str) -> Read {
    let meta_path = format!("{dir}/{TARGET_JSON}");
    let meta = tree.get_path(Path::new(TARGET_JSON)).map_err(|_| format!("{meta_path} is missing"))?;
    let blob = repo.find_blob(meta.id()).map_err(|e| format!("{meta_path}: {}", e.message()))?;
    let meta: TargetMeta = serde_json::from_slice(blob.content()).map_err(|e| format!("{meta_path}: {e}"))?;
    let mut stages = Vec::new();
    for e in tree.iter() {
        let Some(name) = e.name().filter(|n| is_stage_dir(n)) else { continue };
        if e.kind() != Some(ObjectType::Tree) {
            continue;
        }
        let stage_tree = repo.find_tree(e.id()).map_err(|e| e.message().to_owned())?;
        let mut workloads = Vec::new();
        collect(repo, &stage_tree, &format!("{dir}/{name}"), &mut workloads)?;
        workloads.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        stages.push(Stage { dir: name.to_owned(), workloads });
    }
    stages.sort_by_key(|s| (order(&s.dir), s.dir.clone()));
    Ok(SlotTree {
        env: env.to_owned(),
        slot: slot.to_owned(),
        namespace: meta.namespace,
        host: meta.host,
        rendering: ready::rendering(meta.run_id.as_deref(), &meta.inputs_digest),
        stages,
    })
}

/// A stage directory's rank: its leading number.
fn order(dir: &str) -> u64 {
    dir.split('-').next().and_then(|n| n.parse().ok()).unwrap_or(u64::MAX)
}

/// The workloads under `tree` (component directories, one object per file).
fn collect(repo: &Repository, tree: &Tree<'_>, dir: &str, out: &mut Vec<Workload>) -> std::result::Result<(), String> {
    for e in tree.iter() {
        let Some(name) = e.name() else { continue };
        let path = format!("{dir}/{name}");
        match e.kind() {
            Some(ObjectType::Tree) => {
                let sub = repo.find_tree(e.id()).map_err(|e| format!("{path}: {}", e.message()))?;
                collect(repo, &sub, &path, out)?;
            }
            Some(ObjectType::Blob) if name.ends_with(".yaml") && WORKLOAD_FILES.iter().any(|p| name.starts_with(p)) => {
                let blob = repo.find_blob(e.id()).map_err(|e| format!("{path}: {}", e.message()))?;
                let doc: Value = serde_yaml::from_slice(blob.content()).map_err(|e| format!("{path}: {e}"))?;
                if let Some(w) = workload(&doc) {
                    out.push(w);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The workload a rendered object is, if readiness judges its kind.
pub fn workload(doc: &Value) -> Option<Workload> {
    let kind = Kind::of(doc["apiVersion"].as_str()?, doc["kind"].as_str()?)?;
    let name = doc["metadata"]["name"].as_str()?.to_owned();
    let agent = doc["metadata"]["labels"][labels::ROLE].as_str() == Some("agent");
    let pod = &doc["spec"]["template"]["spec"];
    let images = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod[*k].as_array())
        .flatten()
        .filter_map(|c| Some((c["name"].as_str()?.to_owned(), c["image"].as_str()?.to_owned())))
        .collect();
    Some(Workload { kind, name, agent, images })
}
