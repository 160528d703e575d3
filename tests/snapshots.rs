//! Snapshot tests (insta) of good input: every directory under `tests/good/`
//! is a small project (or, with `example: true` in its `case.yaml`, the
//! bundled example at the repository root). The test copies it into a
//! temporary git repository, runs the `render` commands its `case.yaml`
//! lists (slot targets need a first render), then `render --all`, and
//! snapshots, for every target the tree holds:
//!
//! - `snapshots/plan-<env>[-<slot>].snap`: `plan --env E [--slot S] --format json`;
//! - `snapshots/render-<env>[-<slot>].snap`: every file of the target (path + content);
//! - `snapshots/render-glue.snap`: the files outside any target (Argo CD, Flux).
//!
//! ```yaml
//! example: false                      # optional: use the bundled example
//! render:                             # optional: extra `render` runs before `render --all`
//!   - [--env, ai, --slot, pr-1, --set, "vars.replicas=2"]
//! ```
//!
//! Temporary paths, the inputs digest and commit ids are redacted. A case without its
//! snapshots fails under CI (`CI=1`); `INSTA_UPDATE=always cargo test --test
//! integration snapshots` writes them (tests/README.md). `GOOD_FILTER=text`
//! runs only the cases whose name contains `text`.
//!
//! The bad-input corpus (`tests/corpus.rs`) snapshots each case's full
//! stderr with [`settings`] too.

use std::collections::BTreeMap;
use std::fs;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;

use crate::support::{self, Project};

/// Fewest good cases (guards against a broken walk).
const MIN_GOOD: usize = 5;

/// insta settings for the snapshots of one case: files in `dir`, named
/// without the module prefix, with every machine-specific text redacted
/// (`tmp`: the case's temporary directory).
pub fn settings(dir: &Path, tmp: &Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(dir);
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    let mut paths = vec![tmp.to_path_buf()];
    if let Ok(real) = tmp.canonicalize() {
        paths.push(real);
    }
    // Longest first, so a canonical path is not half-replaced by a shorter one.
    paths.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for p in paths {
        s.add_filter(&regex::escape(&p.display().to_string()), "[TMP]");
    }
    // Any other temporary directory of a test (clones, a second project).
    s.add_filter(r"/[^\s:'`\x22]*/\.tmp[A-Za-z0-9]{6}", "[TMP]");
    s.add_filter(&regex::escape(&support::repo_root().display().to_string()), "[REPO]");
    s
}

/// Runs `check` (which asserts a snapshot) under `settings`; a failed
/// assertion becomes `Err` (insta has printed the diff) so every case runs.
pub fn check(settings: &insta::Settings, check: impl FnOnce()) -> Result<(), String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| settings.bind(check))).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "snapshot assertion failed".into())
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GoodCase {
    /// The project is the bundled example at the repository root.
    #[serde(default)]
    example: bool,
    /// `render` runs (arguments after `render`) before `render --all`.
    #[serde(default)]
    render: Vec<Vec<String>>,
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for e in fs::read_dir(from).expect("read case dir").flatten() {
        let name = e.file_name();
        if name == "case.yaml" || name == "snapshots" {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&src, &dst);
        } else {
            fs::copy(&src, &dst).expect("copy");
        }
    }
}

/// The project of one case, in a git repository on `main` with one commit.
fn project_of(dir: &Path, case: &GoodCase) -> Project {
    if case.example {
        return Project::example();
    }
    let project = Project::empty();
    copy_dir(dir, &project.root);
    project.git(&["init", "-q", "-b", "main"]);
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "good case"]);
    project
}

/// `dev` → `--env dev`; `ai/pr-1` → `--env ai --slot pr-1`.
fn target_args(target: &str) -> Vec<&str> {
    match target.split_once('/') {
        Some((env, slot)) => vec!["--env", env, "--slot", slot],
        None => vec!["--env", target],
    }
}

/// Every file of `root` below `rel` (relative path → text), files of the
/// targets in `skip` left out.
fn files(root: &Path, skip: &[String]) -> BTreeMap<String, String> {
    support::snapshot(root)
        .into_iter()
        .filter(|(path, _)| !skip.iter().any(|t| path.starts_with(&format!("{t}/"))))
        .map(|(path, bytes)| (path, String::from_utf8_lossy(&bytes).into_owned()))
        .collect()
}

