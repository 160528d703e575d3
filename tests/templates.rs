//! Templates as a Helm user expects them, through the CLI on real projects:
//! values print as YAML, `quote`, environments rendering into a namespace
//! they do not own (checked with `kubectl kustomize` and the upstream Argo CD
//! and Flux CRD schemas), and images that render empty.

use serde_json::Value as Json;

use crate::support::{crd_schemas, identity, require_tool, yaml_documents, yaml_to_json, Project};

/// A one-service project: `manifests/api.yaml.j2` = `template`.
fn project(env_extra: &str, template: &str) -> Project {
    let project = Project::empty();
    project.write(
        "services.yaml",
        &format!(
            "apiVersion: codex-k8s.io/v1alpha1\nkind: ServiceStack\nproject: shop\nenvironments:\n  dev:\n    namespace: shop-dev\n{env_extra}services:\n  - name: api\n    manifests: [manifests/api.yaml.j2]\n"
        ),
    );
    project.write("manifests/api.yaml.j2", template);
    project
}

#[test]
fn booleans_and_quote_render_as_helm_renders_them() {
    let project = project(
        "    vars: {flag: false, on: true, ratio: 1.5, missing: null}\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api\ndata:\n  flag: \"{{ vars.flag }}\"\n  on: {{ vars.on | quote }}\n  ratio: {{ vars.ratio | quote }}\n  quoted: {{ 'say \"hi\"' | quote }}\n  single: {{ \"it's\" | squote }}\n  empty: \"{{ vars.missing }}\"\n",
    );
    let run = project.ok(&["render", "--env", "dev", "--stdout"]);
    let docs = yaml_documents(&run.stdout);
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").expect("the ConfigMap");
    let data = &cm["data"];
    assert_eq!(data["flag"], "false", "{}", run.stdout);
    assert_eq!(data["on"], "true");
    assert_eq!(data["ratio"], "1.5");
    assert_eq!(data["quoted"], "say \"hi\"");
    assert_eq!(data["single"], "it's");
    assert_eq!(data["empty"], "");
}

// ------------------------------------------------------- manageNamespace: false

/// `manageNamespace: false` on the example's platform environment: no
/// Namespace object in its tree (kustomize builds it without one), Argo CD
/// told `CreateNamespace=false`, the glue still valid against the CRDs, and
/// the other environments unchanged.
#[test]
fn an_environment_that_does_not_manage_its_namespace_renders_none_and_the_glue_leaves_it_alone() {
    let Some(kubectl) = require_tool("kubectl", "install kubectl (.ci/run does)") else { return };
    let project = Project::example();
    project.ok(&["render", "--all"]);
    let before = project.snapshot("rendered");
    project.edit(
        "environments/platform.yaml",
        "namespace: \"{{ project }}-platform\"\n",
        "namespace: \"{{ project }}-platform\"\nmanageNamespace: false\n",
    );
    project.ok(&["render", "--all"]);
    let after = project.snapshot("rendered");

    let namespaces: Vec<String> =
        project.objects("platform").into_iter().filter(|(_, o)| o["kind"] == "Namespace").map(|(rel, _)| rel).collect();
    assert!(namespaces.is_empty(), "platform still renders a Namespace: {namespaces:?}");
    assert!(!project.objects("platform").is_empty(), "platform renders nothing at all");

    let out = std::process::Command::new(&kubectl)
        .arg("kustomize")
        .arg(project.path("rendered/platform"))
        .output()
        .expect("run kubectl");
    assert!(out.status.success(), "kubectl kustomize failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let built = yaml_documents(&String::from_utf8_lossy(&out.stdout));
    assert!(built.iter().all(|o| o["kind"] != "Namespace"), "kustomize built a Namespace");
    assert!(built
        .iter()
        .all(|o| o["metadata"]["namespace"] == "shop-platform" || o["metadata"]["namespace"].is_null()));
    assert_eq!(built.len(), project.objects("platform").len());

    let schemas = crd_schemas();
    for rel in ["argocd/platform.yaml", "flux/platform.yaml"] {
        for object in yaml_documents(&project.read(&format!("rendered/{rel}"))) {
            let (api_version, kind, _, name) = identity(&object);
            let schema = &schemas[&(api_version, kind.clone())];
            let validator = jsonschema::validator_for(schema).expect("a valid JSON Schema");
            let json = yaml_to_json(&object);
            let errors: Vec<String> =
                validator.iter_errors(&json).map(|e| format!("{}: {e}", e.instance_path)).collect();
            assert!(errors.is_empty(), "rendered/{rel}: {kind} {name}: {errors:?}");
            if kind == "Application" {
                let options = &json["spec"]["syncPolicy"]["syncOptions"];
                assert_eq!(options, &serde_json::json!(["PruneLast=true", "CreateNamespace=false"]), "{rel}");
            }
        }
    }
    // Only the platform target and its glue changed.
    let changed: Vec<&String> = before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
    assert!(
        changed.iter().all(|k| k.starts_with("platform/")
            || k.ends_with("/platform.yaml")
            || k.ends_with("/.codex-k8s/target.json")),
        "other files changed: {changed:?}"
    );
    let staging: Json = yaml_to_json(&yaml_documents(&project.read("rendered/argocd/staging.yaml"))[0]);
    assert_eq!(staging["spec"]["syncPolicy"]["syncOptions"], serde_json::json!(["PruneLast=true"]));
}
