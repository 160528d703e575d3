//! The bad-input corpus: every directory under `tests/cases/` is a tiny
//! project that triggers exactly one problem, plus a `case.yaml` that says
//! how the CLI must react:
//!
//! ```yaml
//! args: [validate]          # CLI arguments after `-C <project>` (default [validate])
//! exit: 1                   # expected exit code
//! stderr: ["services.yaml:4:5", "did you mean `dependsOn`?"]   # all must appear in stderr
//! stdout: ["drift in rendered"]                                # optional, all must appear in stdout
//! setup:                    # optional: content that cannot live in the repository as text
//!   symlink: {"manifests/evil.yaml.j2": "/etc/hosts"}
//!   bytes: {"services.yaml": "<base64>"}
//!   files: {"rendered/ai/pr-1/.codex-k8s/target.json": "{}"}
//! ```
//!
//! Each case is copied to a temporary directory and run with the built
//! binary. Besides the expectations above, every case must not panic, and a
//! failing run (exit != 0) must leave the project exactly as it found it (in
//! particular: no `rendered/` tree). An expected substring that ends in a
//! digit (`services.yaml:4:5`, `line 3`) must not be followed by another
//! digit, so `:1:1` does not match `:1:12`.
//!
//! The full stderr of every case is snapshotted too (insta), next to the
//! case as `tests/cases/<name>/stderr.snap`, with the temporary project path
//! redacted as `[TMP]`. A case without its snapshot fails under CI (`CI=1`);
//! `INSTA_UPDATE=always cargo test --test integration corpus` writes it
//! (tests/README.md).
//!
//! All cases run; the failures are reported together. `CORPUS_FILTER=text`
//! runs only the cases whose name contains `text`; `CODEX_K8S_BIN=/path` runs
//! another binary (an older build: which cases did it fail?).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use base64::Engine as _;
use serde::Deserialize;

/// Fewest cases the corpus must hold (guards against a broken walk).
const MIN_CASES: usize = 55;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[serde(default)]
    args: Option<Vec<String>>,
    exit: i32,
    #[serde(default)]
    stderr: Vec<String>,
    #[serde(default)]
    stdout: Vec<String>,
    #[serde(default)]
    setup: Setup,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Setup {
    /// Symlinks to create: link path (relative) → target (as written).
    #[serde(default)]
    symlink: BTreeMap<String, String>,
    /// Files with exact bytes: path → base64.
    #[serde(default)]
    bytes: BTreeMap<String, String>,
    /// Extra text files (e.g. inside `rendered/`, which the repository does not hold).
    #[serde(default)]
    files: BTreeMap<String, String>,
}

/// One entry of a directory snapshot.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).expect("below root").to_path_buf();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            if meta.file_type().is_symlink() {
                out.insert(rel, Entry::Link(fs::read_link(&path).expect("read_link")));
            } else if meta.is_dir() {
                out.insert(rel, Entry::Dir);
                walk(root, &path, out);
            } else {
                out.insert(rel, Entry::File(fs::read(&path).expect("read")));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for e in fs::read_dir(from).expect("read case dir").flatten() {
        let src = e.path();
        let dst = to.join(e.file_name());
        let ty = e.file_type().expect("file type");
        if ty.is_dir() {
            copy_dir(&src, &dst);
        } else if !is_case_file(&e.file_name().to_string_lossy()) {
            fs::copy(&src, &dst).expect("copy");
        }
    }
}

/// The files of a case directory that describe the case rather than belong
/// to its project: `case.yaml` and the stderr snapshot (with insta's pending
/// `.snap.new`).
fn is_case_file(name: &str) -> bool {
    name == "case.yaml" || name.ends_with(".snap") || name.ends_with(".snap.new")
}

fn parent_dirs(path: &Path) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("create parent");
    }
}

/// Applies `setup`; `Err` when the platform cannot (the case is skipped).
fn apply_setup(setup: &Setup, project: &Path) -> Result<(), String> {
    for (rel, b64) in &setup.bytes {
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| format!("setup.bytes.{rel}: {e}"))?;
        let path = project.join(rel);
        parent_dirs(&path);
        fs::write(&path, bytes).expect("write bytes");
    }
    for (rel, text) in &setup.files {
        let path = project.join(rel);
        parent_dirs(&path);
        fs::write(&path, text).expect("write file");
    }
    for (rel, target) in &setup.symlink {
        let path = project.join(rel);
        parent_dirs(&path);
        #[cfg(unix)]
        std::os::unix::fs::symlink(target, &path).expect("symlink");
        #[cfg(not(unix))]
        {
            let _ = (target, path);
            return Err("symlinks need a unix platform".into());
        }
    }
    Ok(())
}

