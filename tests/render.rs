//! `render`, `plan`, `validate` and `schema` on the bundled example, checked
//! with real clients: `kubectl kustomize`, `kubernetes-validate`, the upstream
//! Argo CD and Flux CRD schemas, and Argo CD's own sync ordering.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command as Process;

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use crate::support::{
    annotation, assert_same_tree, crd_schemas, identity, label, read_single_yaml, require_tool, str_at, yaml_documents,
    yaml_to_json, CopyOrder, Project,
};

/// The example with every kind of target rendered: two plain environments
/// (`staging`, `dev`), a slot with an agent run (`ai/pr-1`) and one without (`ai/pr-2`).
fn rendered_example() -> Project {
    let project = Project::example();
    project.ok(&["render", "--all"]);
    project.ok(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1"]);
    project.ok(&["render", "--env", "ai", "--slot", "pr-2"]);
    let targets = project.targets();
    for expected in ["ai/pr-1", "ai/pr-2", "dev", "staging"] {
        assert!(targets.iter().any(|t| t == expected), "{expected} missing from {targets:?}");
    }
    project
}

// ------------------------------------------------------------------ real clients

#[test]
fn kubectl_kustomize_builds_every_target_with_one_object_per_file() {
    let Some(kubectl) = require_tool("kubectl", "install kubectl (.ci/run does)") else { return };
    let project = rendered_example();
    for target in project.targets() {
        let dir = project.path(&format!("rendered/{target}"));
        let out = Process::new(&kubectl).arg("kustomize").arg(&dir).output().expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl kustomize rendered/{target} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let built = yaml_documents(&String::from_utf8_lossy(&out.stdout));
        let files = project.objects(&target);
        assert_eq!(
            built.len(),
            files.len(),
            "{target}: kustomize built {} objects from {} object files",
            built.len(),
            files.len()
        );

        let mut built_ids: Vec<_> = built.iter().map(identity).collect();
        let mut file_ids: Vec<_> = files.iter().map(|(_, object)| identity(object)).collect();
        built_ids.sort();
        file_ids.sort();
        assert_eq!(built_ids, file_ids, "{target}: the kustomize build and the object files disagree");
    }
}

#[test]
fn every_rendered_object_passes_kubernetes_validate() {
    let Some(validator) = require_tool("kubernetes-validate", "pip install kubernetes-validate (.ci/run does)") else {
        return;
    };
    let project = rendered_example();
    // The External Secrets Operator's kinds are not Kubernetes API kinds:
    // they pass their upstream CRD schemas instead.
    let schemas = crd_schemas();
    let mut files = Vec::new();
    for path in project.targets().iter().flat_map(|t| project.object_files(t)) {
        let object = read_single_yaml(&path);
        let (api_version, kind, _, _) = identity(&object);
        match schemas.get(&(api_version.clone(), kind.clone())) {
            Some(schema) if api_version.contains("external-secrets.io") => {
                let errors = schema_errors(schema, &yaml_to_json(&object));
                assert!(errors.is_empty(), "{}: {kind} violates its CRD schema: {errors:?}", path.display());
            }
            _ => files.push(path.display().to_string()),
        }
    }
    assert!(files.len() > 80, "expected the whole example, found {} object files", files.len());

    let out = Process::new(validator)
        .args(["-k", "1.30", "--strict"])
        .args(&files)
        .output()
        .expect("run kubernetes-validate");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let problems: Vec<&str> = report.lines().filter(|l| !l.contains(" passed for resource ")).collect();
    assert!(
        out.status.success() && problems.is_empty(),
        "kubernetes-validate --strict rejected objects:\n{}",
        problems.join("\n")
    );
    // A kind without a schema is only a warning there: every file must have passed.
    let unchecked: Vec<&String> = files.iter().filter(|f| !report.contains(&format!("{f} passed"))).collect();
    assert!(unchecked.is_empty(), "not validated by kubernetes-validate: {unchecked:#?}");
}

#[test]
fn argocd_and_flux_glue_passes_the_upstream_crd_schemas() {
    let project = rendered_example();
    let schemas = crd_schemas();
    let mut validated: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (rel, _) in project.snapshot("rendered") {
        if !(rel.starts_with("argocd/") || rel.starts_with("flux/")) {
            continue;
        }
        for object in yaml_documents(&project.read(&format!("rendered/{rel}"))) {
            let (api_version, kind, _, name) = identity(&object);
            if kind == "AppProject" {
                // No upstream AppProject CRD in ../shared/schemas: checked
                // field by field in `slot_app_project_walls_in_the_slot_namespaces`.
                validated.entry(rel.clone()).or_default().push(kind);
                continue;
            }
            let schema = schemas
                .get(&(api_version.clone(), kind.clone()))
                .unwrap_or_else(|| panic!("rendered/{rel}: no CRD schema for {api_version} {kind}"));
            let errors = schema_errors(schema, &yaml_to_json(&object));
            assert!(
                errors.is_empty(),
                "rendered/{rel}: {kind} {name} violates its CRD schema:\n  {}",
                errors.join("\n  ")
            );
            validated.entry(rel.clone()).or_default().push(kind);
        }
    }

    let expect = |rel: &str, kind: &str, count: usize| {
        let kinds = validated.get(rel).unwrap_or_else(|| panic!("rendered/{rel} is missing"));
        assert_eq!(kinds.len(), count, "rendered/{rel}: {kinds:?}");
        assert!(kinds.iter().all(|k| k == kind || k == "AppProject"), "rendered/{rel}: {kinds:?}");
    };
    expect("argocd/staging.yaml", "Application", 1);
    expect("argocd/dev.yaml", "Application", 1);
    expect("argocd/ai.yaml", "ApplicationSet", 2); // and its AppProject
    assert_eq!(validated["argocd/ai.yaml"], ["AppProject", "ApplicationSet"]);
    expect("flux/staging.yaml", "Kustomization", 5); // one per stage
    expect("flux/dev.yaml", "Kustomization", 5);
    expect("flux/ai/pr-1.yaml", "Kustomization", 6); // plus the agent stage
    expect("flux/ai/pr-2.yaml", "Kustomization", 5);
    expect("argocd/platform.yaml", "Application", 1);
    let platform_stages = validated.get("flux/platform.yaml").map(Vec::len).unwrap_or(0);
    assert!(platform_stages >= 1, "flux/platform.yaml has no Kustomization");
    expect("flux/platform.yaml", "Kustomization", platform_stages);
    assert_eq!(validated.len(), 9, "unexpected glue files: {:?}", validated.keys());

    // The schemas are strict: a misspelt field is caught, not pruned.
    let mut typo = yaml_to_json(&read_single_yaml(&project.path("rendered/argocd/staging.yaml")));
    typo["spec"]["syncPolicy"]["automated"]["prun"] = Json::Bool(true);
    let schema = &schemas[&("argoproj.io/v1alpha1".to_owned(), "Application".to_owned())];
    assert!(!schema_errors(schema, &typo).is_empty(), "the Application schema accepted an unknown field");
}

fn schema_errors(schema: &Json, instance: &Json) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("a valid JSON Schema");
    validator.iter_errors(instance).map(|e| format!("{}: {e}", e.instance_path)).collect()
}

