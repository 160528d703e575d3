//! Issue 10, the values side of "a slot is a sealed box": values given
//! through `--set`, `env_or`, environment files and `target.json` are data,
//! never YAML syntax (class 4); a `target.json` read back from git passes the
//! flag checks (class 5); YAML typing never changes a value silently and a
//! byte-order mark is accepted in every input file (class 6); no input
//! panics the binary, not even a non-UTF-8 environment (class 7).
//!
//! Each test renders a tiny project whose one ConfigMap shows every value
//! channel in a quoted slot, and checks the exact objects and keys rendered.

use std::collections::BTreeMap;
use std::fs;

use crate::support::{git_in, Project, Run};

const SERVICES: &str = r#"apiVersion: codex-k8s.io/v1alpha1
kind: ServiceStack
project: shop
templates:
  env: ["SHOP_*"]
  partials: ["partials/*.j2"]
versions:
  api: "1.0"
environments:
  ai:
    slots: true
    namespace: "shop-ai-{{ slot }}"
    vars: {x: plain}
services:
  - name: api
    manifests: [manifests/api.yaml.j2]
"#;

const DEV: &str = "namespace: shop-dev\nvars:\n  x: plain\n";

const PARTIAL: &str = "{% macro quoted(v) %}\"{{ v }}\"{% endmacro %}\n";

/// Every channel in its own key: the version, a var (from `--set`, the
/// environment file or `target.json`), an allowed environment variable, and
/// the var again through `tojson` (which also keeps `"` and `\`).
const MANIFEST: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: api
data:
  version: "{{ versions.api }}"
  x: {{ quoted(vars.x) }}
  e: "{{ env_or('SHOP_X', '') }}"
  j: {{ vars.x | tojson }}
"#;

/// The tiny project, in a git repository with one commit.
fn project() -> Project {
    let p = Project::empty();
    p.write("services.yaml", SERVICES);
    p.write("environments/dev.yaml", DEV);
    p.write("partials/quote.j2", PARTIAL);
    p.write("manifests/api.yaml.j2", MANIFEST);
    p.git(&["init", "-q", "-b", "main"]);
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "tiny project"]);
    p
}

/// The documents of a `--stdout` stream: `(kind, name, sorted keys of data)`.
fn objects(run: &Run) -> Vec<(String, String, Vec<String>)> {
    crate::support::yaml_documents(&run.stdout)
        .iter()
        .map(|d| {
            let kind = d["kind"].as_str().unwrap_or_default().to_owned();
            let name = d["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            let keys = d["data"]
                .as_mapping()
                .map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect::<Vec<_>>())
                .unwrap_or_default();
            let mut keys = keys;
            keys.sort();
            (kind, name, keys)
        })
        .collect()
}

/// The `data` of the ConfigMap `api` in a `--stdout` stream.
fn data(run: &Run) -> BTreeMap<String, String> {
    let docs = crate::support::yaml_documents(&run.stdout);
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap_or_else(|| panic!("no ConfigMap\n{run}"));
    cm["data"]
        .as_mapping()
        .unwrap_or_else(|| panic!("data is not a mapping\n{run}"))
        .iter()
        .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), v.as_str().unwrap_or("<not a string>").to_owned()))
        .collect()
}

fn expected_shape(slot: bool) -> Vec<(String, String, Vec<String>)> {
    let cm = ("ConfigMap".to_owned(), "api".to_owned(), ["e", "j", "version", "x"].map(str::to_owned).to_vec());
    let namespace = if slot { "shop-ai-s1" } else { "shop-dev" };
    let mut shape = vec![("Namespace".to_owned(), namespace.to_owned(), Vec::new()), cm];
    if slot {
        // A slot's NetworkPolicy, which the renderer adds.
        shape.insert(0, ("NetworkPolicy".to_owned(), "shop-slot".to_owned(), Vec::new()));
    }
    shape
}

/// A `target.json` recording `sets` for slot `ai/s1`.
fn target_json(sets: &[(&str, &str)]) -> String {
    let sets: serde_json::Map<String, serde_json::Value> =
        sets.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
    serde_json::json!({
        "project": "shop", "env": "ai", "slot": "s1", "namespace": "shop-ai-s1",
        "sets": sets, "inputsDigest": "x", "outputsDigest": "x"
    })
    .to_string()
}

/// YAML syntax that must stay text: templates, anchors, aliases, comments,
/// mapping and sequence indicators, flow collections, tags, a directive.
const ONE_LINE_PAYLOADS: &[&str] = &[
    "{{ project }}",
    "{% if true %}y{% endif %}",
    "{#",
    "&a x",
    "*a",
    "x # c",
    "#c",
    "a: b",
    "kind: Secret",
    "- item",
    "[1, 2]",
    "{k: v}",
    "!!binary aGk=",
    "%YAML 1.2",
    "--- x",
    "? k",
    "| x",
];

