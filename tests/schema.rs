//! The JSON Schema from `codex-k8s schema` is what editors validate with:
//! it must accept the bundled example, be the file committed under
//! `schemas/`, and reject every bad-input case that is a shape error.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn schema(kind: &str) -> serde_json::Value {
    let out = Command::cargo_bin("codex-k8s").unwrap().args(["schema", "--for", kind]).output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn yaml_file(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_yaml::from_str(&text).ok()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_schemas_match_the_generated_ones() {
    for (kind, file) in
        [("services", "schemas/services.schema.json"), ("environment", "schemas/environment.schema.json")]
    {
        let committed: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(root().join(file)).unwrap()).unwrap();
        assert_eq!(committed, schema(kind), "{file} is stale: run `codex-k8s schema --for {kind} > {file}`");
    }
}

#[test]
fn schema_accepts_the_bundled_example() {
    let services = jsonschema::validator_for(&schema("services")).unwrap();
    let example = yaml_file(&root().join("services.yaml")).unwrap();
    let errors: Vec<String> = services.iter_errors(&example).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let environment = jsonschema::validator_for(&schema("environment")).unwrap();
    for entry in std::fs::read_dir(root().join("environments")).unwrap() {
        let path = entry.unwrap().path();
        let doc = yaml_file(&path).unwrap();
        assert!(environment.is_valid(&doc), "{} rejected", path.display());
    }
}

/// Cases whose expected error is about the file's shape (keys, types, fixed values).
fn is_shape_error(case: &str) -> bool {
    [
        "unknown key",
        "missing required key",
        "invalid type",
        "expected a",
        "expected struct",
        "unsupported apiVersion",
        "unsupported kind",
        "invalid project name",
    ]
    .iter()
    .any(|needle| case.contains(needle))
}

#[test]
fn schema_rejects_every_shape_error_of_the_corpus() {
    let services = jsonschema::validator_for(&schema("services")).unwrap();
    let environment = jsonschema::validator_for(&schema("environment")).unwrap();
    let mut checked = 0;
    let mut accepted = Vec::new();
    for entry in std::fs::read_dir(root().join("tests/cases")).unwrap() {
        let dir = entry.unwrap().path();
        let case = std::fs::read_to_string(dir.join("case.yaml")).unwrap_or_default();
        if !is_shape_error(&case) {
            continue;
        }
        let mut rejected = match yaml_file(&dir.join("services.yaml")) {
            Some(doc) => !services.is_valid(&doc),
            None => continue, // not YAML at all: nothing for a schema to say
        };
        if let Ok(envs) = std::fs::read_dir(dir.join("environments")) {
            for env in envs {
                if let Some(doc) = yaml_file(&env.unwrap().path()) {
                    rejected |= !environment.is_valid(&doc);
                }
            }
        }
        checked += 1;
        if !rejected {
            accepted.push(dir.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(checked >= 15, "only {checked} shape-error cases found");
    assert!(accepted.is_empty(), "the schema accepts these bad cases: {accepted:?}");
}