/// One snapshot text listing files: `--- path` then the content.
fn listing(files: &BTreeMap<String, String>) -> String {
    let mut text = String::new();
    for (path, content) in files {
        text.push_str(&format!("--- {path}\n{content}"));
        if !content.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

/// The values of `target.json` that depend on more than the rendered output:
/// the inputs digest hashes the codex-k8s version too, and a source commit
/// id hashes commit times.
const REDACTED_KEYS: &[&str] = &["inputsDigest", "commit"];

/// `target.json` with [`REDACTED_KEYS`] replaced by `[REDACTED]`.
fn redact_target_json(text: &str) -> String {
    let Ok(mut json) = serde_json::from_str::<Json>(text) else { return text.to_owned() };
    redact_keys(&mut json);
    serde_json::to_string_pretty(&json).expect("JSON") + "\n"
}

fn redact_keys(json: &mut Json) {
    match json {
        Json::Object(map) => {
            for (k, v) in map.iter_mut() {
                if REDACTED_KEYS.contains(&k.as_str()) && v.is_string() {
                    *v = Json::String("[REDACTED]".into());
                } else {
                    redact_keys(v);
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(redact_keys),
        _ => {}
    }
}

/// Runs one good case; returns its problems.
fn run_good(dir: &Path) -> Vec<String> {
    let case: GoodCase = match fs::read_to_string(dir.join("case.yaml")) {
        Ok(text) => match serde_yaml::from_str(&text) {
            Ok(c) => c,
            Err(e) => return vec![format!("bad case.yaml: {e}")],
        },
        Err(_) => GoodCase::default(),
    };
    let project = project_of(dir, &case);
    let tmp = project.root.parent().expect("project in a temp dir").to_path_buf();
    let settings = settings(&dir.join("snapshots"), &tmp);
    let mut problems = Vec::new();
    for args in &case.render {
        let mut full = vec!["render"];
        full.extend(args.iter().map(String::as_str));
        let run = project.run(&full);
        if run.code != Some(0) {
            problems.push(format!("render {} failed:\n{}", args.join(" "), run.output()));
        }
    }
    let all = project.run(&["render", "--all"]);
    if all.code != Some(0) {
        problems.push(format!("render --all failed:\n{}", all.output()));
        return problems;
    }
    let targets = project.targets();
    if targets.is_empty() {
        problems.push("render --all rendered no target".into());
    }
    let rendered = project.path("rendered");
    for target in &targets {
        let name = target.replace('/', "-");
        let mut args = vec!["plan", "--format", "json"];
        args.extend(target_args(target));
        let plan = project.run(&args);
        if plan.code != Some(0) {
            problems.push(format!("plan {target} failed:\n{}", plan.output()));
            continue;
        }
        let pretty = match serde_json::from_str::<Json>(&plan.stdout) {
            Ok(json) => serde_json::to_string_pretty(&json).expect("JSON"),
            Err(e) => {
                problems.push(format!("plan {target} printed no JSON ({e}):\n{}", plan.stdout));
                continue;
            }
        };
        let mut tree = files(&rendered.join(target), &[]);
        for (path, text) in tree.iter_mut() {
            if path.ends_with("target.json") {
                *text = redact_target_json(text);
            }
        }
        let text = listing(&tree);
        problems.extend(check(&settings, || insta::assert_snapshot!(format!("plan-{name}"), pretty)).err());
        problems.extend(check(&settings, || insta::assert_snapshot!(format!("render-{name}"), text)).err());
    }
    let glue = listing(&files(&rendered, &targets));
    problems.extend(check(&settings, || insta::assert_snapshot!("render-glue", glue)).err());
    problems
}

#[test]
fn good_input_snapshots() {
    let root = support::repo_root().join("tests/good");
    let mut dirs: Vec<PathBuf> =
        fs::read_dir(&root).expect("tests/good exists").flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    let filter = std::env::var("GOOD_FILTER").ok();
    if filter.is_none() {
        assert!(dirs.len() >= MIN_GOOD, "only {} good cases under {}", dirs.len(), root.display());
    }
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().expect("name").to_string_lossy().into_owned();
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let problems = run_good(dir);
        if !problems.is_empty() {
            failures.push(format!("=== {name}\n  - {}", problems.join("\n  - ")));
        }
    }
    assert!(failures.is_empty(), "{} good case(s) failed:\n{}", failures.len(), failures.join("\n\n"));
}