/// Payloads that would add a document or a key if they were parsed as YAML.
const MULTI_LINE_PAYLOADS: &[&str] = &[
    "1\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  t: x",
    "1\nkind: Secret",
    "1\r\nkind: Secret",
    "1\u{2028}kind: Secret",
    "1\tx",
    "1\u{1b}[2J",
];

#[test]
fn one_line_yaml_syntax_in_set_values_stays_one_scalar() {
    let p = project();
    for payload in ONE_LINE_PAYLOADS {
        let set_var = format!("vars.x={payload}");
        let set_version = format!("versions.api={payload}");
        if payload.starts_with('{') || payload.contains(',') {
            // Helm's grammar: `{a,b}` is a list and `,` separates assignments,
            // so these are not one scalar on `--set`: refused, either at the flag
            // or (`{k: v}` is the list `["k: v"]`) where the list meets a quoted
            // template slot, or (since a `"…"` slot escapes what it prints)
            // rendered as one scalar — never into extra keys or objects.
            let run = p.run(&["render", "--env", "dev", "--stdout", "--set", &set_var]);
            if run.code == Some(0) {
                assert_eq!(objects(&run), expected_shape(false), "{payload:?}\n{run}");
                continue;
            }
            let run = run.expect_code(1);
            assert!(
                run.stderr.contains("--set vars.x=") || run.stderr.contains("rendered output is not valid YAML"),
                "{payload:?}: a clear error\n{run}"
            );
            assert!(run.stdout.is_empty(), "{payload:?}: nothing rendered\n{run}");
            continue;
        }
        let run = p.ok(&["render", "--env", "dev", "--stdout", "--set", &set_var, "--set", &set_version]);
        assert_eq!(objects(&run), expected_shape(false), "{payload:?}\n{run}");
        let d = data(&run);
        assert_eq!(d["x"], *payload, "--set vars.x\n{run}");
        assert_eq!(d["j"], *payload, "--set vars.x through tojson\n{run}");
        assert_eq!(d["version"], *payload, "--set versions.api\n{run}");
    }
    assert!(!p.exists("rendered"), "--stdout writes nothing");
}

#[test]
fn one_line_yaml_syntax_from_env_or_stays_one_scalar() {
    let p = project();
    for payload in ONE_LINE_PAYLOADS {
        let run = p.run_with(&["render", "--env", "dev", "--stdout"], &[("SHOP_X", payload)]).expect_code(0);
        assert_eq!(objects(&run), expected_shape(false), "{payload:?}\n{run}");
        assert_eq!(data(&run)["e"], *payload, "env_or\n{run}");
    }
}

#[test]
fn one_line_yaml_syntax_in_an_environment_file_stays_one_scalar() {
    let p = project();
    for payload in ONE_LINE_PAYLOADS {
        // Written as a YAML single-quoted scalar, as a user would quote it.
        p.write(
            "environments/dev.yaml",
            &format!("namespace: shop-dev\nvars:\n  x: '{}'\n", payload.replace('\'', "''")),
        );
        let run = p.ok(&["render", "--env", "dev", "--stdout"]);
        assert_eq!(objects(&run), expected_shape(false), "{payload:?}\n{run}");
        assert_eq!(data(&run)["x"], *payload, "environment file\n{run}");
        assert_eq!(data(&run)["j"], *payload, "environment file through tojson\n{run}");
    }
}

#[test]
fn one_line_yaml_syntax_recorded_in_target_json_stays_one_scalar() {
    let p = project();
    p.ok(&["render", "--env", "ai", "--slot", "s1"]);
    let meta = "rendered/ai/s1/.codex-k8s/target.json";
    for payload in ONE_LINE_PAYLOADS {
        p.write(meta, &target_json(&[("vars.x", payload), ("versions.api", payload)]));
        let run = p.ok(&["render", "--env", "ai", "--slot", "s1", "--stdout"]);
        assert_eq!(objects(&run), expected_shape(true), "{payload:?}\n{run}");
        let d = data(&run);
        assert_eq!(d["x"], *payload, "target.json vars.x\n{run}");
        assert_eq!(d["version"], *payload, "target.json versions.api\n{run}");
    }
}

