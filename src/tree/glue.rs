//! The objects that point GitOps controllers at the tree: an Argo CD
//! Application per plain environment, an ApplicationSet (git files generator
//! over the slots' target.json) per slot environment, and per target one Flux
//! Kustomization per stage, each `dependsOn` the previous one.
//!
//! Every generated name fits a DNS label (63 characters): a longer one is
//! shortened deterministically by [`fit_name`].

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::inventory::Inventory;
use crate::render::RenderedTarget;

fn yaml(value: &serde_json::Value) -> String {
    crate::render::emit::to_yaml(&serde_yaml::to_value(value).expect("JSON values convert to YAML"))
}

/// Path of a tree file as the GitOps controller sees it (relative to the repository root).
use crate::layout::join as repo_path;

/// Longest Kubernetes name the glue emits (a DNS label: Flux and Argo CD
/// copy object names into label values).
pub const MAX_NAME: usize = 63;

/// `full` if it fits [`MAX_NAME`], else its first 54 characters (without a
/// trailing `-`), `-` and the first 8 hex digits of the sha256 of `full`:
/// stable across renders, distinct for distinct long names.
pub fn fit_name(full: &str) -> String {
    if full.len() <= MAX_NAME {
        return full.to_owned();
    }
    let digest = hex::encode(Sha256::digest(full.as_bytes()));
    let head = full[..MAX_NAME - 9].trim_end_matches('-');
    format!("{head}-{}", &digest[..8])
}

/// The same shortening as [`fit_name`], as a Go template (Sprig functions,
/// which Argo CD's ApplicationSet templates provide) over `prefix` + `.slot`.
fn fit_name_template(prefix: &str) -> String {
    format!(
        "{{{{- $n := printf \"{prefix}%s\" .slot -}}}}{{{{- if le (len $n) {MAX_NAME} -}}}}{{{{ $n }}}}{{{{- else -}}}}\
         {{{{ trunc {} $n | trimSuffix \"-\" }}}}-{{{{ sha256sum $n | trunc 8 }}}}{{{{- end -}}}}",
        MAX_NAME - 9
    )
}

/// Retry of a failed sync: five attempts, backing off from 5 s to 3 min.
fn retry() -> serde_json::Value {
    json!({"limit": 5, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}})
}

/// Argo CD's sync policy. An environment that does not manage its namespace
/// says `CreateNamespace=false` outright: the namespace is someone else's,
/// Argo CD must neither create it nor (having no Namespace object) prune it.
fn sync_policy(manage_namespace: bool) -> serde_json::Value {
    let mut options = vec!["PruneLast=true"];
    if !manage_namespace {
        options.push("CreateNamespace=false");
    }
    json!({
        "automated": {"prune": true, "selfHeal": true},
        "syncOptions": options,
        "retry": retry(),
    })
}

/// Argo CD deletes an Application's resources before the Application itself
/// (a removed environment or slot is pruned, not orphaned).
const FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";

/// `argocd/<env>.yaml` for environment `env`.
pub fn argocd_file(inventory: &Inventory, env: &str, out_prefix: &str) -> String {
    let g = &inventory.gitops;
    let environment = &inventory.environments[env];
    let name = fit_name(&format!("{}-{}", inventory.project, env));
    // Argo CD regenerates an Application's manifests only when a commit
    // touches its own path (`.` is the Application's source path).
    let paths = json!({"argocd.argoproj.io/manifest-generate-paths": "."});
    let labels = json!({"app.kubernetes.io/managed-by": "codex-k8s", "app.kubernetes.io/part-of": inventory.project, "codex-k8s.io/env": env});
    if !environment.slots {
        let app = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {
                "name": name,
                "namespace": g.argocd_namespace,
                "labels": labels,
                "annotations": paths,
                "finalizers": [FINALIZER],
            },
            "spec": {
                "project": g.argocd_project,
                "source": {"repoURL": g.repo_url, "targetRevision": g.revision, "path": repo_path(out_prefix, env)},
                "destination": {"server": "https://kubernetes.default.svc"},
                "syncPolicy": sync_policy(environment.manage_namespace),
            },
        });
        return yaml(&app);
    }
    let set = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": name, "namespace": g.argocd_namespace, "labels": labels},
        "spec": {
            "goTemplate": true,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"git": {
                "repoURL": g.repo_url,
                "revision": g.revision,
                "files": [{"path": repo_path(out_prefix, &format!("{env}/*/{}", crate::layout::TARGET_JSON))}],
            }}],
            "template": {
                "metadata": {
                    "name": fit_name_template(&format!("{}-{}-", inventory.project, env)),
                    "annotations": paths,
                    "finalizers": [FINALIZER],
                    "labels": {"app.kubernetes.io/managed-by": "codex-k8s", "codex-k8s.io/env": env, "codex-k8s.io/slot": "{{.slot}}"},
                },
                "spec": {
                    "project": g.argocd_project,
                    "source": {"repoURL": g.repo_url, "targetRevision": g.revision, "path": repo_path(out_prefix, &format!("{env}/{{{{.slot}}}}"))},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": "{{.namespace}}"},
                    "syncPolicy": sync_policy(environment.manage_namespace),
                },
            },
        },
    });
    yaml(&set)
}