/// True when `needle` occurs in `haystack` and, if it ends in a digit, one
/// occurrence is not followed by another digit.
fn contains(haystack: &str, needle: &str) -> bool {
    if !needle.ends_with(|c: char| c.is_ascii_digit()) {
        return haystack.contains(needle);
    }
    haystack.match_indices(needle).any(|(i, _)| !haystack[i + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Runs one case; returns its problems (empty when it passes).
fn run_case(dir: &Path) -> Result<Vec<String>, String> {
    let text = fs::read_to_string(dir.join("case.yaml")).map_err(|e| format!("cannot read case.yaml: {e}"))?;
    let case: Case = serde_yaml::from_str(&text).map_err(|e| format!("bad case.yaml: {e}"))?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let project = tmp.path().join("project");
    copy_dir(dir, &project);
    if let Err(e) = apply_setup(&case.setup, &project) {
        eprintln!("skipping {}: {e}", dir.display());
        return Ok(Vec::new());
    }
    let before = snapshot(&project);
    let args = case.args.clone().unwrap_or_else(|| vec!["validate".into()]);

    let output = Command::new(crate::support::bin())
        .arg("-C")
        .arg(&project)
        .args(&args)
        .env_remove("RUST_BACKTRACE")
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run codex-k8s");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);

    let mut problems = Vec::new();
    match output.status.code() {
        Some(code) if code == case.exit => {}
        Some(code) => problems.push(format!("exit code {code}, expected {}", case.exit)),
        None => problems.push(format!("killed by a signal or timed out, expected exit {}", case.exit)),
    }
    for s in &case.stderr {
        if !contains(&stderr, s) {
            problems.push(format!("stderr lacks {s:?}"));
        }
    }
    for s in &case.stdout {
        if !contains(&stdout, s) {
            problems.push(format!("stdout lacks {s:?}"));
        }
    }
    let settings = crate::snapshots::settings(dir, tmp.path());
    if let Err(e) = crate::snapshots::check(&settings, || insta::assert_snapshot!("stderr", stderr.as_ref())) {
        problems.push(format!(
            "stderr.snap is missing or differs ({e}); `INSTA_UPDATE=always cargo test --test integration corpus` rewrites it, review with `git diff`"
        ));
    }
    if stderr.contains("panicked") || stdout.contains("panicked") {
        problems.push("the tool panicked".into());
    }
    if case.exit != 0 {
        let after = snapshot(&project);
        if after != before {
            let rendered = Path::new("rendered");
            if !before.contains_key(rendered) && after.contains_key(rendered) {
                problems.push("a failing run created rendered/".into());
            }
            let changed: Vec<String> = after
                .keys()
                .chain(before.keys())
                .filter(|k| after.get(*k) != before.get(*k))
                .map(|k| k.display().to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            problems.push(format!("a failing run changed the project: {}", changed.join(", ")));
        }
    }
    if !problems.is_empty() {
        problems.push(format!(
            "command: codex-k8s -C <project> {}\n--- stderr ---\n{}\n--- stdout ---\n{}",
            args.join(" "),
            stderr.trim_end(),
            stdout.trim_end()
        ));
    }
    Ok(problems)
}

#[test]
fn bad_input_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut dirs: Vec<PathBuf> =
        fs::read_dir(&root).expect("tests/cases exists").flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    // CORPUS_FILTER=substring runs only the matching cases.
    let filter = std::env::var("CORPUS_FILTER").ok();
    if filter.is_none() {
        assert!(dirs.len() >= MIN_CASES, "only {} cases under {}", dirs.len(), root.display());
    }

    let mut failures = Vec::new();
    let mut ran = 0;
    for dir in &dirs {
        let name = dir.file_name().expect("name").to_string_lossy().into_owned();
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        ran += 1;
        match run_case(dir) {
            Ok(problems) if problems.is_empty() => {}
            Ok(problems) => failures.push(format!("=== {name}\n  - {}", problems.join("\n  - "))),
            Err(e) => failures.push(format!("=== {name}\n  - {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} corpus case(s) failed:\n{}\n\nfailing: {}",
        failures.len(),
        failures.join("\n\n"),
        failures
            .iter()
            .map(|f| f.lines().next().unwrap_or_default().trim_start_matches("=== "))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

#[test]
fn location_matching_respects_digit_boundaries() {
    assert!(contains("  --> services.yaml:1:1\n", "services.yaml:1:1"));
    assert!(!contains("  --> services.yaml:1:12\n", "services.yaml:1:1"));
    assert!(contains("a:1:12 and a:1:1", "a:1:1"));
    assert!(contains("services.yaml:10:", "services.yaml:10:"));
}