#[test]
fn multi_line_and_control_character_values_are_refused_on_every_channel() {
    let p = project();
    p.ok(&["render", "--env", "ai", "--slot", "s1"]);
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "slot s1"]);
    let meta = "rendered/ai/s1/.codex-k8s/target.json";
    let recorded = p.read(meta);
    let before = p.snapshot("rendered");
    for payload in MULTI_LINE_PAYLOADS {
        for path in ["vars.x", "versions.api"] {
            let set = format!("{path}={payload}");
            let run = p.run(&["render", "--env", "ai", "--slot", "s1", "--set", &set]).expect_code(1);
            assert!(run.stderr.contains(&format!("--set {path}: the value contains")), "{payload:?}\n{run}");
        }
        let run = p.run_with(&["render", "--env", "ai", "--slot", "s1"], &[("SHOP_X", payload)]).expect_code(1);
        assert!(run.stderr.contains("env_or(\"SHOP_X\"): the value of SHOP_X contains"), "{payload:?}\n{run}");
        p.write(meta, &target_json(&[("vars.x", payload)]));
        let run = p.run(&["render", "--env", "ai", "--slot", "s1"]).expect_code(1);
        assert!(
            run.stderr.contains(meta) && run.stderr.contains("--set vars.x: the value contains"),
            "{payload:?}\n{run}"
        );
        p.write(meta, &recorded);
        crate::support::assert_same_tree(&before, &p.snapshot("rendered"), "a refused value writes nothing");
    }
}

#[test]
fn a_multi_line_environment_file_value_is_one_scalar_through_tojson_and_an_error_in_a_quoted_slot() {
    let p = project();
    let payload = MULTI_LINE_PAYLOADS[0];
    p.write(
        "environments/dev.yaml",
        &format!("namespace: shop-dev\nvars:\n  x: {}\n", serde_json::to_string(payload).unwrap()),
    );
    // `tojson` keeps the value one scalar, whatever it holds.
    p.write(
        "manifests/api.yaml.j2",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api\ndata:\n  j: {{ vars.x | tojson }}\n",
    );
    let run = p.ok(&["render", "--env", "dev", "--stdout"]);
    assert_eq!(
        objects(&run),
        vec![("Namespace".into(), "shop-dev".into(), Vec::new()), ("ConfigMap".into(), "api".into(), vec!["j".into()])],
        "{run}"
    );
    assert_eq!(data(&run)["j"], payload);
    // A plain quoted slot cannot hold a line break: the render is refused
    // at the template, and nothing is written.
    p.write("manifests/api.yaml.j2", MANIFEST);
    let run = p.run(&["render", "--env", "dev"]).expect_code(1);
    assert!(
        run.stderr.contains("printed in a \"…\" slot contains a line break")
            && run.stderr.contains("manifests/api.yaml.j2"),
        "{run}"
    );
    assert!(!p.exists("rendered"), "nothing written\n{run}");
}

// ------------------------------------------------------------------ class 5: target.json from git

