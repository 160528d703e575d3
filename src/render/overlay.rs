//! Post-render overlays for one environment: PVC mounts into every pod
//! template, environment variables into every container, dropped kinds.
//! [`render`] renders an overlay's strings with the component's context;
//! the rest are pure functions over YAML values.

use std::collections::BTreeMap;

use minijinja::value::Value as JValue;
use serde_yaml::{Mapping, Value};

use crate::inventory::yaml::YamlPath;
use crate::inventory::Overlay;
use crate::template::detail;
use crate::template::Engine;

/// A PVC mount with its templates already rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Volume name.
    pub volume: String,
    /// Claim name.
    pub claim_name: String,
    /// Mount path.
    pub mount_path: String,
    /// Sub-path.
    pub sub_path: Option<String>,
    /// Read-only.
    pub read_only: bool,
}

/// The pod specs inside an object: Pods, workload templates, CronJob job templates.
pub fn pod_specs_mut(object: &mut Value) -> Vec<&mut Mapping> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    let path: &[&str] = match kind.as_str() {
        "Pod" => &["spec"],
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "ReplicationController" => {
            &["spec", "template", "spec"]
        }
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return Vec::new(),
    };
    let mut cur = object;
    for key in path {
        match cur.get_mut(*key) {
            Some(next) => cur = next,
            None => return Vec::new(),
        }
    }
    match cur.as_mapping_mut() {
        Some(m) => vec![m],
        None => Vec::new(),
    }
}

fn containers_mut(pod: &mut Mapping) -> impl Iterator<Item = &mut Mapping> {
    pod.iter_mut()
        .filter(|(k, _)| matches!(k.as_str(), Some("containers" | "initContainers")))
        .filter_map(|(_, v)| v.as_sequence_mut())
        .flat_map(|s| s.iter_mut())
        .filter_map(Value::as_mapping_mut)
}

/// Replaces the entry of `list` whose `key` field equals `entry`'s, or appends it.
fn upsert_by(list: &mut Vec<Value>, key: &str, entry: Value) {
    let wanted = entry.get(key).cloned();
    match list.iter_mut().find(|e| e.get(key) == wanted.as_ref()) {
        Some(slot) => *slot = entry,
        None => list.push(entry),
    }
}

fn sequence_at<'a>(map: &'a mut Mapping, key: &str) -> &'a mut Vec<Value> {
    let entry = map.entry(Value::from(key)).or_insert_with(|| Value::Sequence(Vec::new()));
    if !entry.is_sequence() {
        *entry = Value::Sequence(Vec::new());
    }
    entry.as_sequence_mut().expect("just made a sequence")
}

/// Adds the volume to every pod spec and the mount to every container and init container.
pub fn add_pvc_mount(object: &mut Value, mount: &Mount) {
    for pod in pod_specs_mut(object) {
        let mut claim = Mapping::new();
        claim.insert("claimName".into(), mount.claim_name.clone().into());
        if mount.read_only {
            claim.insert("readOnly".into(), true.into());
        }
        let mut volume = Mapping::new();
        volume.insert("name".into(), mount.volume.clone().into());
        volume.insert("persistentVolumeClaim".into(), Value::Mapping(claim));
        upsert_by(sequence_at(pod, "volumes"), "name", Value::Mapping(volume));
        for c in containers_mut(pod) {
            let mut vm = Mapping::new();
            vm.insert("name".into(), mount.volume.clone().into());
            vm.insert("mountPath".into(), mount.mount_path.clone().into());
            if let Some(sp) = &mount.sub_path {
                vm.insert("subPath".into(), sp.clone().into());
            }
            if mount.read_only {
                vm.insert("readOnly".into(), true.into());
            }
            let mounts = sequence_at(c, "volumeMounts");
            // A mount at the same path would clash with ours: it goes too.
            mounts.retain(|m| {
                m.get("mountPath").and_then(Value::as_str) != Some(&mount.mount_path)
                    || m.get("name").and_then(Value::as_str) == Some(&mount.volume)
            });
            upsert_by(mounts, "name", Value::Mapping(vm));
        }
    }
}

/// Sets `name=value` in every container and init container (replacing a variable of that name).
pub fn add_env(object: &mut Value, name: &str, value: &str) {
    for pod in pod_specs_mut(object) {
        for c in containers_mut(pod) {
            let mut var = Mapping::new();
            var.insert("name".into(), name.into());
            var.insert("value".into(), value.into());
            upsert_by(sequence_at(c, "env"), "name", Value::Mapping(var));
        }
    }
}

