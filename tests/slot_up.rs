//! A slot comes up (issue 27): a fresh slot of the bundled example declares
//! every Secret it reads (External Secrets Operator objects, checked against
//! the upstream CRD schemas), its agent gets credentials and its source, its
//! workspace is filled with the slot's commit by a Job that runs git only
//! (the Job's script is run here for real against a git repository), and a
//! NetworkPolicy, ResourceQuota and LimitRange bound it.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command as Process;

use serde_json::Value as Json;

use crate::support::{crd_schemas, identity, yaml_documents, yaml_to_json, Project};

/// Every object of `target` in the work tree, as JSON, by file.
fn objects(project: &Project, target: &str) -> BTreeMap<String, Json> {
    project.objects(target).into_iter().map(|(path, o)| (path, yaml_to_json(&o))).collect()
}

/// The Secrets `objects` read: env `secretKeyRef`s, `envFrom`, secret
/// volumes and pull secrets of every pod template.
fn secrets_read(objects: &BTreeMap<String, Json>) -> BTreeSet<(String, String)> {
    let mut read = BTreeSet::new();
    for (file, o) in objects {
        let spec = match o["kind"].as_str() {
            Some("Deployment" | "StatefulSet" | "Job") => &o["spec"]["template"]["spec"],
            _ => continue,
        };
        for c in spec["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(spec["initContainers"].as_array().into_iter().flatten())
        {
            for e in c["env"].as_array().into_iter().flatten() {
                if let Some(name) = e["valueFrom"]["secretKeyRef"]["name"].as_str() {
                    read.insert((name.to_owned(), file.clone()));
                }
            }
            for e in c["envFrom"].as_array().into_iter().flatten() {
                if let Some(name) = e["secretRef"]["name"].as_str() {
                    read.insert((name.to_owned(), file.clone()));
                }
            }
        }
        for v in spec["volumes"].as_array().into_iter().flatten() {
            if let Some(name) = v["secret"]["secretName"].as_str() {
                read.insert((name.to_owned(), file.clone()));
            }
        }
        for p in spec["imagePullSecrets"].as_array().into_iter().flatten() {
            read.insert((p["name"].as_str().unwrap_or_default().to_owned(), file.clone()));
        }
    }
    read
}

fn fresh_slot() -> Project {
    let project = Project::example();
    project.ok(&["render", "--env", "ai", "--slot", "pr-42", "--run-id", "r1"]);
    project
}

#[test]
fn a_fresh_slot_declares_every_secret_it_reads_and_the_declarations_pass_the_eso_schemas() {
    let project = fresh_slot();
    let objects = objects(&project, "ai/pr-42");
    let schemas = crd_schemas();
    let mut declared = BTreeMap::new();
    for (file, o) in &objects {
        let (api_version, kind, namespace, name) = identity(&serde_yaml::to_value(o).unwrap());
        assert!(
            !(kind == "Secret" && (o.get("data").is_some() || o.get("stringData").is_some())),
            "{file} holds a value"
        );
        if !api_version.contains("external-secrets.io") {
            continue;
        }
        assert!(file.starts_with("00-stateful/secrets/"), "{file}: declarations render in the first stage");
        assert_eq!(namespace, "shop-dev-pr-42", "{file}");
        let schema = &schemas[&(api_version.clone(), kind.clone())];
        let validator = jsonschema::validator_for(schema).unwrap();
        let errors: Vec<String> = validator.iter_errors(o).map(|e| format!("{}: {e}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{file}: {kind} violates its CRD schema: {errors:?}");
        if kind == "ExternalSecret" {
            let keys: Vec<String> = o["spec"]["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| d["secretKey"].as_str().unwrap().to_owned())
                .collect();
            declared.insert(o["spec"]["target"]["name"].as_str().unwrap_or(&name).to_owned(), (keys, o.clone()));
        }
    }
    let read = secrets_read(&objects);
    let names: BTreeSet<&str> = read.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["shop-agent", "shop-git", "shop-postgres", "shop-registry"]), "{read:?}");
    for (name, file) in &read {
        assert!(declared.contains_key(name), "{file} reads Secret {name}, which nothing in the slot declares");
    }
    // The database password is generated in the cluster once, never rotated.
    let (_, postgres) = &declared["shop-postgres"];
    assert_eq!(postgres["spec"]["refreshPolicy"], "CreatedOnce");
    assert_eq!(postgres["spec"]["dataFrom"][0]["sourceRef"]["generatorRef"]["kind"], "Password");
    // Store reads stay under the slot store's prefix, with the slot in the key.
    let (keys, git) = &declared["shop-git"];
    assert_eq!(keys, &["token"]);
    assert_eq!(git["spec"]["secretStoreRef"], serde_json::json!({"kind": "ClusterSecretStore", "name": "shop-slots"}));
    assert_eq!(git["spec"]["data"][0]["remoteRef"]["key"], "shop/ai/git/pr-42");
    let (_, registry) = &declared["shop-registry"];
    assert_eq!(registry["spec"]["target"]["template"]["type"], "kubernetes.io/dockerconfigjson");
}

#[test]
fn the_agent_gets_its_credentials_repository_branch_and_commit() {
    let project = fresh_slot();
    let objects = objects(&project, "ai/pr-42");
    let (_, job) = objects.iter().find(|(f, _)| f.starts_with("50-agent/")).expect("the agent Job");
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["imagePullSecrets"], serde_json::json!([{"name": "shop-registry"}]));
    let env: BTreeMap<&str, &Json> =
        pod["containers"][0]["env"].as_array().unwrap().iter().map(|e| (e["name"].as_str().unwrap(), e)).collect();
    assert_eq!(
        env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "shop-agent", "key": "OPENAI_API_KEY"})
    );
    assert_eq!(env["GIT_TOKEN"]["valueFrom"]["secretKeyRef"], serde_json::json!({"name": "shop-git", "key": "token"}));
    assert_eq!(env["REPOSITORY"]["value"], "https://git.example.com/shop.git");
    assert_eq!(env["BRANCH"]["value"], "codex/pr-42");
    assert_eq!(env["SOURCE_REF"]["value"], "refs/heads/main", "the work tree's branch owns the slot");
}

