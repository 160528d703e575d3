//! Values from outside services.yaml (`--set`, `--set-string`, `--values`)
//! and per-component values, checked on what the built binary renders.

use serde_json::{json, Value as Json};

use crate::support::{yaml_documents, yaml_to_json, Project};

const SERVICES: &str = r#"apiVersion: codex-k8s.io/v1alpha1
kind: ServiceStack
project: shop
versions: {api: "1.0.0"}
environments:
  dev:
    namespace: shop-dev
    vars:
      replicas: 1
      hosts: [a.example, b.example]
      sa: {annotations: {team: core}}
      rules: [{port: 1, name: one}]
  ai:
    slots: true
    namespace: "shop-ai-{{ slot }}"
    vars: {replicas: 1}
services:
  - name: api
    manifests: [manifests/values.yaml.j2]
"#;

const DUMP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"{{ component.name }}\"\n\
                    data:\n  vars: {{ vars | tojson | tojson }}\n  version: \"{{ versions.api }}\"\n";

fn project(services: &str) -> Project {
    let p = Project::empty();
    p.write("services.yaml", services);
    p.write("manifests/values.yaml.j2", DUMP);
    p
}

/// The `vars` component `name` saw, from `render --stdout`.
fn vars_of(p: &Project, args: &[&str], name: &str) -> Json {
    let mut all = vec!["render", "--stdout"];
    all.extend_from_slice(args);
    let run = p.ok(&all);
    let doc = yaml_documents(&run.stdout)
        .into_iter()
        .map(|d| yaml_to_json(&d))
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no ConfigMap {name} in\n{run}"));
    let mut vars: Json = serde_json::from_str(doc["data"]["vars"].as_str().expect("vars text")).expect("vars json");
    vars["_version"] = doc["data"]["version"].clone();
    vars
}

#[test]
fn set_follows_helms_grammar() {
    let p = project(SERVICES);
    let v = vars_of(
        &p,
        &[
            "--env",
            "dev",
            "--set",
            r"vars.sa.annotations.iam\.gke\.io/gcp-service-account=app@p.iam.gserviceaccount.com",
            "--set",
            "vars.replicas=3,vars.flag=true,vars.ratio=1.5,vars.zip=007,vars.none=null",
            "--set-string",
            "vars.code=007,vars.yes=true",
            "--set",
            "vars.list={x,2,false}",
            "--set",
            r"vars.text=a\,b",
        ],
        "api",
    );
    assert_eq!(v["sa"]["annotations"], json!({"team": "core", "iam.gke.io/gcp-service-account": "app@p.iam.gserviceaccount.com"}));
    assert_eq!(v["replicas"], json!(3));
    assert_eq!(v["flag"], json!(true));
    assert_eq!(v["ratio"], json!("1.5"));
    assert_eq!(v["zip"], json!("007"));
    assert_eq!(v["none"], Json::Null);
    assert_eq!(v["code"], json!("007"));
    assert_eq!(v["yes"], json!("true"));
    assert_eq!(v["list"], json!(["x", 2, false]));
    assert_eq!(v["text"], json!("a,b"));
}

#[test]
fn list_indices_build_a_new_list_as_helm_does() {
    let p = project(SERVICES);
    let v = vars_of(&p, &["--env", "dev", "--set", "vars.hosts[2]=c.example", "--set", "vars.rules[0].port=80"], "api");
    // Helm builds the list from the flags alone and it replaces the defaults' list.
    assert_eq!(v["hosts"], json!([null, null, "c.example"]));
    assert_eq!(v["rules"], json!([{"port": 80}]));
    let v = vars_of(&p, &["--env", "dev", "--set", "vars.hosts={x}", "--set", "vars.hosts[1]=y"], "api");
    assert_eq!(v["hosts"], json!(["x", "y"]));
}

#[test]
fn values_files_and_sets_merge_in_command_line_order() {
    let p = project(SERVICES);
    p.write("one.yaml", "versions: {api: \"2.0.0\"}\nvars:\n  replicas: 5\n  sa: {annotations: {owner: me}}\n");
    p.write("two.yaml", "vars:\n  replicas: 7\n");
    let v = vars_of(&p, &["--env", "dev", "--values", "one.yaml", "--set", "vars.replicas=6", "--values", "two.yaml"], "api");
    assert_eq!(v["replicas"], json!(7));
    assert_eq!(v["sa"]["annotations"], json!({"team": "core", "owner": "me"}));
    assert_eq!(v["_version"], json!("2.0.0"));
    let v = vars_of(&p, &["--env", "dev", "--values", "two.yaml", "--set", "vars.replicas=6", "--values", "one.yaml"], "api");
    assert_eq!(v["replicas"], json!(5));
    let v = vars_of(&p, &["--env", "dev", "--values", "one.yaml", "--set", "vars.replicas=6"], "api");
    assert_eq!(v["replicas"], json!(6));
}

