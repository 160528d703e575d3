//! The objects that point GitOps controllers at the tree: an Argo CD
//! Application per plain environment, an AppProject and an ApplicationSet
//! (git files generator over the slots' target.json) per slot environment,
//! and per target one Flux Kustomization per stage, each `dependsOn` the
//! previous one.
//!
//! A slot environment's AppProject is a second wall behind the renderer's
//! policy: its Applications may deploy only into namespaces shaped like the
//! environment's `namespace` template ([`namespace_glob`]), from this
//! repository, and no cluster-scoped kind but their own Namespace.
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

/// The Argo CD glob (`*` for any run of characters) that every namespace
/// `template` can render matches: `{{ project }}` and `{{ env }}` are the
/// values given, every other expression or tag may be anything. Pure
/// template syntax, so the glob never depends on which slot was rendered.
pub fn namespace_glob(template: &str, project: &str, env: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let (open, close) = match rest.as_bytes().get(start + 1) {
            Some(b'{') => ("{{", "}}"),
            Some(b'%') => ("{%", "%}"),
            Some(b'#') => ("{#", "#}"),
            _ => {
                out.push_str(&rest[..=start]);
                rest = &rest[start + 1..];
                continue;
            }
        };
        out.push_str(&rest[..start]);
        let body_at = start + open.len();
        let Some(len) = rest[body_at..].find(close) else {
            // Unterminated: the engine refuses it; stay permissive here.
            out.push('*');
            rest = "";
            break;
        };
        let expr = rest[body_at..body_at + len].trim_matches(['-', '+', '~']).trim();
        match (open, expr) {
            ("{#", _) => {}
            ("{{", "project") => out.push_str(project),
            ("{{", "env") => out.push_str(env),
            _ => out.push('*'),
        }
        rest = &rest[body_at + len + close.len()..];
    }
    out.push_str(rest);
    let mut glob = String::with_capacity(out.len());
    for c in out.chars() {
        if !(c == '*' && glob.ends_with('*')) {
            glob.push(c);
        }
    }
    glob
}

/// The cluster Argo CD runs in, the destination when an environment names none.
pub const IN_CLUSTER: &str = "https://kubernetes.default.svc";

/// The destination cluster of environment `env`'s Applications, with
/// `namespace` when given: `server` or `name` as the environment's
/// `cluster:` says, else the cluster Argo CD runs in.
fn destination(inventory: &Inventory, env: &str, namespace: Option<&str>) -> serde_json::Value {
    let mut d = match &inventory.environments[env].cluster {
        Some(crate::inventory::RawCluster { name: Some(name), .. }) => json!({"name": name}),
        Some(crate::inventory::RawCluster { server: Some(server), .. }) => json!({"server": server}),
        _ => json!({"server": IN_CLUSTER}),
    };
    if let Some(ns) = namespace {
        d["namespace"] = json!(ns);
    }
    d
}

/// The AppProject of slot environment `env`: destinations limited to the
/// slot namespaces of its cluster, sources to the repository, cluster-scoped
/// kinds to the slot's own Namespace (none when the environment does not
/// manage it), namespaced kinds to those a slot may create
/// ([`crate::render::slot_kinds`], never `*`).
fn slot_project(inventory: &Inventory, env: &str, name: &str, labels: &serde_json::Value) -> serde_json::Value {
    let g = &inventory.gitops;
    let environment = &inventory.environments[env];
    let namespaces = namespace_glob(&environment.namespace, &inventory.project, env);
    let cluster: Vec<serde_json::Value> =
        if environment.manage_namespace { vec![json!({"group": "", "kind": "Namespace"})] } else { Vec::new() };
    let namespaced: Vec<serde_json::Value> = crate::render::slot_kinds(&inventory.policy.namespaced_kinds)
        .into_iter()
        .map(|(group, kind)| json!({"group": group, "kind": kind}))
        .collect();
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": name, "namespace": g.argocd_namespace, "labels": labels},
        "spec": {
            "description": format!("Slots of {}/{env}, rendered by codex-k8s", inventory.project),
            "sourceRepos": [g.repo_url],
            "destinations": [destination(inventory, env, Some(&namespaces))],
            "clusterResourceWhitelist": cluster,
            "namespaceResourceWhitelist": namespaced,
        },
    })
}

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
                "destination": destination(inventory, env, None),
                "syncPolicy": sync_policy(environment.manage_namespace),
            },
        });
        return yaml(&app);
    }
    let project = slot_project(inventory, env, &name, &labels);
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
                    "project": name,
                    "source": {"repoURL": g.repo_url, "targetRevision": g.revision, "path": repo_path(out_prefix, &format!("{env}/{{{{.slot}}}}"))},
                    "destination": destination(inventory, env, Some("{{.namespace}}")),
                    "syncPolicy": sync_policy(environment.manage_namespace),
                },
            },
        },
    });
    format!("{}---\n{}", yaml(&project), yaml(&set))
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
    let timeout = set.timeout.map(|t| t.as_str().to_owned()).unwrap_or_else(|| {
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
        if let Some(flux) = &inventory.environments[&rendered.target.env].flux {
            if let Some(sa) = &flux.service_account_name {
                spec["serviceAccountName"] = json!(sa);
            }
            if let Some(d) = &flux.decryption {
                spec["decryption"] = json!(d);
            }
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

#[cfg(test)]
mod tests {
    use super::namespace_glob;

    #[test]
    fn a_namespace_template_becomes_the_glob_of_every_namespace_it_renders() {
        let cases = [
            ("{{ project }}-dev-{{ slot }}", "shop-dev-*"),
            ("{{project}}-{{env}}-{{ slot | dns_label }}", "shop-ai-*"),
            ("{{- project -}}-{{ slot }}-x", "shop-*-x"),
            ("{{ vars.prefix }}-{{ slot }}", "*-*"),
            ("{{ a }}{{ b }}", "*"),
            ("pr-{% if x %}{{ slot }}{% endif %}", "pr-*"),
            ("{# note #}{{ project }}-{{ slot }}", "shop-*"),
            ("ns-{slot}", "ns-{slot}"),
            ("{{ project | upper }}-{{ slot }}", "*-*"),
            ("broken-{{ slot", "broken-*"),
        ];
        for (template, glob) in cases {
            assert_eq!(namespace_glob(template, "shop", "ai"), glob, "{template}");
        }
    }
}