/// Path of a target's Flux file, relative to the tree root.
pub fn flux_path(env: &str, slot: Option<&str>) -> String {
    crate::layout::flux_path(env, slot)
}

/// Flux `wait` and `timeout` of stage directory `dir`: the inventory's
/// `gitops.stages.<stage>` where set; else the agent stage does not wait (its
/// Job runs for hours), and a stage with Jobs gets their longest
/// `activeDeadlineSeconds` + 1 min (at least 10m; 30m when a Job has none).
fn stage_sync(inventory: &Inventory, rendered: &RenderedTarget, dir: &str) -> (bool, String) {
    let objects: Vec<_> = rendered.objects.iter().filter(|o| o.stage_dir() == dir).collect();
    let stage = objects.first().map(|o| o.stage.as_str()).unwrap_or_default();
    let set = inventory.gitops.stages.get(stage).cloned().unwrap_or_default();
    let wait = set.wait.unwrap_or(stage != "agent");
    let timeout = set.timeout.unwrap_or_else(|| {
        let deadlines: Vec<Option<u64>> = objects
            .iter()
            .filter(|o| o.id.kind == "Job" && o.id.group() == "batch")
            .map(|o| o.value.get("spec").and_then(|s| s.get("activeDeadlineSeconds")).and_then(|d| d.as_u64()))
            .collect();
        match deadlines.iter().copied().collect::<Option<Vec<u64>>>() {
            _ if deadlines.is_empty() => "10m".to_owned(),
            None => "30m".to_owned(),
            Some(ds) => {
                let seconds = (ds.into_iter().max().unwrap_or(0) + 60).max(600);
                if seconds % 60 == 0 {
                    format!("{}m", seconds / 60)
                } else {
                    format!("{seconds}s")
                }
            }
        }
    });
    (wait, timeout)
}

/// The Flux Kustomizations of one target: one per stage directory it has.
pub fn flux_file(inventory: &Inventory, rendered: &RenderedTarget, out_prefix: &str) -> String {
    let g = &inventory.gitops;
    let mut stage_dirs: Vec<String> = rendered.objects.iter().map(|o| o.stage_dir()).collect();
    stage_dirs.sort();
    stage_dirs.dedup();
    let base = match &rendered.target.slot {
        Some(s) => format!("{}-{}-{s}", inventory.project, rendered.target.env),
        None => format!("{}-{}", inventory.project, rendered.target.env),
    };
    let mut docs = Vec::new();
    let mut previous: Option<String> = None;
    for dir in &stage_dirs {
        let name = fit_name(&format!("{base}-{dir}"));
        let (wait, timeout) = stage_sync(inventory, rendered, dir);
        let mut labels = json!({"app.kubernetes.io/managed-by": "codex-k8s", "app.kubernetes.io/part-of": inventory.project, "codex-k8s.io/env": rendered.target.env});
        if let Some(s) = &rendered.target.slot {
            labels["codex-k8s.io/slot"] = json!(s);
        }
        let mut spec = json!({
            "interval": g.interval,
            "path": format!("./{}", repo_path(out_prefix, &format!("{}/{dir}", rendered.target.dir()))),
            "prune": true,
            "wait": wait,
            "timeout": timeout,
            "sourceRef": {"kind": "GitRepository", "name": g.flux_source},
        });
        if let Some(prev) = &previous {
            spec["dependsOn"] = json!([{"name": prev}]);
        }
        docs.push(yaml(&json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": g.flux_namespace, "labels": labels},
            "spec": spec,
        })));
        previous = Some(name);
    }
    docs.join("---\n")
}
