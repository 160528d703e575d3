//! The podinfo Helm chart ported to codex-k8s (`tests/ports/podinfo`),
//! compared object by object with `helm template` of the chart for every
//! values variant of `tests/ports/podinfo/variants.yaml`.
//!
//! helm's output is committed (`expected/<variant>.yaml`), so the comparison
//! runs in every clone; a second test renders the chart with helm again and
//! fails when the committed copy is stale (`CODEX_K8S_UPDATE_EXPECTED=1`
//! rewrites it).
//!
//! Before comparing, exactly these differences are taken out, and nothing else:
//! - on codex-k8s's side, what it adds to every object by design (each checked
//!   for its value before it is removed): the labels in [`CODEX_LABELS`], the
//!   annotation in [`CODEX_ANNOTATIONS`] (the port's environment has
//!   `manageNamespace: false`, so codex-k8s adds no `Namespace` object: helm
//!   renders none either);
//! - on helm's side, `app.kubernetes.io/managed-by: Helm` ([`HELM_ONLY_LABELS`]):
//!   codex-k8s owns that label and sets it to `codex-k8s`, so a port cannot
//!   carry Helm's value. `helm.sh/chart` is reproduced by the port itself;
//! - helm leaves `metadata.namespace` out of some objects (the ServiceAccount,
//!   the Redis objects) and `helm install` puts them in the release
//!   namespace: such objects of a namespaced kind get [`RELEASE_NAMESPACE`];
//! - a `metadata.labels` or `metadata.annotations` map left empty by the above
//!   is dropped on both sides.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use serde::Deserialize;
use serde_yaml::{Mapping, Value as Yaml};

use crate::support::{repo_root, yaml_documents, Project, Run};

/// codex-k8s's own labels: key and the value every object of the port must carry
/// (`None`: any non-empty value, e.g. the component or stage name).
const CODEX_LABELS: &[(&str, Option<&str>)] = &[
    ("app.kubernetes.io/managed-by", Some("codex-k8s")),
    ("app.kubernetes.io/part-of", Some("podinfo")),
    ("codex-k8s.io/env", Some(ENV)),
    ("codex-k8s.io/component", None),
    ("codex-k8s.io/stage", None),
];

/// codex-k8s's own annotations (the sync wave, a number as a string).
const CODEX_ANNOTATIONS: &[&str] = &["argocd.argoproj.io/sync-wave"];

/// Labels helm sets that a codex-k8s port cannot: key and helm's value.
const HELM_ONLY_LABELS: &[(&str, &str)] = &[("app.kubernetes.io/managed-by", "Helm")];

/// The namespace `helm template` renders into without `--namespace`.
const RELEASE_NAMESPACE: &str = "default";

/// The port's one environment (its namespace is [`RELEASE_NAMESPACE`]).
const ENV: &str = "default";

/// Kinds of the port's output that are cluster-scoped (everything else is namespaced).
const CLUSTER_SCOPED: &[&str] = &["Namespace"];

/// `(apiVersion, kind, namespace, name)`.
type Key = (String, String, String, String);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Variant {
    name: String,
    helm: Vec<String>,
    codex: Vec<String>,
}

fn port_dir() -> PathBuf {
    repo_root().join("tests/ports/podinfo")
}

fn variants() -> Vec<Variant> {
    let path = port_dir().join("variants.yaml");
    let variants: Vec<Variant> = serde_yaml::from_str(&fs::read_to_string(&path).expect("read variants.yaml"))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(variants.len() >= 6, "the defaults and at least five values variants");
    assert_eq!(variants[0].name, "defaults", "the first variant is the chart's defaults");
    assert!(variants[0].helm.is_empty() && variants[0].codex.is_empty(), "the defaults variant sets nothing");
    variants
}

fn expected_path(variant: &Variant) -> PathBuf {
    port_dir().join("expected").join(format!("{}.yaml", variant.name))
}

/// The port copied into a fresh directory, so rendering leaves the repository alone.
fn port_project() -> Project {
    let project = Project::empty();
    let from = port_dir();
    for entry in walkdir::WalkDir::new(&from).sort_by_file_name() {
        let entry = entry.expect("walk the port");
        let rel = entry.path().strip_prefix(&from).expect("below the port");
        if rel.starts_with("expected") || !entry.file_type().is_file() {
            continue;
        }
        let to = project.root.join(rel);
        fs::create_dir_all(to.parent().expect("parent")).expect("create dir");
        fs::copy(entry.path(), &to).expect("copy");
    }
    project
}