#[test]
fn paths_that_cannot_be_applied_are_errors_naming_the_flag() {
    let p = project(SERVICES);
    for (args, expected) in [
        (vec!["--set", "vars.replicas.x=1"], "--set vars.replicas.x=1: `vars.replicas` is the number `1`"),
        (vec!["--set", "vars.sa[0]=x"], "--set vars.sa[0]=x: `vars.sa` is a map"),
        (vec!["--set", "vars.sa=x"], "--set vars.sa=x: `vars.sa` is a map"),
        (vec!["--set", "vars.hosts[x]=1"], "--set vars.hosts[x]=1: `[x]` is not a list index"),
        (vec!["--set", "vars.a=1", "--set", "vars.a.b=2"], "--set vars.a.b=2: `vars.a` is the number `1`"),
        (vec!["--set-string", "vars..a=1"], "--set-string vars..a=1: a key in the path is empty"),
    ] {
        for cmd in ["render", "plan", "validate"] {
            let mut all = vec![cmd];
            if cmd != "validate" {
                all.extend(["--env", "dev"]);
            }
            all.extend(args.iter().copied());
            let run = p.run(&all).expect_code(1);
            assert!(run.stderr.contains(expected), "{cmd} {args:?}: expected {expected:?}\n{run}");
            assert!(!p.exists("rendered"), "{run}");
        }
    }
}

#[test]
fn validate_renders_with_the_overrides() {
    let p = project(SERVICES);
    p.write("manifests/values.yaml.j2", &format!("{DUMP}{{% if vars.broken is defined %}}{{{{ fail('broken on purpose') }}}}{{% endif %}}\n"));
    p.ok(&["validate"]);
    let run = p.run(&["validate", "--set", "vars.broken=true"]).expect_code(1);
    assert!(run.stderr.contains("broken on purpose"), "{run}");
}

#[test]
fn a_slot_keeps_typed_overrides_in_target_json() {
    let p = project(SERVICES);
    p.ok(&["render", "--env", "ai", "--slot", "pr-1", "--set-string", "vars.code=007", "--set", r"vars.a\.b=1,vars.l={x}"]);
    let meta: Json = serde_json::from_str(&p.read("rendered/ai/pr-1/.codex-k8s/target.json")).unwrap();
    assert_eq!(meta["sets"], json!({"vars.code": "007", r"vars.a\.b": 1, "vars.l": ["x"]}), "{meta}");
    p.ok(&["render", "--env", "ai", "--slot", "pr-1", "--set", "vars.l[1]=y"]);
    let v = vars_of(&p, &["--env", "ai", "--slot", "pr-1"], "api");
    assert_eq!(v["code"], json!("007"));
    assert_eq!(v["a.b"], json!(1));
    assert_eq!(v["l"], json!(["x", "y"]));
}

#[test]
fn component_vars_are_defaults_under_the_environment_and_the_overlay() {
    let services = SERVICES.replace(
        "  - name: api\n    manifests: [manifests/values.yaml.j2]\n",
        "  - name: api\n    manifests: [manifests/values.yaml.j2]\n    vars: {replicas: 9, port: 8080, image: {tag: v1}}\n    \
         overlays:\n      dev:\n        vars: {port: 9090}\n  - name: web\n    manifests: [manifests/values.yaml.j2]\n    \
         when: \"vars.port == 80\"\n    vars: {port: 80}\n",
    );
    let p = project(&services);
    let api = vars_of(&p, &["--env", "dev"], "api");
    assert_eq!(api["replicas"], json!(1), "the environment wins over the component");
    assert_eq!(api["port"], json!(9090), "the overlay wins over both");
    assert_eq!(api["image"], json!({"tag": "v1"}));
    let web = vars_of(&p, &["--env", "dev"], "web");
    assert_eq!(web["port"], json!(80), "`when` sees the component's values");
    assert!(web.get("image").is_none(), "another component's values stay its own");
    let api = vars_of(&p, &["--env", "dev", "--set", "vars.port=1,vars.image.tag=v2"], "api");
    assert_eq!(api["port"], json!(1), "an override wins over everything");
    assert_eq!(api["image"], json!({"tag": "v2"}));

    let plan = p.ok(&["plan", "--env", "dev", "--format", "json"]);
    let plan: Json = serde_json::from_str(&plan.stdout).unwrap();
    let comps = plan["stages"][0]["components"].as_array().unwrap();
    let api = comps.iter().find(|c| c["name"] == "api").unwrap();
    assert_eq!(api["vars"]["port"], json!(9090), "{plan}");
    let text = p.ok(&["plan", "--env", "dev"]).stdout;
    assert!(text.contains("vars  image.tag=v1, port=9090"), "{text}");
}
