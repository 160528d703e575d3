//! `codex-k8s images`: the image references a target deploys, with the build
//! settings the inventory declares.

use serde_json::Value as Json;

use crate::support::Project;

/// The bundled example with build settings on `users` and `web`.
fn example_with_builds() -> Project {
    let p = Project::example();
    p.edit(
        "services.yaml",
        "users:    {repository: registry.example.com/shop/users, tag: \"{{ versions.users }}{{ '-dev' if vars.hotReload else '' }}\"}",
        "users:    {repository: registry.example.com/shop/users, tag: \"{{ versions.users }}{{ '-dev' if vars.hotReload else '' }}\", build: {context: services/users, target: runtime, targets: {dev: hot-reload, ai: hot-reload}}}",
    );
    p.edit(
        "services.yaml",
        "web:      {repository: registry.example.com/shop/web, tag:",
        "web:      {build: {dockerfile: web/Dockerfile.web}, repository: registry.example.com/shop/web, tag:",
    );
    p
}

fn json(p: &Project, args: &[&str]) -> Json {
    let run = p.ok(args);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{run}"))
}

fn entry<'a>(view: &'a Json, image: &str) -> &'a Json {
    view["images"]
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["image"] == image)
        .unwrap_or_else(|| panic!("no {image} in {view:#}"))
}

#[test]
fn images_lists_build_settings_with_the_target_per_environment() {
    let p = example_with_builds();
    let dev = json(&p, &["images", "--env", "dev", "--format", "json"]);
    assert_eq!(dev["target"], "dev");
    let users = entry(&dev, "registry.example.com/shop/users:1.4.0-dev");
    assert_eq!(users["name"], "users");
    assert_eq!(
        users["build"],
        serde_json::json!({"context": "services/users", "dockerfile": "services/users/Dockerfile", "target": "hot-reload"})
    );
    let components: Vec<&str> =
        users["usedBy"].as_array().unwrap().iter().map(|u| u["component"].as_str().unwrap()).collect();
    assert_eq!(components, ["users", "users-migrate"]);
    let web = entry(&dev, "registry.example.com/shop/web:3.1.0-dev");
    assert_eq!(web["build"], serde_json::json!({"context": ".", "dockerfile": "web/Dockerfile.web", "target": null}));
    assert_eq!(entry(&dev, "registry.example.com/shop/postgres:16.4-bookworm")["build"], Json::Null);

    let staging = json(&p, &["images", "--env", "staging", "--format", "json"]);
    assert_eq!(entry(&staging, "registry.example.com/shop/users:1.4.0")["build"]["target"], "runtime");
    // Sorted by reference, one entry each.
    let refs: Vec<&str> = staging["images"].as_array().unwrap().iter().map(|i| i["image"].as_str().unwrap()).collect();
    let mut sorted = refs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(refs, sorted);
}

#[test]
fn images_of_a_slot_apply_set_overrides() {
    let p = example_with_builds();
    let view =
        json(&p, &["images", "--env", "ai", "--slot", "pr-7", "--set", "versions.users=9.9.9", "--format", "json"]);
    assert_eq!(view["target"], "ai/pr-7");
    let users = entry(&view, "registry.example.com/shop/users:9.9.9-dev");
    assert_eq!(users["build"]["target"], "hot-reload");
    let text = p.ok(&["images", "--env", "ai", "--slot", "pr-7", "--set", "versions.users=9.9.9"]).stdout;
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("IMAGE") && first.contains("DOCKERFILE") && first.contains("USED BY"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("registry.example.com/shop/users:9.9.9-dev")
            && l.contains("services/users/Dockerfile")
            && l.contains("hot-reload")),
        "{text}"
    );
    // Deterministic: the same bytes twice.
    assert_eq!(text, p.ok(&["images", "--env", "ai", "--slot", "pr-7", "--set", "versions.users=9.9.9"]).stdout);
}

#[test]
fn images_finds_init_containers_cron_jobs_and_literal_images() {
    let p = Project::empty();
    p.write(
        "services.yaml",
        "apiVersion: codex-k8s.io/v1alpha1\nkind: ServiceStack\nproject: shop\nimages:\n  job: {repository: registry.example.com/shop/job, tag: \"1\"}\nenvironments:\n  dev: {namespace: shop-dev}\nservices:\n  - name: cron\n    image: job\n    manifests: [cron.yaml.j2]\n",
    );
    p.write(
        "cron.yaml.j2",
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec:\n  schedule: \"0 3 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          initContainers: [{name: wait, image: busybox:1.36}]\n          containers: [{name: run, image: \"{{ images.job }}\"}]\n",
    );
    let view = json(&p, &["images", "--env", "dev", "--format", "json"]);
    let refs: Vec<&str> = view["images"].as_array().unwrap().iter().map(|i| i["image"].as_str().unwrap()).collect();
    assert_eq!(refs, ["busybox:1.36", "registry.example.com/shop/job:1"]);
    let busybox = entry(&view, "busybox:1.36");
    assert_eq!(busybox["name"], Json::Null);
    assert_eq!(
        busybox["usedBy"],
        serde_json::json!([{"component": "cron", "kind": "CronJob", "name": "nightly", "container": "wait"}])
    );
}

#[test]
fn an_unknown_build_key_gets_did_you_mean() {
    let p = Project::example();
    p.edit(
        "services.yaml",
        "redis:    {repository: registry.example.com/shop/redis,",
        "redis:    {build: {dockerFile: redis/Dockerfile}, repository: registry.example.com/shop/redis,",
    );
    let run = p.run(&["images", "--env", "dev"]).expect_code(1);
    assert!(run.stderr.contains("services.yaml:"), "{run}");
    assert!(run.stderr.contains("did you mean `dockerfile`"), "{run}");
}