#[test]
fn a_slot_is_bounded_by_a_network_policy_a_quota_and_a_limit_range() {
    let project = fresh_slot();
    let objects = objects(&project, "ai/pr-42");
    let bounds: BTreeMap<&str, &Json> = objects
        .iter()
        .filter(|(f, _)| f.starts_with("00-stateful/bounds/"))
        .map(|(_, o)| (o["kind"].as_str().unwrap(), o))
        .collect();
    assert_eq!(bounds.keys().copied().collect::<Vec<_>>(), ["LimitRange", "NetworkPolicy", "ResourceQuota"]);
    let np = &bounds["NetworkPolicy"]["spec"];
    assert_eq!(np["podSelector"], serde_json::json!({}), "it selects every pod of the slot");
    assert_eq!(np["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
    let from = np["ingress"][0]["from"].as_array().unwrap();
    assert_eq!(from[0], serde_json::json!({"podSelector": {}}), "the slot itself");
    assert_eq!(from[1]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "ingress-nginx");
    assert_eq!(from.len(), 2, "no other namespace reaches the slot: {from:?}");
    let egress = np["egress"].to_string();
    assert!(egress.contains("kube-dns") && egress.contains("10.0.0.0/8"), "{egress}");
    assert_eq!(bounds["ResourceQuota"]["spec"]["hard"]["pods"], "30");
    assert_eq!(bounds["LimitRange"]["spec"]["limits"][0]["type"], "Container");
    // A plain environment gets no slot NetworkPolicy.
    project.ok(&["render", "--env", "staging"]);
    assert!(objects_of(&project, "staging").iter().all(|k| k != "NetworkPolicy"));
}

fn objects_of(project: &Project, target: &str) -> Vec<String> {
    objects(project, target).values().map(|o| o["kind"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The seed Job of a slot rendered onto a deploy branch from `project`'s HEAD.
fn seed_job_on_branch(project: &Project) -> (String, Json) {
    project.ok(&[
        "render",
        "--env",
        "ai",
        "--slot",
        "pr-42",
        "--run-id",
        "r1",
        "--source-ref",
        "refs/pull/42/head",
        "--walls-from",
        "HEAD",
        "--branch",
        "rendered",
    ]);
    let listing = project.git(&["ls-tree", "--name-only", "rendered:rendered/ai/pr-42/00-stateful/workspace"]);
    let name = listing.lines().find(|l| l.starts_with("job-seed-")).expect("a seed Job").to_owned();
    let text = project.git(&["show", &format!("rendered:rendered/ai/pr-42/00-stateful/workspace/{name}")]);
    (name, yaml_to_json(&yaml_documents(&text)[0]))
}

#[test]
fn the_workspace_is_filled_with_the_slots_commit_by_git_alone() {
    let project = Project::example();
    let (first, job) = seed_job_on_branch(&project);
    let head = project.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let env: BTreeMap<&str, &str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(env["SOURCE_COMMIT"], head, "the seed checks out the commit the slot records");
    assert_eq!(env["SOURCE_REF"], "refs/pull/42/head");
    assert_eq!(container["image"], "registry.example.com/shop/git:2.47", "git only, never the pull request's image");
    let mounts = container["volumeMounts"].to_string();
    assert!(mounts.contains("\"readOnly\":true") && mounts.contains("/var/run/secrets/git"), "{mounts}");

    // A new commit is a new Job (Jobs are immutable; the name hashes the spec).
    project.write("README.md", "a change on the pull request\n");
    project.git(&["add", "README.md"]);
    project.git(&["commit", "-qm", "docs"]);
    let (second, _) = seed_job_on_branch(&project);
    assert_ne!(first, second, "a new commit must re-run the seed");

    // The script itself, run here against a real repository.
    let script = container["args"][0].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (workspace, tmp) = (dir.path().join("ws"), dir.path().join("tmp"));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(dir.path().join("token"), "t0ken").unwrap();
    let run = |commit: &str| {
        let out = Process::new("sh")
            .args(["-ec", script])
            .env("WORKSPACE", &workspace)
            .env("SEED_TMP", &tmp)
            .env("TOKEN_FILE", dir.path().join("token"))
            .env("SLOT", "pr-42")
            .env("REPOSITORY", format!("file://{}", project.root.display()))
            .env("SOURCE_REF", "refs/pull/42/head")
            .env("SOURCE_COMMIT", commit)
            .output()
            .unwrap();
        assert!(out.status.success(), "seed failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    project.git(&["config", "uploadpack.allowAnySHA1InWant", "true"]);
    let src = workspace.join("slots/pr-42/src");
    run(&head);
    assert_eq!(std::fs::read_to_string(src.join(".codex-k8s-seed")).unwrap().trim(), head);
    assert!(src.join("services.yaml").is_file(), "the source is checked out");
    assert!(!src.join(".git").exists(), "no git directory in the workspace");
    // Code in the slot plants a git config that would run a command: the
    // seed never reads it (its git directory is its own) and stays idempotent.
    std::fs::create_dir_all(src.join(".git")).unwrap();
    std::fs::write(src.join(".git/config"), "[core]\n\tfsmonitor = touch pwned\n").unwrap();
    assert!(run(&head).contains("is at"), "a tree at the commit is left alone");
    let now = project.git(&["rev-parse", "HEAD"]).trim().to_owned();
    run(&now);
    assert_eq!(std::fs::read_to_string(src.join(".codex-k8s-seed")).unwrap().trim(), now);
    assert!(!src.join("pwned").exists() && !workspace.join("pwned").exists(), "the planted config ran");
}
