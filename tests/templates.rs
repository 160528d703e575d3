//! Templates as a Helm user expects them, through the CLI on real projects:
//! values print as YAML, `quote`, environments rendering into a namespace
//! they do not own (checked with `kubectl kustomize` and the upstream Argo CD
//! and Flux CRD schemas), and images that render empty.

use crate::support::{yaml_documents, Project};

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