// ------------------------------------------------------------------ sync order

/// Argo CD's kind order inside one phase and wave (gitops-engine
/// `pkg/sync/sync_tasks.go`, `kindOrder`, as vendored in argoproj/argo-cd).
/// Kinds not listed sort after all of these.
const ARGO_KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

/// The key Argo CD sorts sync tasks by: phase, wave, kind order, name.
fn argo_sync_key(object: &Yaml) -> (i64, i64, i64, String) {
    let phase = match annotation(object, "argocd.argoproj.io/hook").and_then(|h| h.split(',').next()) {
        Some("PreSync") => -1,
        Some("PostSync") => 1,
        Some("SyncFail") => 2,
        _ => 0,
    };
    let kind = str_at(object, &["kind"]).unwrap_or_default();
    let kind_order =
        ARGO_KIND_ORDER.iter().position(|k| *k == kind).map_or(0, |i| i as i64 - ARGO_KIND_ORDER.len() as i64);
    (phase, sync_wave(object), kind_order, str_at(object, &["metadata", "name"]).unwrap_or_default().to_owned())
}

fn sync_wave(object: &Yaml) -> i64 {
    let wave = annotation(object, "argocd.argoproj.io/sync-wave")
        .unwrap_or_else(|| panic!("{:?} has no sync-wave annotation", identity(object)));
    wave.parse().unwrap_or_else(|_| panic!("sync-wave {wave:?} is not an integer"))
}

/// What `services.yaml` says about stages and dependencies.
struct Inventory {
    stages: Vec<String>,
    /// component → (stage, dependsOn)
    components: BTreeMap<String, (String, Vec<String>)>,
}

impl Inventory {
    fn read(project: &Project) -> Self {
        let doc: Yaml = serde_yaml::from_str(&project.read("services.yaml")).expect("services.yaml");
        let stages: Vec<String> = match doc.get("stages") {
            Some(list) => serde_yaml::from_value(list.clone()).expect("stages"),
            None => ["stateful", "migrations", "internal", "edge", "frontend"].map(String::from).to_vec(),
        };
        let mut components = BTreeMap::new();
        for (section, default_stage) in [("infrastructure", stages[0].as_str()), ("services", "internal")] {
            for c in doc.get(section).and_then(Yaml::as_sequence).into_iter().flatten() {
                let name = str_at(c, &["name"]).expect("component name").to_owned();
                let stage = str_at(c, &["stage"]).unwrap_or(default_stage).to_owned();
                let deps = c
                    .get("dependsOn")
                    .map(|d| serde_yaml::from_value(d.clone()).expect("dependsOn"))
                    .unwrap_or_default();
                components.insert(name, (stage, deps));
            }
        }
        components.insert("agent".into(), ("agent".into(), Vec::new()));
        Inventory { stages, components }
    }

    /// Stage order including the agent's stage after the last one.
    fn stage_index(&self, stage: &str) -> usize {
        if stage == "agent" {
            return self.stages.len();
        }
        self.stages.iter().position(|s| s == stage).unwrap_or_else(|| panic!("unknown stage {stage}"))
    }

    /// Depth of a component's dependsOn chain inside its own stage, among the enabled components.
    fn depth(&self, component: &str, enabled: &BTreeSet<String>) -> i64 {
        let (stage, deps) = &self.components[component];
        deps.iter()
            .filter(|d| enabled.contains(*d) && &self.components[*d].0 == stage)
            .map(|d| self.depth(d, enabled) + 1)
            .max()
            .unwrap_or(0)
    }
}

#[test]
fn argo_cd_sync_order_follows_the_inventory_stages_and_dependencies() {
    let project = rendered_example();
    let inventory = Inventory::read(&project);
    for target in project.targets() {
        let mut objects: Vec<Yaml> = project.objects(&target).into_iter().map(|(_, o)| o).collect();
        objects.sort_by_key(argo_sync_key);
        let component = |o: &Yaml| label(o, "codex-k8s.io/component").expect("component label").to_owned();
        let stage = |o: &Yaml| inventory.stage_index(label(o, "codex-k8s.io/stage").expect("stage label"));
        let order: Vec<String> = objects
            .iter()
            .map(|o| {
                let (_, kind, _, name) = identity(o);
                format!("wave {} {kind}/{name}", sync_wave(o))
            })
            .collect();

        // The target's Namespace is synced first.
        assert_eq!(str_at(&objects[0], &["kind"]), Some("Namespace"), "{target}: Argo CD order {order:#?}");

        // Stages come in inventory order, the agent last: stateful < migrations < internal < edge < frontend < agent.
        for pair in objects.windows(2) {
            assert!(
                stage(&pair[0]) <= stage(&pair[1]),
                "{target}: {} syncs before {} although its stage comes later; Argo CD order {order:#?}",
                identity(&pair[0]).3,
                identity(&pair[1]).3
            );
        }

        // wave = 10 × stage index + depth of the dependsOn chain inside the stage; the agent after the last stage.
        // The renderer's own objects (the Namespace, the secret declarations,
        // the bounds) come first, at wave 0, before their consumers.
        let generated = |c: &str| ["namespace", "secrets", "bounds"].contains(&c);
        let enabled: BTreeSet<String> = objects.iter().map(component).filter(|c| !generated(c)).collect();
        for object in &objects {
            let c = component(object);
            let expected = if generated(&c) { 0 } else { 10 * stage(object) as i64 + inventory.depth(&c, &enabled) };
            assert_eq!(sync_wave(object), expected, "{target}: wave of {:?} (component {c})", identity(object));
        }

        // Every component syncs in a later wave than each of its (enabled) dependencies.
        let position = |name: &str| -> Vec<(usize, i64)> {
            objects.iter().enumerate().filter(|(_, o)| component(o) == name).map(|(i, o)| (i, sync_wave(o))).collect()
        };
        for c in &enabled {
            for dep in inventory.components[c].1.iter().filter(|d| enabled.contains(*d)) {
                for (i, wave) in position(c) {
                    for (j, dep_wave) in position(dep) {
                        assert!(
                            dep_wave < wave && j < i,
                            "{target}: {c} (wave {wave}) must sync after its dependency {dep} (wave {dep_wave})"
                        );
                    }
                }
            }
        }
        if target != "platform" {
            assert!(
                enabled.contains("gateway") && enabled.contains("web"),
                "{target}: the example renders every stage"
            );
        }
        assert_eq!(enabled.contains("agent"), target == "ai/pr-1", "{target}: the agent renders only with a run id");
    }
}

