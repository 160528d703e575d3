//! The objects that point GitOps controllers at the tree: an Argo CD
//! Application per plain environment, an ApplicationSet (git files generator
//! over the slots' target.json) per slot environment, and per target one Flux
//! Kustomization per stage, each `dependsOn` the previous one.

use serde_json::json;

use crate::inventory::Inventory;
use crate::render::RenderedTarget;

fn yaml(value: &serde_json::Value) -> String {
    crate::render::emit::to_yaml(&serde_yaml::to_value(value).expect("JSON values convert to YAML"))
}

/// Path of a tree file as the GitOps controller sees it (relative to the repository root).
use crate::layout::join as repo_path;

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
    })
}

/// `argocd/<env>.yaml` for environment `env`.
pub fn argocd_file(inventory: &Inventory, env: &str, out_prefix: &str) -> String {
    let g = &inventory.gitops;
    let environment = &inventory.environments[env];
    let name = format!("{}-{}", inventory.project, env);
    let labels = json!({"app.kubernetes.io/managed-by": "codex-k8s", "app.kubernetes.io/part-of": inventory.project, "codex-k8s.io/env": env});
    if !environment.slots {
        let app = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name, "namespace": g.argocd_namespace, "labels": labels},
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
                    "name": format!("{}-{}-{{{{.slot}}}}", inventory.project, env),
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
        let name = format!("{base}-{dir}");
        let mut labels = json!({"app.kubernetes.io/managed-by": "codex-k8s", "app.kubernetes.io/part-of": inventory.project, "codex-k8s.io/env": rendered.target.env});
        if let Some(s) = &rendered.target.slot {
            labels["codex-k8s.io/slot"] = json!(s);
        }
        let mut spec = json!({
            "interval": g.interval,
            "path": format!("./{}", repo_path(out_prefix, &format!("{}/{dir}", rendered.target.dir()))),
            "prune": true,
            "wait": true,
            "timeout": "10m",
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