/// `codex-k8s render --env default --stdout ARGS` in the project (paths in
/// ARGS are relative to it).
fn render_port(project: &Project, args: &[String]) -> Run {
    let mut cmd = project.cmd();
    cmd.current_dir(&project.root).args(["render", "--env", ENV, "--stdout"]).args(args);
    let cmdline = format!("codex-k8s render --env {ENV} --stdout {}", args.join(" "));
    Run::from_output(cmdline, cmd.output().expect("run codex-k8s"))
}

// ------------------------------------------------------------------ normalising

fn labels_mut<'a>(object: &'a mut Yaml, key: &str) -> Option<&'a mut Mapping> {
    object.get_mut("metadata")?.get_mut(key)?.as_mapping_mut()
}

/// Drops `metadata.<key>` when it is an empty map.
fn drop_if_empty(object: &mut Yaml, key: &str) {
    if labels_mut(object, key).is_some_and(|m| m.is_empty()) {
        if let Some(meta) = object.get_mut("metadata").and_then(Yaml::as_mapping_mut) {
            meta.remove(key);
        }
    }
}

fn str_of<'a>(object: &'a Yaml, path: &[&str]) -> &'a str {
    path.iter().try_fold(object, |v, k| v.get(*k)).and_then(Yaml::as_str).unwrap_or_default()
}

fn key_of(object: &Yaml) -> Key {
    (
        str_of(object, &["apiVersion"]).to_owned(),
        str_of(object, &["kind"]).to_owned(),
        str_of(object, &["metadata", "namespace"]).to_owned(),
        str_of(object, &["metadata", "name"]).to_owned(),
    )
}

fn describe(key: &Key) -> String {
    let (api, kind, ns, name) = key;
    if ns.is_empty() {
        format!("{kind} {name} ({api})")
    } else {
        format!("{kind} {ns}/{name} ({api})")
    }
}

/// helm's objects, keyed; objects without a namespace get the release namespace.
fn helm_objects(text: &str) -> Result<BTreeMap<Key, Yaml>, String> {
    let mut out = BTreeMap::new();
    for mut object in yaml_documents(text) {
        let kind = str_of(&object, &["kind"]).to_owned();
        if let Some(labels) = labels_mut(&mut object, "labels") {
            for (key, value) in HELM_ONLY_LABELS {
                match labels.get(*key) {
                    Some(v) if v.as_str() == Some(value) => {
                        labels.remove(*key);
                    }
                    Some(v) => return Err(format!("helm's {kind} has {key}: {v:?}, expected {value}")),
                    None => {}
                }
            }
        }
        drop_if_empty(&mut object, "labels");
        if !CLUSTER_SCOPED.contains(&kind.as_str()) && str_of(&object, &["metadata", "namespace"]).is_empty() {
            if let Some(meta) = object.get_mut("metadata").and_then(Yaml::as_mapping_mut) {
                meta.insert("namespace".into(), RELEASE_NAMESPACE.into());
            }
        }
        let key = key_of(&object);
        if out.insert(key.clone(), object).is_some() {
            return Err(format!("helm renders {} twice", describe(&key)));
        }
    }
    Ok(out)
}