#[test]
fn flux_applies_the_stages_in_inventory_order() {
    let project = rendered_example();
    for target in project.targets() {
        let kustomizations = yaml_documents(&project.read(&format!("rendered/flux/{target}.yaml")));
        let name = |k: &Yaml| str_at(k, &["metadata", "name"]).unwrap().to_owned();
        let depends_on = |k: &Yaml| -> Vec<String> {
            k.get("spec")
                .and_then(|s| s.get("dependsOn"))
                .and_then(Yaml::as_sequence)
                .into_iter()
                .flatten()
                .map(|d| str_at(d, &["name"]).unwrap().to_owned())
                .collect()
        };
        // Walk the dependsOn chain from the stage that depends on nothing.
        let mut chain: Vec<&Yaml> = kustomizations.iter().filter(|k| depends_on(k).is_empty()).collect();
        assert_eq!(chain.len(), 1, "{target}: exactly one Flux Kustomization starts the chain");
        while let Some(next) = kustomizations.iter().find(|k| depends_on(k) == [name(chain[chain.len() - 1])]) {
            chain.push(next);
        }
        assert_eq!(chain.len(), kustomizations.len(), "{target}: the Kustomizations do not form one chain");
        for k in &chain {
            assert_eq!(k["spec"]["prune"], Yaml::Bool(true), "{target}: {} prunes", name(k));
            // Every stage waits for health before the next, except the agent's (its Job runs for hours).
            let waits = !name(k).ends_with("-agent");
            assert_eq!(k["spec"]["wait"], Yaml::Bool(waits), "{target}: {} waits: {waits}", name(k));
        }

        let paths: Vec<String> = chain.iter().map(|k| str_at(k, &["spec", "path"]).unwrap().to_owned()).collect();
        let kustomization: Yaml =
            serde_yaml::from_str(&project.read(&format!("rendered/{target}/kustomization.yaml"))).unwrap();
        let stage_dirs: Vec<String> = serde_yaml::from_value(kustomization["resources"].clone()).unwrap();
        let expected: Vec<String> = stage_dirs.iter().map(|d| format!("./rendered/{target}/{d}")).collect();
        assert_eq!(paths, expected, "{target}: Flux stage order");
        let mut sorted = stage_dirs.clone();
        sorted.sort();
        assert_eq!(stage_dirs, sorted, "{target}: stage directories are numbered in stage order");
    }
}

#[test]
fn every_object_carries_the_contract_labels_namespace_and_file_name() {
    let project = rendered_example();
    let inventory = Inventory::read(&project);
    let hashed_job = regex::Regex::new(r"-[0-9a-f]{8}$").unwrap();
    for target in project.targets() {
        let info = project.target_json(&target);
        let namespace = info["namespace"].as_str().expect("namespace in target.json");
        let slot = target.split_once('/').map(|(_, s)| s);
        for (rel, object) in project.objects(&target) {
            let (_, kind, ns, name) = identity(&object);
            let component = label(&object, "codex-k8s.io/component")
                .unwrap_or_else(|| panic!("{target}/{rel}: no component label"));
            let stage =
                label(&object, "codex-k8s.io/stage").unwrap_or_else(|| panic!("{target}/{rel}: no stage label"));
            assert_eq!(label(&object, "app.kubernetes.io/managed-by"), Some("codex-k8s"), "{target}/{rel}");
            assert_eq!(label(&object, "app.kubernetes.io/part-of"), Some("shop"), "{target}/{rel}");
            assert_eq!(label(&object, "codex-k8s.io/env"), Some(target.split('/').next().unwrap()), "{target}/{rel}");
            assert_eq!(label(&object, "codex-k8s.io/slot"), slot, "{target}/{rel}");
            assert_eq!(
                label(&object, "codex-k8s.io/role"),
                (component == "agent").then_some("agent"),
                "{target}/{rel}"
            );
            sync_wave(&object);

            if kind == "Namespace" {
                assert_eq!(name, namespace, "{target}/{rel}");
            } else if matches!(kind.as_str(), "ClusterRole" | "ClusterRoleBinding") {
                assert_eq!(target, "platform", "{target}/{rel}: cluster-scoped objects only in the platform env");
                assert_eq!(ns, "", "{target}/{rel}: cluster-scoped objects carry no namespace");
            } else {
                assert_eq!(ns, namespace, "{target}/{rel}: metadata.namespace");
            }
            if kind == "Job" && component != "agent" {
                assert!(hashed_job.is_match(&name), "{target}/{rel}: Job {name} has no spec hash suffix");
            }
            let nn = 10 * inventory.stage_index(stage);
            let expected = format!("{nn:02}-{stage}/{component}/{}-{name}.yaml", kind.to_lowercase());
            assert_eq!(rel, expected, "{target}: file name of {kind} {name}");
        }
    }
}

// ------------------------------------------------------------------ the tree

#[test]
fn output_is_byte_identical_across_thread_counts_and_file_system_order() {
    fn render_everything(project: &Project, threads: &str) {
        let env = [("RAYON_NUM_THREADS", threads)];
        for args in [
            &["render", "--all"][..],
            &["render", "--env", "ai", "--slot", "pr-1", "--slot", "pr-2", "--run-id", "r1"],
            &["render", "--env", "ai", "--slot", "pr-3", "--set", "versions.users=2.0.0"],
        ] {
            project.run_with(args, &env).expect_code(0);
        }
    }
    let one_thread = Project::example_copied(CopyOrder::Sorted);
    render_everything(&one_thread, "1");
    let four_threads = Project::example_copied(CopyOrder::Reversed);
    render_everything(&four_threads, "4");

    let tree = one_thread.snapshot("rendered");
    assert!(tree.len() > 100, "expected the whole example, got {} files", tree.len());
    assert_same_tree(
        &tree,
        &four_threads.snapshot("rendered"),
        "RAYON_NUM_THREADS=1 (sorted copy) vs 4 (reversed copy)",
    );

    // A forced re-render of everything changes nothing either.
    one_thread.run_with(&["render", "--all", "--force"], &[("RAYON_NUM_THREADS", "3")]).expect_code(0);
    assert_same_tree(&tree, &one_thread.snapshot("rendered"), "a forced re-render");
}

#[test]
fn rerendering_a_target_replaces_its_directory_and_leaves_other_targets_alone() {
    let project = rendered_example();
    let staging = project.snapshot("rendered/staging");
    let stale = "rendered/staging/20-internal/users/configmap-stale.yaml";
    project.write(stale, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stale\n");
    project.write("rendered/staging/60-leftover/kustomization.yaml", "resources: []\n");
    project.edit("rendered/staging/20-internal/users/service-users.yaml", "port: 80", "port: 8080");

    let everything_else = |p: &Project| {
        let mut tree = p.snapshot("rendered");
        tree.retain(|path, _| !path.starts_with("staging/"));
        tree
    };
    let others = everything_else(&project);
    let others_inodes = inodes(&project.path("rendered/dev"));

    project.ok(&["render", "--env", "staging"]);
    assert!(!project.exists(stale), "the stale file survived the re-render");
    assert!(!project.exists("rendered/staging/60-leftover"), "the stale directory survived the re-render");
    assert_same_tree(&staging, &project.snapshot("rendered/staging"), "rendered/staging after a re-render");
    assert_same_tree(&others, &everything_else(&project), "the other targets and the glue");
    assert_eq!(others_inodes, inodes(&project.path("rendered/dev")), "files of rendered/dev were rewritten");
}

/// Inode of every file below `dir` (a rewritten or swapped file gets a new one).
fn inodes(dir: &Path) -> BTreeMap<String, u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_map(Result::ok)
            .map(|e| (e.path().display().to_string(), e.metadata().expect("metadata").ino()))
            .collect()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        BTreeMap::new()
    }
}