/// A component's overlay for one environment, its strings rendered.
#[derive(Debug)]
pub(super) struct RenderedOverlay<'a> {
    overlay: &'a Overlay,
    mounts: Vec<Mount>,
    env: Vec<(String, String)>,
}

impl RenderedOverlay<'_> {
    /// Whether the overlay drops objects of `kind`.
    pub fn drops(&self, kind: &str) -> bool {
        self.overlay.drop_kinds.iter().any(|k| k == kind)
    }

    /// Adds the overlay's PVC mounts, then its environment variables, to `object`.
    pub fn apply(&self, object: &mut Value) {
        for m in &self.mounts {
            add_pvc_mount(object, m);
        }
        for (k, v) in &self.env {
            add_env(object, k, v);
        }
    }
}

/// Renders the strings of overlay `o` with a component's context `ctx`;
/// the error is the failing string's path inside the overlay and
/// minijinja's message.
pub(super) fn render<'a>(
    engine: &Engine,
    o: &'a Overlay,
    ctx: &JValue,
) -> Result<RenderedOverlay<'a>, (YamlPath, String)> {
    let mut texts = BTreeMap::new();
    for (at, t) in o.templates() {
        let text = engine.render_inline(t, ctx).map_err(|e| (at.clone(), detail(&e)))?;
        texts.insert(at, text);
    }
    let mut take = |at: YamlPath| texts.remove(&at).unwrap_or_default();
    let mut mounts = Vec::new();
    for (i, m) in o.pvc_mounts.iter().enumerate() {
        let at = YamlPath::default().key("pvcMounts").index(i);
        let claim_name = take(at.key("claimName"));
        let volume = match &m.name {
            Some(_) => take(at.key("name")),
            None => crate::inventory::names::to_dns_label(&claim_name),
        };
        let sub_path = m.sub_path.as_ref().map(|_| take(at.key("subPath")));
        mounts.push(Mount {
            volume,
            claim_name,
            mount_path: take(at.key("mountPath")),
            sub_path,
            read_only: m.read_only,
        });
    }
    let env = o.env.keys().map(|k| (k.clone(), take(YamlPath::default().key("env").key(k)))).collect();
    Ok(RenderedOverlay { overlay: o, mounts, env })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    fn mount() -> Mount {
        Mount {
            volume: "ws".into(),
            claim_name: "shop-ws".into(),
            mount_path: "/workspace".into(),
            sub_path: Some("slots/a".into()),
            read_only: false,
        }
    }

    #[test]
    fn pvc_mount_reaches_containers_and_init_containers_of_a_cronjob() {
        let mut o = yaml("kind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          initContainers: [{name: i}]\n          containers: [{name: c, volumeMounts: [{name: ws, mountPath: /old}]}]\n          volumes: [{name: ws, emptyDir: {}}]\n");
        add_pvc_mount(&mut o, &mount());
        let pod = &o["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"].as_sequence().unwrap().len(), 1, "same-name volume replaced");
        assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"], "shop-ws");
        assert_eq!(pod["containers"][0]["volumeMounts"][0]["mountPath"], "/workspace");
        assert_eq!(pod["containers"][0]["volumeMounts"].as_sequence().unwrap().len(), 1);
        assert_eq!(pod["initContainers"][0]["volumeMounts"][0]["subPath"], "slots/a");
    }

    #[test]
    fn pvc_mount_leaves_non_workloads_alone() {
        let mut o = yaml("kind: Service\nspec: {ports: []}\n");
        let before = o.clone();
        add_pvc_mount(&mut o, &mount());
        assert_eq!(o, before);
    }

    #[test]
    fn env_replaces_a_variable_of_the_same_name() {
        let mut o = yaml("kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        env: [{name: LOG_LEVEL, value: info}, {name: X, value: '1'}]\n      - name: b\n");
        add_env(&mut o, "LOG_LEVEL", "debug");
        let cs = &o["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["env"][0]["value"], "debug");
        assert_eq!(cs[0]["env"].as_sequence().unwrap().len(), 2);
        assert_eq!(cs[1]["env"][0]["name"], "LOG_LEVEL");
    }
}