/// codex-k8s's objects, keyed, with its own labels and annotations checked and removed.
fn codex_objects(text: &str) -> Result<BTreeMap<Key, Yaml>, String> {
    let mut out = BTreeMap::new();
    for mut object in yaml_documents(text) {
        let key = key_of(&object);
        let what = describe(&key);
        let labels = labels_mut(&mut object, "labels").ok_or_else(|| format!("codex-k8s's {what} has no labels"))?;
        for (label, want) in CODEX_LABELS {
            let got = labels.remove(*label).and_then(|v| v.as_str().map(str::to_owned));
            let ok = match (&got, want) {
                (Some(got), Some(want)) => got == want,
                (Some(got), None) => !got.is_empty(),
                (None, _) => false,
            };
            if !ok {
                return Err(format!("codex-k8s's {what} has {label}: {got:?}, expected {}", want.unwrap_or("a value")));
            }
        }
        let annotations =
            labels_mut(&mut object, "annotations").ok_or_else(|| format!("codex-k8s's {what} has no annotations"))?;
        for annotation in CODEX_ANNOTATIONS {
            let got = annotations.remove(*annotation).and_then(|v| v.as_str().map(str::to_owned));
            if !got.as_deref().is_some_and(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit())) {
                return Err(format!("codex-k8s's {what} has {annotation}: {got:?}, expected a wave number"));
            }
        }
        drop_if_empty(&mut object, "labels");
        drop_if_empty(&mut object, "annotations");
        if out.insert(key, object).is_some() {
            return Err(format!("codex-k8s renders {what} twice"));
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------ comparing

/// `value` with every map's keys sorted, so two objects print comparably.
fn sorted(value: &Yaml) -> Yaml {
    match value {
        Yaml::Mapping(map) => {
            let mut entries: Vec<(String, Yaml, Yaml)> =
                map.iter().map(|(k, v)| (serde_yaml::to_string(k).unwrap_or_default(), k.clone(), sorted(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Yaml::Mapping(entries.into_iter().map(|(_, k, v)| (k, v)).collect())
        }
        Yaml::Sequence(items) => Yaml::Sequence(items.iter().map(sorted).collect()),
        Yaml::Tagged(tagged) => Yaml::Tagged(Box::new(serde_yaml::value::TaggedValue {
            tag: tagged.tag.clone(),
            value: sorted(&tagged.value),
        })),
        other => other.clone(),
    }
}

fn to_text(value: &Yaml) -> String {
    serde_yaml::to_string(&sorted(value)).expect("YAML prints")
}

/// Every difference between helm's objects and codex-k8s's, one readable
/// paragraph each (a unified diff of the sorted YAML for a changed object).
fn differences(helm: &BTreeMap<Key, Yaml>, codex: &BTreeMap<Key, Yaml>) -> Vec<String> {
    let mut out = Vec::new();
    for (key, expected) in helm {
        match codex.get(key) {
            None => out.push(format!("missing from codex-k8s: {}", describe(key))),
            Some(actual) if actual != expected => {
                let (want, got) = (to_text(expected), to_text(actual));
                let diff = similar::TextDiff::from_lines(&want, &got)
                    .unified_diff()
                    .context_radius(3)
                    .header("helm template", "codex-k8s")
                    .to_string();
                out.push(format!("differs: {}\n{diff}", describe(key)));
            }
            Some(_) => {}
        }
    }
    for key in codex.keys().filter(|k| !helm.contains_key(*k)) {
        out.push(format!("only in codex-k8s: {}", describe(key)));
    }
    out
}

/// The whole comparison of one variant: `Err` with every difference.
fn compare(variant: &str, helm_text: &str, codex_text: &str) -> Result<usize, String> {
    let helm = helm_objects(helm_text).map_err(|e| format!("{variant}: {e}"))?;
    let codex = codex_objects(codex_text).map_err(|e| format!("{variant}: {e}"))?;
    let diffs = differences(&helm, &codex);
    if diffs.is_empty() {
        Ok(helm.len())
    } else {
        Err(format!("variant `{variant}`: {} difference(s)\n{}", diffs.len(), diffs.join("\n")))
    }
}

#[test]
fn the_podinfo_port_renders_what_helm_template_renders_for_every_variant() {
    let project = port_project();
    project.ok(&["validate"]);
    let mut failures = Vec::new();
    for variant in variants() {
        let expected = fs::read_to_string(expected_path(&variant)).expect("read the expected objects");
        let run = render_port(&project, &variant.codex);
        if run.code != Some(0) {
            failures.push(format!("variant `{}`: codex-k8s failed\n{run}", variant.name));
            continue;
        }
        match compare(&variant.name, &expected, &run.stdout) {
            Ok(count) => assert!(count >= 2, "{}: helm renders only {count} object(s)", variant.name),
            Err(e) => failures.push(format!("{e}\n(rendered with: {})", run.cmdline)),
        }
    }
    assert!(failures.is_empty(), "the port differs from helm template:\n\n{}", failures.join("\n\n"));
}

#[test]
fn every_variant_renders_a_different_set_of_objects_or_values() {
    // A variant that changes nothing would test nothing.
    let variants = variants();
    let texts: Vec<String> = variants.iter().map(|v| fs::read_to_string(expected_path(v)).expect("read")).collect();
    for (i, a) in texts.iter().enumerate() {
        for (j, b) in texts.iter().enumerate().skip(i + 1) {
            assert_ne!(a, b, "variants `{}` and `{}` render the same objects", variants[i].name, variants[j].name);
        }
    }
}

/// The codex-k8s flag that gives the same values as helm flag `arg`: `vars.`
/// before every assigned path, `X.codex.yaml` for values file `X.yaml`.
fn codex_equivalent(arg: &str) -> Option<String> {
    if let Some(file) = arg.strip_prefix("--values=") {
        return Some(format!("--values={}.codex.yaml", file.strip_suffix(".yaml")?));
    }
    let (flag, assignments) = arg.split_once('=')?;
    if flag != "--set" && flag != "--set-string" {
        return None;
    }
    // Helm splits assignments at commas outside `{…}` lists; the variants use no escaped commas.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in assignments.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&assignments[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&assignments[start..]);
    Some(format!("{flag}={}", parts.iter().map(|p| format!("vars.{p}")).collect::<Vec<_>>().join(",")))
}

#[test]
fn every_variant_gives_both_tools_the_same_values() {
    for variant in variants() {
        let want: Vec<Option<String>> = variant.helm.iter().map(|a| codex_equivalent(a)).collect();
        let got: Vec<Option<String>> = variant.codex.iter().cloned().map(Some).collect();
        assert_eq!(got, want, "variant `{}`: the codex-k8s flags are not the helm flags under `vars.`", variant.name);
    }
}

#[test]
fn the_comparison_fails_on_every_difference_it_was_not_told_about() {
    let project = port_project();
    let expected = fs::read_to_string(port_dir().join("expected/defaults.yaml")).expect("read");
    let rendered = render_port(&project, &[]).expect_code(0).stdout;
    compare("defaults", &expected, &rendered).expect("the defaults match");

    let cases: &[(&str, &str, &str, &str)] = &[
        // (what, in the rendered text, replaced by, must be named in the failure)
        ("a changed value", "replicas: 1", "replicas: 2", "differs: Deployment default/podinfo"),
        (
            "a string that became a number",
            "prometheus.io/port: '9898'",
            "prometheus.io/port: 9898",
            "prometheus.io/port: 9898",
        ),
        ("a boolean printed like Python", "--random-delay=false", "--random-delay=False", "--random-delay=False"),
        (
            "a label of its own",
            "codex-k8s.io/stage: internal",
            "codex-k8s.io/stage: internal\n    extra: x",
            "+    extra: x",
        ),
        (
            "managed-by with another value",
            "'6.14.1'\n    app.kubernetes.io/managed-by: codex-k8s",
            "'6.14.1'\n    app.kubernetes.io/managed-by: Helm",
            "app.kubernetes.io/managed-by",
        ),
        (
            "a renamed object",
            "  name: podinfo\n  namespace: default\n  labels:\n    helm.sh/chart",
            "  name: podinfo2\n  namespace: default\n  labels:\n    helm.sh/chart",
            "only in codex-k8s",
        ),
    ];
    for (what, from, to, named) in cases {
        assert!(rendered.contains(from), "{what}: the rendered defaults contain {from:?}:\n{rendered}");
        let changed = rendered.replacen(from, to, 1);
        let err = compare("defaults", &expected, &changed).expect_err(what);
        assert!(err.contains(named), "{what}: the failure names {named:?}:\n{err}");
    }
    // An object helm renders and the port does not.
    let mut docs: Vec<&str> = rendered.split("\n---\n").collect();
    docs.retain(|d| !d.contains("kind: Service\n"));
    let err = compare("defaults", &expected, &docs.join("\n---\n")).expect_err("a missing Service");
    assert!(err.contains("missing from codex-k8s: Service default/podinfo"), "{err}");
}

// ------------------------------------------------------------------ helm itself

/// Whether this run is CI (`CI` set to anything but empty, `0` or `false`).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Something the regeneration needs and did not find: outside CI the test is
/// skipped with the reason printed; in CI it fails.
fn missing(what: &str) {
    assert!(!in_ci(), "{what}; CI must have it (.ci/kube-tools.sh installs helm)");
    eprintln!("\n!!!!!!!! SKIPPED: {what} (a failure when CI=1) !!!!!!!!\n");
}

fn helm_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|d| d.join("helm")).find(|p| p.is_file()))
        .unwrap_or_default();
    on_path.or_else(|| {
        let local = PathBuf::from(std::env::var_os("HOME")?).join(".local/bin/helm");
        local.is_file().then_some(local)
    })
}

/// The chart: `$PODINFO_CHART`, or `shared/charts/podinfo` beside the
/// repository or one of its parent directories.
fn chart_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PODINFO_CHART") {
        return Some(PathBuf::from(dir));
    }
    repo_root().ancestors().skip(1).map(|d| d.join("shared/charts/podinfo")).find(|d| d.join("Chart.yaml").is_file())
}