#[test]
fn a_failed_render_leaves_the_previous_tree_byte_for_byte_intact() {
    let project = rendered_example();
    let before = project.snapshot("rendered");

    // A template error.
    project.write(
        "manifests/users/service.yaml.j2",
        "{{ cluster_service(component.name) }}\n{{ no_such_variable.field }}\n",
    );
    let run = project.run(&["render", "--all"]).expect_code(1);
    assert!(run.stderr.contains("manifests/users/service.yaml.j2"), "the error names the template:\n{run}");
    assert_same_tree(&before, &project.snapshot("rendered"), "the tree after a failed render");
    project.git(&["checkout", "--", "manifests"]);

    // One target fails while another has a real change: nothing at all is written.
    project.edit("services.yaml", "users: \"1.4.0\"", "users: \"1.5.0\"");
    let job = "manifests/users-migrate/job.yaml.j2";
    project.write(
        job,
        &format!("{}\n{{% if env == \"ai\" %}}{{{{ fail(\"injected failure\") }}}}{{% endif %}}\n", project.read(job)),
    );
    let run = project.run(&["render", "--all"]).expect_code(1);
    assert!(run.stderr.contains("injected failure"), "{run}");
    assert_same_tree(&before, &project.snapshot("rendered"), "the tree after a render that failed in one target");
    assert!(!project.exists("rendered/.codex-k8s-staging"), "the staging area was left behind");

    // Once fixed, the same render goes through.
    project.git(&["checkout", "--", "manifests"]);
    project.ok(&["render", "--all"]);
    assert!(project.read("rendered/staging/20-internal/users/deployment-users.yaml").contains("users:1.5.0"));
}