#[test]
fn a_hostile_target_json_committed_on_a_branch_is_refused_naming_the_file() {
    let hostile: &[(&str, &str, &str)] = &[
        (
            "set value with a document",
            r#""sets":{"vars.x":"1\n---\nkind: Secret"}"#,
            "--set vars.x: the value contains a line break",
        ),
        (
            "set of an unknown root",
            r#""sets":{"metadata.name":"x"}"#,
            "only `versions.<name>` and `vars.<path>` can be overridden (`metadata.name` is neither)",
        ),
        ("run id", r#""runId":"../../etc""#, "invalid --run-id `../../etc`"),
        ("slot", r#""slot":"S1""#, "records target ai/S1"),
        ("namespace", r#""namespace":"kube-system\nx""#, "invalid namespace"),
        ("project", r#""project":"other""#, "records project `other`"),
    ];
    for (what, field, message) in hostile {
        let p = project();
        p.ok(&["render", "--env", "ai", "--slot", "s1", "--branch", "rendered"]);
        // Rewrite target.json on the branch through git itself (no work tree).
        let json = git_in(&p.root, &["show", "rendered:rendered/ai/s1/.codex-k8s/target.json"]);
        let key = field.split(':').next().unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let patch: serde_json::Value = serde_json::from_str(&format!("{{{field}}}")).unwrap();
        value[key.trim_matches('"')] = patch[key.trim_matches('"')].clone();
        let evil = p.path("evil.json");
        fs::write(&evil, value.to_string()).unwrap();
        let blob = git_in(&p.root, &["hash-object", "-w", evil.to_str().unwrap()]);
        fs::remove_file(&evil).unwrap();
        let index = p.path(".git/evil-index");
        let envs = [("GIT_INDEX_FILE", index.to_str().unwrap())];
        crate::support::git_with_env(&p.root, &["read-tree", "rendered"], &envs);
        crate::support::git_with_env(
            &p.root,
            &["update-index", "--cacheinfo", &format!("100644,{},rendered/ai/s1/.codex-k8s/target.json", blob.trim())],
            &envs,
        );
        let tree = crate::support::git_with_env(&p.root, &["write-tree"], &envs);
        let commit = git_in(&p.root, &["commit-tree", tree.trim(), "-p", "rendered", "-m", "hostile target.json"]);
        git_in(&p.root, &["update-ref", "refs/heads/rendered", commit.trim()]);
        let tip = git_in(&p.root, &["rev-parse", "rendered"]);

        let run = p.run(&["render", "--env", "ai", "--slot", "s1", "--branch", "rendered"]).expect_code(1);
        assert!(
            run.stderr.contains("rendered/ai/s1/.codex-k8s/target.json (committed on branch rendered)")
                && run.stderr.contains(message),
            "{what}: the error names the file and the problem\n{run}"
        );
        assert_eq!(git_in(&p.root, &["rev-parse", "rendered"]), tip, "{what}: the branch did not move");
        assert!(!p.exists("rendered"), "{what}: nothing written to the work tree");
    }
}

// ------------------------------------------------------------------ class 6: typing and BOMs

#[test]
fn an_explicit_str_tag_is_honoured() {
    let p = project();
    p.edit("services.yaml", "  api: \"1.0\"", "  api: !!str 1.10");
    p.write("environments/dev.yaml", "namespace: shop-dev\nvars:\n  x: !!str 0755\n");
    let run = p.ok(&["render", "--env", "dev", "--stdout"]);
    let d = data(&run);
    assert_eq!(d["version"], "1.10", "{run}");
    assert_eq!(d["x"], "0755", "{run}");
    assert_eq!(d["j"], "0755", "{run}");
}

#[test]
fn a_byte_order_mark_is_accepted_in_every_input_file() {
    let plain = project();
    let reference = plain.ok(&["render", "--env", "dev", "--stdout"]).stdout;
    for file in ["services.yaml", "environments/dev.yaml", "partials/quote.j2", "manifests/api.yaml.j2"] {
        let p = project();
        let text = p.read(file);
        p.write(file, &format!("\u{feff}{text}"));
        let run = p.ok(&["render", "--env", "dev", "--stdout"]);
        assert_eq!(run.stdout, reference, "{file} with a BOM renders the same\n{run}");
        assert!(!run.stdout.contains('\u{feff}'), "{file}: the BOM does not reach the output");
    }
}

// ------------------------------------------------------------------ class 7: no panic

#[cfg(unix)]
#[test]
fn a_non_utf8_environment_does_not_panic_render() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let p = project();
    let bad = OsStr::from_bytes(b"\xff\xfe-not-utf8");
    // An unrelated variable, a variable whose name is not UTF-8, and an
    // allowed one (SHOP_Y is not read: the digest still covers it).
    let run = |extra: &[(&OsStr, &OsStr)], args: &[&str]| {
        let mut cmd = p.cmd();
        cmd.args(args);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        Run::from_output(format!("codex-k8s {}", args.join(" ")), cmd.output().expect("run codex-k8s"))
    };
    let cases: [&[(&OsStr, &OsStr)]; 3] =
        [&[(OsStr::new("CODEX_K8S_TEST_BAD"), bad)], &[(bad, OsStr::new("x"))], &[(OsStr::new("SHOP_Y"), bad)]];
    for env in cases {
        run(env, &["render", "--env", "dev", "--stdout"]).expect_code(0);
        run(env, &["render", "--env", "ai", "--slot", "s1"]).expect_code(0);
        run(env, &["render", "--env", "ai", "--slot", "s1", "--check"]).expect_code(0);
        run(env, &["validate"]).expect_code(0);
    }
    // The variable a template reads: an error naming it, not a panic.
    let r = run(&[(OsStr::new("SHOP_X"), bad)], &["render", "--env", "dev"]).expect_code(1);
    assert!(r.stderr.contains("the value of SHOP_X is not valid UTF-8"), "{r}");
}

#[cfg(unix)]
#[test]
fn non_utf8_arguments_are_usage_errors_not_panics() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let p = project();
    for args in [
        vec![OsStr::new("render"), OsStr::new("--env"), OsStr::from_bytes(b"d\xffv")],
        vec![
            OsStr::new("render"),
            OsStr::new("--env"),
            OsStr::new("dev"),
            OsStr::new("--set"),
            OsStr::from_bytes(b"vars.x=\xff"),
        ],
        vec![
            OsStr::new("render"),
            OsStr::new("--env"),
            OsStr::new("ai"),
            OsStr::new("--slot"),
            OsStr::from_bytes(b"\xff"),
        ],
    ] {
        let out = p.cmd().args(&args).output().expect("run codex-k8s");
        let run = Run::from_output(format!("{args:?}"), out);
        assert!(matches!(run.code, Some(1 | 2)), "{run}");
        assert!(!run.stderr.contains("panicked"), "{run}");
        assert!(!p.exists("rendered"), "{run}");
    }
}