fn helm_template(helm: &Path, chart: &Path, args: &[String]) -> String {
    let out = Process::new(helm)
        .current_dir(port_dir())
        .args(["template", "podinfo"])
        .arg(chart)
        .arg("--skip-tests")
        .args(args)
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm template podinfo {} --skip-tests {} failed:\n{}",
        chart.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("helm prints UTF-8")
}

#[test]
fn the_committed_helm_output_is_what_helm_renders_from_the_chart() {
    let Some(helm) = helm_binary() else { return missing("`helm` is not on PATH nor in ~/.local/bin") };
    let Some(chart) = chart_dir() else {
        return missing("the podinfo chart is not at ../shared/charts/podinfo (set PODINFO_CHART)");
    };
    let update = std::env::var_os("CODEX_K8S_UPDATE_EXPECTED").is_some();
    let mut stale = Vec::new();
    for variant in variants() {
        let fresh = helm_template(&helm, &chart, &variant.helm);
        let path = expected_path(&variant);
        if fs::read_to_string(&path).ok().as_deref() != Some(fresh.as_str()) {
            if update {
                fs::write(&path, &fresh).expect("write the expected objects");
            }
            stale.push(variant.name);
        }
    }
    assert!(
        update || stale.is_empty(),
        "tests/ports/podinfo/expected is stale for {stale:?}: helm renders something else from {}; \
         rerun with CODEX_K8S_UPDATE_EXPECTED=1 to rewrite it, then review the change",
        chart.display()
    );
}