#[test]
fn every_policy_violation_fails_the_render_and_writes_nothing() {
    struct Violation {
        what: &'static str,
        file: &'static str,
        manifest: &'static str,
        args: &'static [&'static str],
        stderr: &'static str,
    }
    let violations = [
        Violation {
            what: "a Secret carrying data",
            file: "manifests/catalog/secret.yaml.j2",
            manifest: "apiVersion: v1\nkind: Secret\nmetadata:\n  name: catalog-db\nstringData:\n  password: hunter2\n",
            args: &["render", "--env", "staging"],
            stderr: "SealedSecret",
        },
        Violation {
            what: "a ClusterRole in a slot environment",
            file: "manifests/catalog/clusterrole.yaml.j2",
            manifest: "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: catalog-reader\nrules: []\n",
            args: &["render", "--env", "ai", "--slot", "pr-1"],
            stderr: "cluster-scoped",
        },
        Violation {
            what: "a Job with ttlSecondsAfterFinished",
            file: "manifests/catalog/job.yaml.j2",
            manifest: "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: catalog-seed\nspec:\n  ttlSecondsAfterFinished: 60\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: seed, image: busybox}]\n",
            args: &["render", "--env", "dev"],
            stderr: "ttlSecondsAfterFinished",
        },
        Violation {
            what: "a duplicate object (web renders catalog's ConfigMap again)",
            file: "manifests/web/configmap.yaml.j2",
            manifest: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: catalog-config\ndata: {}\n",
            args: &["render", "--env", "staging"],
            stderr: "duplicate object",
        },
        Violation {
            what: "another namespace in a slot environment",
            file: "manifests/catalog/elsewhere.yaml.j2",
            manifest: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: elsewhere\n  namespace: default\ndata: {}\n",
            args: &["render", "--env", "ai", "--slot", "pr-1"],
            stderr: "namespace `default`",
        },
    ];

    let project = rendered_example();
    let before = project.snapshot("rendered");
    let mut failures = Vec::new();
    for v in &violations {
        project.write(v.file, v.manifest);
        let run = project.run(v.args);
        if run.code != Some(1) || !run.stderr.contains(v.stderr) {
            failures.push(format!("{}: expected exit 1 and {:?} in stderr\n{run}", v.what, v.stderr));
        }
        if project.snapshot("rendered") != before {
            failures.push(format!("{}: the failed render changed rendered/", v.what));
        }
        std::fs::remove_file(project.path(v.file)).expect("remove the injected manifest");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn policy_allows_cluster_scoped_kinds_in_plain_environments_and_plain_secrets_when_configured() {
    let project = Project::example();
    project.write(
        "manifests/catalog/clusterrole.yaml.j2",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: catalog-reader\nrules: []\n",
    );
    project.ok(&["render", "--env", "staging"]);
    let role = read_single_yaml(&project.path("rendered/staging/20-internal/catalog/clusterrole-catalog-reader.yaml"));
    assert_eq!(str_at(&role, &["metadata", "namespace"]), None, "a cluster-scoped object gets no namespace");

    project.write(
        "manifests/catalog/secret.yaml.j2",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: catalog-db\nstringData:\n  password: hunter2\n",
    );
    project.run(&["render", "--env", "staging"]).expect_code(1);
    project.edit("services.yaml", "\nstages:", "\npolicy: {allowPlainSecrets: true}\n\nstages:");
    project.ok(&["render", "--env", "staging"]);
    assert!(project.exists("rendered/staging/20-internal/catalog/secret-catalog-db.yaml"));
}

// ------------------------------------------------------------------ slots and the agent

#[test]
fn the_agent_is_rendered_only_in_slot_environments_and_only_with_a_run_id() {
    let project = Project::example();
    project.ok(&["render", "--all"]);
    project.ok(&["render", "--env", "ai", "--slot", "pr-1"]);
    let run = project.run(&["render", "--env", "dev", "--run-id", "r1"]);
    assert!(matches!(run.code, Some(1 | 2)), "--run-id on a plain environment must be refused\n{run}");

    let agent_objects = |target: &str| -> Vec<String> {
        project
            .objects(target)
            .into_iter()
            .filter(|(_, o)| label(o, "codex-k8s.io/component") == Some("agent"))
            .map(|(rel, _)| rel)
            .collect()
    };
    for target in ["staging", "dev", "ai/pr-1"] {
        assert!(agent_objects(target).is_empty(), "{target} renders the agent: {:?}", agent_objects(target));
        assert!(!project.exists(&format!("rendered/{target}/50-agent")), "{target} has an agent stage");
    }
    assert!(project.target_json("ai/pr-1")["runId"].is_null(), "a slot rendered without a run id has none");

    project.ok(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1"]);
    assert_eq!(agent_objects("ai/pr-1"), ["50-agent/agent/job-agent-r1.yaml"]);
    let job = read_single_yaml(&project.path("rendered/ai/pr-1/50-agent/agent/job-agent-r1.yaml"));
    assert_eq!(label(&job, "codex-k8s.io/role"), Some("agent"));
    assert_eq!(annotation(&job, "argocd.argoproj.io/sync-wave"), Some("50"));
    assert!(project.read("rendered/ai/pr-1/kustomization.yaml").contains("50-agent"));
}

#[test]
fn a_slot_keeps_its_run_id_and_sets_when_rerendered_without_them() {
    let project = Project::example();
    let users = "rendered/ai/pr-1/20-internal/users/deployment-users.yaml";
    project.ok(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1", "--set", "versions.users=2.0.0-pr1"]);
    project.ok(&["render", "--env", "ai", "--slot", "pr-2"]);
    let check = |run_id: &str, users_version: &str, when: &str| {
        let info = project.target_json("ai/pr-1");
        assert_eq!(info["runId"], run_id, "{when}: runId in target.json");
        assert_eq!(info["sets"]["versions.users"], users_version, "{when}: sets in target.json");
        assert!(
            project.exists(&format!("rendered/ai/pr-1/50-agent/agent/job-agent-{run_id}.yaml")),
            "{when}: agent Job"
        );
        assert!(project.read(users).contains(&format!("shop/users:{users_version}")), "{when}: users image");
    };
    check("r1", "2.0.0-pr1", "first render");

    project.ok(&["render", "--env", "ai", "--slot", "pr-1"]);
    check("r1", "2.0.0-pr1", "re-render without --run-id/--set");
    project.ok(&["render", "--all", "--force"]);
    check("r1", "2.0.0-pr1", "render --all --force");

    project.ok(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r2"]);
    check("r2", "2.0.0-pr1", "a new run id");
    assert!(!project.exists("rendered/ai/pr-1/50-agent/agent/job-agent-r1.yaml"), "the old agent Job left the tree");

    project.ok(&["render", "--env", "ai", "--slot", "pr-1", "--set", "versions.users=3.0.0"]);
    check("r2", "3.0.0", "a new --set");

    // The overrides belong to pr-1 alone.
    assert!(project.read("rendered/ai/pr-2/20-internal/users/deployment-users.yaml").contains("shop/users:1.4.0"));
}

#[test]
fn max_slots_refuses_a_new_slot_but_rerenders_existing_ones() {
    let project = Project::example();
    project.edit("environments/ai.yaml", "maxSlots: 20", "maxSlots: 2");
    project.ok(&["render", "--env", "ai", "--slot", "pr-1"]);
    project.ok(&["render", "--env", "ai", "--slot", "pr-2"]);
    let before = project.snapshot("rendered");

    let run = project.run(&["render", "--env", "ai", "--slot", "pr-3"]).expect_code(1);
    assert!(run.stderr.contains("maxSlots"), "{run}");
    assert_same_tree(&before, &project.snapshot("rendered"), "after the refused slot");

    project.ok(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1"]);
    project.ok(&["slots", "remove", "--env", "ai", "--slot", "pr-2"]);
    let before = project.snapshot("rendered");
    let run = project.run(&["render", "--env", "ai", "--slot", "pr-3", "--slot", "pr-4"]).expect_code(1);
    assert!(run.stderr.contains("maxSlots"), "two new slots in one run count too\n{run}");
    assert_same_tree(&before, &project.snapshot("rendered"), "after the refused pair of slots");

    project.ok(&["render", "--env", "ai", "--slot", "pr-3"]);
    assert_eq!(project.targets(), ["ai/pr-1", "ai/pr-3"]);
}

// ------------------------------------------------------------------ render modes

#[test]
fn render_stdout_prints_one_target_and_filters_components() {
    let project = Project::example();
    let components = |stdout: &str| -> BTreeSet<String> {
        yaml_documents(stdout)
            .iter()
            .map(|o| label(o, "codex-k8s.io/component").expect("component label").to_owned())
            .collect()
    };

    let all = project.ok(&["render", "--env", "staging", "--stdout"]);
    assert!(!project.exists("rendered"), "--stdout wrote files");
    let objects = yaml_documents(&all.stdout);
    assert_eq!(all.stdout.matches("# Source: ").count(), objects.len(), "one # Source: line per object");
    for c in [
        "namespace",
        "postgres",
        "redis",
        "users-migrate",
        "orders-migrate",
        "users",
        "orders",
        "catalog",
        "gateway",
        "web",
    ] {
        assert!(components(&all.stdout).contains(c), "staging stream lacks {c}");
    }

    // The stream holds exactly what a render writes.
    project.ok(&["render", "--env", "staging"]);
    let mut from_files: Vec<Yaml> = project.objects("staging").into_iter().map(|(_, o)| o).collect();
    let mut from_stream = objects;
    from_files.sort_by_key(identity);
    from_stream.sort_by_key(identity);
    assert!(from_files == from_stream, "render --stdout and the rendered files differ");

    let only = project.ok(&["render", "--env", "staging", "--stdout", "--only", "users,web"]);
    assert_eq!(components(&only.stdout), BTreeSet::from(["users".to_owned(), "web".to_owned()]));

    let skip =
        project.ok(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1", "--stdout", "--skip", "users,agent"]);
    let skipped = components(&skip.stdout);
    assert!(!skipped.contains("users") && !skipped.contains("agent"), "{skipped:?}");
    assert!(skipped.contains("orders") && skipped.contains("workspace"), "{skipped:?}");
    assert!(!project.exists("rendered/ai"), "--stdout wrote the slot");
}

#[test]
fn render_check_exits_3_and_lists_drifted_files_and_writes_nothing() {
    let project = rendered_example();
    let clean = project.ok(&["render", "--all", "--check"]);
    assert!(!clean.stdout.contains("drift"), "a current tree reported drift:\n{clean}");

    let changed = "rendered/staging/20-internal/users/deployment-users.yaml";
    let removed_from_tree = "rendered/dev/20-internal/users/service-users.yaml";
    let stale = "rendered/ai/pr-1/20-internal/users/configmap-stale.yaml";
    project.edit(changed, "replicas: 2", "replicas: 7");
    std::fs::remove_file(project.path(removed_from_tree)).unwrap();
    project.write(stale, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stale\n");
    let before = project.snapshot_worktree();

    let run = project.run(&["render", "--all", "--check"]).expect_code(3);
    for (word, path) in [("changed", changed), ("added", removed_from_tree), ("removed", stale)] {
        assert!(
            run.stdout.lines().any(|l| l.contains(word) && l.contains(path)),
            "--check does not list `{word} {path}`\n{run}"
        );
    }
    assert_same_tree(&before, &project.snapshot_worktree(), "the project after render --check");

    // Drift from the inputs side: a version bump not rendered yet.
    project.ok(&["render", "--all"]);
    project.edit("services.yaml", "users: \"1.4.0\"", "users: \"1.4.1\"");
    let run = project.run(&["render", "--all", "--check"]).expect_code(3);
    assert!(run.stdout.contains("rendered/ai/pr-2/20-internal/users/deployment-users.yaml"), "{run}");
    assert!(!run.stdout.contains("deployment-orders.yaml"), "orders did not drift\n{run}");
}

// ------------------------------------------------------------------ plan, validate, schema

#[test]
fn plan_prints_well_formed_json_mermaid_and_dot() {
    let project = Project::example();
    let inventory = Inventory::read(&project);

    let json: Json = serde_json::from_str(
        &project.ok(&["plan", "--env", "ai", "--slot", "pr-1", "--run-id", "r1", "--format", "json"]).stdout,
    )
    .expect("plan --format json prints JSON");
    assert_eq!(json["target"], "ai/pr-1");
    assert_eq!(json["namespace"], "shop-dev-pr-1");
    let stages: Vec<&str> =
        json["stages"].as_array().expect("stages").iter().map(|s| s["name"].as_str().unwrap()).collect();
    let mut expected: Vec<&str> = inventory.stages.iter().map(String::as_str).collect();
    expected.push("agent");
    assert_eq!(stages, expected);

    // The waves the plan announces are the waves a render writes.
    project.ok(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1"]);
    let rendered: BTreeMap<String, i64> = project
        .objects("ai/pr-1")
        .iter()
        .map(|(_, o)| (label(o, "codex-k8s.io/component").unwrap().to_owned(), sync_wave(o)))
        .collect();
    for stage in json["stages"].as_array().unwrap() {
        for c in stage["components"].as_array().unwrap() {
            let name = c["name"].as_str().unwrap();
            if let Some(wave) = rendered.get(name) {
                assert_eq!(c["wave"].as_i64(), Some(*wave), "plan and render disagree on the wave of {name}");
            }
        }
    }

    let mermaid = project.ok(&["plan", "--env", "staging", "--format", "mermaid"]).stdout;
    assert!(mermaid.trim_start().starts_with("flowchart"), "mermaid output:\n{mermaid}");
    assert!(mermaid.contains("-->"), "mermaid output has no edges:\n{mermaid}");

    let dot = project.ok(&["plan", "--env", "staging", "--format", "dot"]).stdout;
    assert!(dot.trim_start().starts_with("digraph"), "dot output:\n{dot}");
    assert!(
        dot.trim_end().ends_with('}') && dot.matches('{').count() == dot.matches('}').count(),
        "unbalanced dot:\n{dot}"
    );
    assert!(dot.contains("->"), "dot output has no edges:\n{dot}");

    let text = project.ok(&["plan", "--env", "staging"]).stdout;
    assert!(text.contains("users-migrate") && text.contains("20-internal"), "{text}");
    assert!(!project.exists("rendered/staging"), "plan wrote files");
}

#[test]
fn validate_accepts_the_example_and_writes_nothing() {
    let project = Project::example();
    let before = project.snapshot_worktree();
    project.ok(&["validate"]);
    assert_same_tree(&before, &project.snapshot_worktree(), "the project after validate");
}

#[test]
fn the_json_schema_accepts_the_example_and_rejects_an_unknown_key() {
    let project = Project::example();
    let schema: Json = serde_json::from_str(&project.ok(&["schema"]).stdout).expect("schema prints JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let example = yaml_to_json(&serde_yaml::from_str::<Yaml>(&project.read("services.yaml")).unwrap());
    let errors: Vec<String> = validator.iter_errors(&example).map(|e| format!("{}: {e}", e.instance_path)).collect();
    assert!(errors.is_empty(), "the schema rejects the example services.yaml:\n{}", errors.join("\n"));

    let mut top_level = example.clone();
    top_level["servics"] = Json::Array(vec![]);
    assert!(!validator.is_valid(&top_level), "the schema accepts an unknown top-level key");
    let mut nested = example.clone();
    nested["services"][0]["dependOn"] = serde_json::json!(["postgres"]);
    assert!(!validator.is_valid(&nested), "the schema accepts an unknown component key");

    let env_schema: Json = serde_json::from_str(&project.ok(&["schema", "--for", "environment"]).stdout).expect("JSON");
    let env_validator = jsonschema::validator_for(&env_schema).expect("a valid JSON Schema");
    for name in ["staging", "dev", "ai"] {
        let env =
            yaml_to_json(&serde_yaml::from_str::<Yaml>(&project.read(&format!("environments/{name}.yaml"))).unwrap());
        let errors: Vec<String> =
            env_validator.iter_errors(&env).map(|e| format!("{}: {e}", e.instance_path)).collect();
        assert!(errors.is_empty(), "environments/{name}.yaml:\n{}", errors.join("\n"));
        let mut bad = env.clone();
        bad["idleTtl"] = "8h".into();
        assert!(!env_validator.is_valid(&bad), "the environment schema accepts an unknown key");
    }

    // The CLI agrees with the schema about the unknown key.
    project.edit(
        "services.yaml",
        "    dependsOn: [postgres]\n    manifests: [manifests/users-migrate",
        "    dependOn: [postgres]\n    manifests: [manifests/users-migrate",
    );
    let run = project.run(&["validate"]).expect_code(1);
    assert!(run.stderr.contains("dependOn"), "{run}");
}

// ------------------------------------------------------------------ GitOps glue

/// Every `metadata.name` and every label value of the glue and of the rendered
/// objects under `rendered/`, with the file it is in.
fn names_and_label_values(project: &Project) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (rel, _) in project.snapshot("rendered") {
        if !rel.ends_with(".yaml") || rel.ends_with("kustomization.yaml") {
            continue;
        }
        for object in yaml_documents(&project.read(&format!("rendered/{rel}"))) {
            let metadata = &object["metadata"];
            if let Some(name) = metadata["name"].as_str() {
                found.push((rel.clone(), name.to_owned()));
            }
            if let Some(labels) = metadata["labels"].as_mapping() {
                found.extend(labels.values().filter_map(Yaml::as_str).map(|v| (rel.clone(), v.to_owned())));
            }
        }
    }
    found
}

#[test]
fn long_slot_names_give_glue_names_within_63_characters_that_pass_the_crd_schemas() {
    let project = Project::example();
    // The namespace template `<project>-dev-<slot>` leaves 54 characters for a slot;
    // with `{{ slot }}` alone a slot may use all 63.
    project.edit("environments/ai.yaml", "namespace: \"{{ project }}-dev-{{ slot }}\"", "namespace: \"{{ slot }}\"");
    let s52 = format!("pr-{}", "a".repeat(49));
    let s63 = format!("pr-{}", "b".repeat(60));
    for slot in [&s52, &s63] {
        project.ok(&["render", "--env", "ai", "--slot", slot, "--run-id", "r1"]);
    }
    let schemas = crd_schemas();
    for slot in [&s52, &s63] {
        let kustomizations = yaml_documents(&project.read(&format!("rendered/flux/ai/{slot}.yaml")));
        assert_eq!(kustomizations.len(), 6);
        let names: BTreeSet<&str> = kustomizations.iter().filter_map(|k| str_at(k, &["metadata", "name"])).collect();
        assert_eq!(names.len(), 6, "shortened names collide: {names:?}");
        for k in &kustomizations {
            let schema = &schemas[&("kustomize.toolkit.fluxcd.io/v1".to_owned(), "Kustomization".to_owned())];
            let errors = schema_errors(schema, &yaml_to_json(k));
            assert!(errors.is_empty(), "{errors:#?}");
            let name = str_at(k, &["metadata", "name"]).unwrap();
            assert!(name.starts_with("shop-ai-pr-"), "{name}");
            if let Some(dep) = k["spec"]["dependsOn"][0]["name"].as_str() {
                assert!(names.contains(dep), "dependsOn {dep} names no Kustomization of {names:?}");
            }
        }
    }
    let too_long: Vec<_> = names_and_label_values(&project).into_iter().filter(|(_, v)| v.len() > 63).collect();
    assert!(too_long.is_empty(), "names or label values over 63 characters: {too_long:#?}");
    // Deterministic: a re-render changes nothing.
    let before = project.snapshot("rendered");
    project.ok(&["render", "--env", "ai", "--slot", &s52, "--run-id", "r1"]);
    assert_eq!(before, project.snapshot("rendered"));
}

#[test]
fn argo_cd_glue_follows_the_deploy_branch_with_finalizer_retry_and_generate_paths() {
    let project = rendered_example();
    let app = read_single_yaml(&project.path("rendered/argocd/staging.yaml"));
    assert_eq!(str_at(&app, &["spec", "source", "targetRevision"]), Some("rendered"));
    assert_eq!(app["metadata"]["finalizers"][0].as_str(), Some("resources-finalizer.argocd.argoproj.io"));
    assert_eq!(annotation(&app, "argocd.argoproj.io/manifest-generate-paths"), Some("."));
    let retry = &app["spec"]["syncPolicy"]["retry"];
    assert!(retry["limit"].as_i64().unwrap_or(0) > 0 && retry["backoff"]["factor"].as_i64() == Some(2), "{retry:?}");

    let set = yaml_documents(&project.read("rendered/argocd/ai.yaml")).pop().unwrap();
    assert_eq!(set["spec"]["generators"][0]["git"]["revision"].as_str(), Some("rendered"));
    let template = &set["spec"]["template"];
    assert_eq!(str_at(template, &["spec", "source", "targetRevision"]), Some("rendered"));
    assert_eq!(template["metadata"]["annotations"]["argocd.argoproj.io/manifest-generate-paths"].as_str(), Some("."));
    let name = str_at(template, &["metadata", "name"]).unwrap();
    assert!(name.contains("sha256sum") && name.contains("trunc 54"), "{name}");

    project.edit("services.yaml", "project: shop\n", "project: shop\ngitops:\n  revision: deploy\n");
    project.ok(&["render", "--all"]);
    let app = read_single_yaml(&project.path("rendered/argocd/staging.yaml"));
    assert_eq!(str_at(&app, &["spec", "source", "targetRevision"]), Some("deploy"));
}

/// Argo CD's glob over a whole string: `*` is any run of characters.
fn glob_matches(glob: &str, text: &str) -> bool {
    match glob.split_once('*') {
        None => glob == text,
        Some((head, rest)) => {
            text.starts_with(head)
                && (head.len()..=text.len()).any(|i| text.is_char_boundary(i) && glob_matches(rest, &text[i..]))
        }
    }
}

/// The slot environment's AppProject: its Applications may deploy only
/// into the slots' namespaces (never a plain environment's or the
/// cluster's), from this repository, and no cluster-scoped kind but the
/// slot's Namespace — which is every cluster-scoped kind a slot renders.
#[test]
fn slot_app_project_walls_in_the_slot_namespaces() {
    let project = rendered_example();
    let docs = yaml_documents(&project.read("rendered/argocd/ai.yaml"));
    let (appproject, set) = (yaml_to_json(&docs[0]), yaml_to_json(&docs[1]));
    assert_eq!((appproject["kind"].as_str(), set["kind"].as_str()), (Some("AppProject"), Some("ApplicationSet")));
    let name = appproject["metadata"]["name"].as_str().unwrap();
    assert_eq!(set["spec"]["template"]["spec"]["project"].as_str(), Some(name), "slot Applications use the AppProject");
    assert_eq!(appproject["metadata"]["namespace"], set["metadata"]["namespace"]);
    // The fields of Argo CD's AppProjectSpec this emits, and nothing else.
    let mut fields: Vec<&str> = appproject["spec"].as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["clusterResourceWhitelist", "description", "destinations", "namespaceResourceWhitelist", "sourceRepos"]
    );
    // Namespaced kinds: the Kubernetes API's stored ones, listed, never `*`.
    let kinds = appproject["spec"]["namespaceResourceWhitelist"].as_array().unwrap();
    let listed = |group: &str, kind: &str| kinds.iter().any(|k| k["group"] == group && k["kind"] == kind);
    assert!(listed("apps", "Deployment") && listed("batch", "Job") && listed("", "PersistentVolumeClaim"));
    assert!(!listed("", "Binding") && kinds.iter().all(|k| k["kind"] != "*" && k["group"] != "*"), "{kinds:?}");
    assert_eq!(
        appproject["spec"]["sourceRepos"],
        serde_json::json!([set["spec"]["template"]["spec"]["source"]["repoURL"]])
    );
    let destinations = appproject["spec"]["destinations"].as_array().unwrap();
    assert_eq!(destinations.len(), 1, "{destinations:?}");
    let glob = destinations[0]["namespace"].as_str().unwrap();
    assert_eq!(destinations[0]["server"].as_str(), Some("https://kubernetes.default.svc"));
    assert_eq!(appproject["spec"]["clusterResourceWhitelist"], serde_json::json!([{"group": "", "kind": "Namespace"}]));

    // Every slot's namespace is inside the wall; no plain environment's,
    // none of the cluster's.
    for slot in ["pr-1", "pr-2"] {
        let meta: Json =
            serde_json::from_str(&project.read(&format!("rendered/ai/{slot}/.codex-k8s/target.json"))).unwrap();
        let ns = meta["namespace"].as_str().unwrap();
        assert!(glob_matches(glob, ns), "{ns} outside {glob}");
        // The only cluster-scoped object of a slot is its Namespace.
        for (rel, _) in project.snapshot(&format!("rendered/ai/{slot}")) {
            if !rel.ends_with(".yaml") || rel.ends_with("kustomization.yaml") {
                continue;
            }
            let object = yaml_to_json(&read_single_yaml(&project.path(&format!("rendered/ai/{slot}/{rel}"))));
            if object["metadata"]["namespace"].is_null() {
                assert_eq!(object["kind"].as_str(), Some("Namespace"), "rendered/ai/{slot}/{rel}");
            }
        }
    }
    for other in ["shop-dev", "shop-staging", "shop-platform", "kube-system", "argocd", "default"] {
        assert!(!glob_matches(glob, other), "{other} inside {glob}");
    }

    // The wall follows the `namespace` template.
    project.edit(
        "environments/ai.yaml",
        "namespace: \"{{ project }}-dev-{{ slot }}\"",
        "namespace: \"preview-{{ slot }}-{{ env }}\"",
    );
    project.ok(&["render", "--all"]);
    let docs = yaml_documents(&project.read("rendered/argocd/ai.yaml"));
    assert_eq!(yaml_to_json(&docs[0])["spec"]["destinations"][0]["namespace"].as_str(), Some("preview-*-ai"));
}

/// An environment's `cluster:` is its Applications' (and AppProject's)
/// destination, its `flux:` reaches every Kustomization of its targets, and
/// the glue still passes the upstream CRD schemas (issue 25 item 3).
#[test]
fn environment_cluster_and_flux_settings_reach_the_glue() {
    let project = Project::example();
    project.edit(
        "environments/ai.yaml",
        "maxSlots: 20",
        "maxSlots: 20\ncluster: {name: previews}\nflux: {serviceAccountName: slot-deployer}",
    );
    project.edit(
        "environments/platform.yaml",
        "namespace: \"{{ project }}-platform\"",
        "namespace: \"{{ project }}-platform\"\ncluster: {server: \"https://ops.example.com:6443\"}\nflux: {decryption: {provider: sops, secretRef: {name: sops-age}}}",
    );
    project.ok(&["render", "--all"]);
    project.ok(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1"]);
    let ai = yaml_documents(&project.read("rendered/argocd/ai.yaml"));
    let (appproject, set) = (yaml_to_json(&ai[0]), yaml_to_json(&ai[1]));
    assert_eq!(
        appproject["spec"]["destinations"],
        serde_json::json!([{"name": "previews", "namespace": "shop-dev-*"}])
    );
    assert_eq!(
        set["spec"]["template"]["spec"]["destination"],
        serde_json::json!({"name": "previews", "namespace": "{{.namespace}}"})
    );
    let platform = yaml_to_json(&yaml_documents(&project.read("rendered/argocd/platform.yaml"))[0]);
    assert_eq!(platform["spec"]["destination"], serde_json::json!({"server": "https://ops.example.com:6443"}));
    let staging = yaml_to_json(&yaml_documents(&project.read("rendered/argocd/staging.yaml"))[0]);
    assert_eq!(staging["spec"]["destination"], serde_json::json!({"server": "https://kubernetes.default.svc"}));

    let schemas = crd_schemas();
    for (file, sa, decryption) in [
        ("rendered/flux/ai/pr-1.yaml", Some("slot-deployer"), None),
        (
            "rendered/flux/platform.yaml",
            None,
            Some(serde_json::json!({"provider": "sops", "secretRef": {"name": "sops-age"}})),
        ),
        ("rendered/flux/staging.yaml", None, None),
    ] {
        let docs = yaml_documents(&project.read(file));
        assert!(!docs.is_empty(), "{file}");
        for doc in docs {
            let k = yaml_to_json(&doc);
            assert_eq!(k["spec"]["serviceAccountName"].as_str(), sa, "{file}: {k}");
            assert_eq!(k["spec"].get("decryption").cloned(), decryption, "{file}: {k}");
            let schema = &schemas[&("kustomize.toolkit.fluxcd.io/v1".to_owned(), "Kustomization".to_owned())];
            assert!(schema_errors(schema, &k).is_empty(), "{file}: {:?}", schema_errors(schema, &k));
        }
    }
    for doc in [&set, &platform] {
        let (api_version, kind) = (doc["apiVersion"].as_str().unwrap(), doc["kind"].as_str().unwrap());
        let errors = schema_errors(&schemas[&(api_version.to_owned(), kind.to_owned())], doc);
        assert!(errors.is_empty(), "{kind}: {errors:?}");
    }
}

/// Flux duration (`1h2m3.5s`) in seconds.
fn flux_seconds(text: &str) -> f64 {
    let (mut total, mut number) = (0.0, String::new());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                0.001
            }
            ('h', _) => 3600.0,
            ('m', _) => 60.0,
            ('s', _) => 1.0,
            _ => panic!("`{text}` is not a Flux duration"),
        };
        total += number.parse::<f64>().unwrap() * unit;
        number.clear();
    }
    total
}

#[test]
fn flux_wait_and_timeout_follow_the_stage_jobs_and_the_inventory() {
    let project = rendered_example();
    let stage = |target: &str, dir: &str| {
        yaml_documents(&project.read(&format!("rendered/flux/{target}.yaml")))
            .into_iter()
            .find(|k| str_at(k, &["spec", "path"]).is_some_and(|p| p.ends_with(dir)))
            .unwrap_or_else(|| panic!("no Kustomization for {target} {dir}"))
    };
    let migrations = stage("ai/pr-1", "10-migrations");
    let timeout = flux_seconds(str_at(&migrations, &["spec", "timeout"]).unwrap());
    assert!(timeout >= 900.0, "migrations timeout {timeout}s is shorter than the Jobs' activeDeadlineSeconds 900");
    assert_eq!(migrations["spec"]["wait"].as_bool(), Some(true));
    let agent = stage("ai/pr-1", "50-agent");
    assert_eq!(agent["spec"]["wait"].as_bool(), Some(false), "the agent stage must not block on its Job");
    assert_eq!(str_at(&stage("staging", "20-internal"), &["spec", "timeout"]), Some("10m"));

    project.edit(
        "services.yaml",
        "project: shop\n",
        "project: shop\ngitops:\n  stages:\n    internal: {timeout: 15m, wait: false}\n    agent: {wait: true}\n",
    );
    project.ok(&["render", "--all"]);
    let internal = stage("staging", "20-internal");
    assert_eq!(str_at(&internal, &["spec", "timeout"]), Some("15m"));
    assert_eq!(internal["spec"]["wait"].as_bool(), Some(false));

    for (bad, needle) in [("internal: {timeout: 1d}", "gitops.stages.internal.timeout"), ("nope: {wait: true}", "nope")]
    {
        project.write(
            "services.yaml",
            &project
                .read("services.yaml")
                .replace("    internal: {timeout: 15m, wait: false}\n", &format!("    {bad}\n")),
        );
        let run = project.run(&["render", "--all"]);
        assert_eq!(run.code, Some(1), "{bad}: {}", run.stderr);
        assert!(run.stderr.contains(needle) && run.stderr.contains("services.yaml:"), "{bad}: {}", run.stderr);
        project.write(
            "services.yaml",
            &project
                .read("services.yaml")
                .replace(&format!("    {bad}\n"), "    internal: {timeout: 15m, wait: false}\n"),
        );
    }
}

#[test]
fn validate_warns_about_a_placeholder_repo_url_with_file_and_line() {
    let project = Project::example();
    let run = project.ok(&["validate"]);
    assert!(run.stderr.contains("warning") && run.stderr.contains("gitops.repoURL"), "{}", run.stderr);
    for url in ["https://github.com/OWNER/shop.git", "<your repository>", "https://git.example.com/shop.git"] {
        project.write(
            "services.yaml",
            &project
                .read("services.yaml")
                .replace("project: shop\n", &format!("project: shop\ngitops:\n  repoURL: \"{url}\"\n")),
        );
        let run = project.ok(&["validate"]);
        assert!(run.stderr.contains("services.yaml:15"), "{url}: {}", run.stderr);
        project.write(
            "services.yaml",
            &project.read("services.yaml").replace(&format!("gitops:\n  repoURL: \"{url}\"\n"), ""),
        );
    }
    project.edit(
        "services.yaml",
        "project: shop\n",
        "project: shop\ngitops:\n  repoURL: https://github.com/acme/shop.git\n",
    );
    let run = project.ok(&["validate"]);
    assert!(!run.stderr.contains("gitops.repoURL"), "{}", run.stderr);
}