#[test]
fn the_values_files_say_the_same_to_helm_and_to_codex_k8s() {
    let dir = port_dir().join("values");
    let mut pairs = 0;
    for entry in fs::read_dir(&dir).expect("read values/") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let Some(stem) = name.strip_suffix(".codex.yaml") else { continue };
        let read = |p: &Path| -> Yaml {
            serde_yaml::from_str(&fs::read_to_string(p).expect("read"))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let helm = read(&dir.join(format!("{stem}.yaml")));
        let codex = read(&path);
        let mut top = codex.as_mapping().expect("a map").keys().filter_map(Yaml::as_str).collect::<Vec<_>>();
        top.sort();
        assert_eq!(top, ["vars"], "{name}: only `vars:`");
        assert_eq!(codex.get("vars"), Some(&helm), "{name} and {stem}.yaml hold different values");
        pairs += 1;
    }
    assert!(pairs >= 1, "values/ holds at least one values file pair");
}

#[test]
fn the_port_renders_a_tree_that_kubectl_kustomize_builds_into_the_same_objects() {
    let Some(kubectl) = crate::support::require_tool("kubectl", "install kubectl (.ci/run does)") else { return };
    let project = port_project();
    let args = ["--values=values/prod.codex.yaml".to_owned()];
    let stdout = codex_objects(&render_port(&project, &args).expect_code(0).stdout).expect("the objects");
    let mut cmd = project.cmd();
    cmd.current_dir(&project.root).args(["render", "--env", ENV]).args(&args);
    Run::from_output("codex-k8s render --env default".into(), cmd.output().expect("run codex-k8s")).expect_code(0);
    let out = Process::new(&kubectl).arg("kustomize").arg(project.path("rendered/default")).output().expect("kubectl");
    assert!(out.status.success(), "kubectl kustomize failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let built = codex_objects(&String::from_utf8_lossy(&out.stdout)).expect("the built objects");
    assert_eq!(built.keys().collect::<Vec<_>>(), stdout.keys().collect::<Vec<_>>(), "kustomize builds other objects");
    for (key, object) in &stdout {
        assert_eq!(Some(object), built.get(key), "{}: the tree and --stdout differ", describe(key));
    }
}
