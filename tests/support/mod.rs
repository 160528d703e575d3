//! Helpers shared by the integration tests: a copy of the bundled example
//! project in a temporary git repository, running the built `codex-k8s`
//! binary and the `git` CLI in it, reading rendered trees, and the external
//! validators (`kubectl`, `kubernetes-validate`, the upstream CRD schemas).

#![allow(dead_code)] // each test module uses a different subset

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use serde::Deserialize as _;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use tempfile::TempDir;

/// The files and directories of the bundled example project (the repository root).
pub const EXAMPLE: &[&str] = &["services.yaml", "environments", "manifests", "partials"];

/// The identity every commit in the tests is made with (CLI and libgit2 alike).
pub const GIT_IDENTITY: &[(&str, &str)] = &[
    ("GIT_AUTHOR_NAME", "Test Author"),
    ("GIT_AUTHOR_EMAIL", "author@example.com"),
    ("GIT_COMMITTER_NAME", "Test Committer"),
    ("GIT_COMMITTER_EMAIL", "committer@example.com"),
];

/// How long one `codex-k8s` invocation may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(180);

/// The binary under test: `CODEX_K8S_BIN` when set (an older build, to see
/// which tests it fails), else the one cargo built for this test run.
pub fn bin() -> PathBuf {
    match std::env::var_os("CODEX_K8S_BIN") {
        Some(path) => PathBuf::from(path),
        None => assert_cmd::cargo::cargo_bin("codex-k8s"),
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Order in which the example's files are created in the copy (the
/// renderer's output must not depend on file-system order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyOrder {
    Sorted,
    Reversed,
}

/// A project in its own temporary directory.
pub struct Project {
    _tmp: TempDir,
    pub root: PathBuf,
}

impl Project {
    /// The bundled example, copied into a fresh git repository on `main`
    /// with one commit holding the sources (no `rendered/` yet).
    pub fn example() -> Self {
        Self::example_copied(CopyOrder::Sorted)
    }

    /// Like [`Project::example`], with the files created in the given order.
    pub fn example_copied(order: CopyOrder) -> Self {
        let project = Self::empty();
        for item in ordered(EXAMPLE.iter().map(|s| s.to_string()).collect(), order) {
            copy_path(&repo_root().join(&item), &project.root.join(&item), order);
        }
        project.git(&["init", "-q", "-b", "main"]);
        project.git(&["add", "-A"]);
        project.git(&["commit", "-q", "-m", "example project"]);
        project
    }

    /// An empty directory (for clones).
    pub fn empty() -> Self {
        let tmp = tempfile::Builder::new().prefix("codex-k8s-test-").tempdir().expect("tempdir");
        let root = tmp.path().join("project");
        fs::create_dir_all(&root).expect("create project dir");
        Project { _tmp: tmp, root }
    }

    /// A clone of `remote` (a path) in a fresh temporary directory.
    pub fn clone_of(remote: &Path) -> Self {
        let tmp = tempfile::Builder::new().prefix("codex-k8s-clone-").tempdir().expect("tempdir");
        let root = tmp.path().join("clone");
        git_in(tmp.path(), &["clone", "-q", &remote.display().to_string(), "clone"]);
        Project { _tmp: tmp, root }
    }

    /// A clone of `url` made with extra `git clone` arguments (`--depth 1`,
    /// `--branch B`, …) in a fresh temporary directory. Shallow clones of a
    /// local repository need a `file://` URL.
    pub fn clone_with(url: &str, args: &[&str]) -> Self {
        let tmp = tempfile::Builder::new().prefix("codex-k8s-clone-").tempdir().expect("tempdir");
        let root = tmp.path().join("clone");
        let mut all = vec!["clone", "-q"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[url, "clone"]);
        git_in(tmp.path(), &all);
        Project { _tmp: tmp, root }
    }

    /// The repository `name` inside `tmp` (kept alive with the project).
    pub fn at(tmp: TempDir, name: &str) -> Self {
        let root = tmp.path().join(name);
        Project { _tmp: tmp, root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `codex-k8s -C <project>` with the test identity, no colour and no progress bar.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.arg("-C").arg(&self.root);
        cmd.envs(GIT_IDENTITY.iter().copied());
        cmd.env("NO_COLOR", "1").env("CI", "1").env_remove("RUST_BACKTRACE").timeout(TIMEOUT);
        cmd
    }

    /// Runs `codex-k8s -C <project> ARGS` and returns whatever happened.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    pub fn run_with(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut cmd = self.cmd();
        cmd.args(args).envs(envs.iter().copied());
        Run::from_output(format!("codex-k8s {}", args.join(" ")), cmd.output().expect("run codex-k8s"))
    }

    /// Runs `codex-k8s` and requires exit 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        self.run(args).expect_code(0)
    }

    /// Runs the `git` CLI in the project; requires exit 0 and returns stdout.
    pub fn git(&self, args: &[&str]) -> String {
        git_in(&self.root, args)
    }

    /// Runs the `git` CLI in the project with extra environment variables.
    pub fn git_with(&self, args: &[&str], envs: &[(&str, &str)]) -> String {
        git_with_env(&self.root, args, envs)
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("create parent");
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {rel}: {e}"));
    }

    /// Replaces `from` (which must occur exactly once) with `to` in a file.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert_eq!(text.matches(from).count(), 1, "{rel} must contain {from:?} exactly once");
        self.write(rel, &text.replacen(from, to, 1));
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Every file below `rel` (path relative to `rel` → bytes).
    pub fn snapshot(&self, rel: &str) -> Tree {
        snapshot(&self.path(rel))
    }

    /// Every file of the project except `.git/`.
    pub fn snapshot_worktree(&self) -> Tree {
        let mut tree = snapshot(&self.root);
        tree.retain(|path, _| !path.starts_with(".git/"));
        tree
    }

    /// The rendered target directories (`staging`, `dev`, `ai/pr-1`, …) under `rendered/`.
    pub fn targets(&self) -> Vec<String> {
        target_dirs(&self.path("rendered"))
    }

    /// The object files of one target (`rendered/<target>`), sorted.
    pub fn object_files(&self, target: &str) -> Vec<PathBuf> {
        object_files(&self.path(&format!("rendered/{target}")))
    }

    /// The objects of one target, each with its path relative to the target dir.
    pub fn objects(&self, target: &str) -> Vec<(String, Yaml)> {
        let dir = self.path(&format!("rendered/{target}"));
        object_files(&dir)
            .into_iter()
            .map(|file| {
                let rel = file.strip_prefix(&dir).expect("below target").display().to_string();
                (rel, read_single_yaml(&file))
            })
            .collect()
    }

    /// `rendered/<target>/.codex-k8s/target.json`.
    pub fn target_json(&self, target: &str) -> Json {
        serde_json::from_str(&self.read(&format!("rendered/{target}/.codex-k8s/target.json")))
            .expect("target.json is JSON")
    }

    /// The commit count of `rev` (`git rev-list --count`).
    pub fn commit_count(&self, rev: &str) -> usize {
        self.git(&["rev-list", "--count", rev]).trim().parse().expect("a count")
    }

    /// `git fsck --strict` must pass (dangling objects are fine, errors are not).
    pub fn assert_fsck_clean(&self) {
        assert_fsck_clean(&self.root);
    }

    /// `git status --porcelain` must be empty.
    pub fn assert_status_clean(&self) {
        let status = self.git(&["status", "--porcelain", "--untracked-files=all"]);
        assert!(status.is_empty(), "the work tree or index is not clean:\n{status}");
    }
}

/// One finished `codex-k8s` run.
pub struct Run {
    pub cmdline: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(cmdline: String, out: Output) -> Self {
        Run {
            cmdline,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Requires this exit code (and no panic); shows the whole run otherwise.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self}");
        assert!(!self.stderr.contains("panicked"), "the tool panicked\n{self}");
        self
    }

    /// stdout and stderr together (for messages that may go to either).
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$ {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.code,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

// ---------------------------------------------------------------- files

/// A directory's files: path relative to the root (with `/`) → bytes.
pub type Tree = BTreeMap<String, Vec<u8>>;

pub fn snapshot(root: &Path) -> Tree {
    let mut tree = Tree::new();
    if !root.exists() {
        return tree;
    }
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.expect("walk");
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(root).expect("below root");
            let rel = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            tree.insert(rel, fs::read(entry.path()).expect("read"));
        }
    }
    tree
}

/// Fails with the list of paths that differ between two trees.
#[track_caller]
pub fn assert_same_tree(left: &Tree, right: &Tree, what: &str) {
    let differing: Vec<String> = left
        .keys()
        .chain(right.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| left.get(*k) != right.get(*k))
        .map(|k| match (left.get(k), right.get(k)) {
            (Some(_), None) => format!("only on the left:  {k}"),
            (None, Some(_)) => format!("only on the right: {k}"),
            _ => format!("differs:           {k}"),
        })
        .collect();
    assert!(differing.is_empty(), "{what}: {} path(s) differ:\n  {}", differing.len(), differing.join("\n  "));
}

fn ordered(mut names: Vec<String>, order: CopyOrder) -> Vec<String> {
    names.sort();
    if order == CopyOrder::Reversed {
        names.reverse();
    }
    names
}

fn copy_path(from: &Path, to: &Path, order: CopyOrder) {
    let meta = fs::metadata(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    if meta.is_dir() {
        fs::create_dir_all(to).expect("create dir");
        let names = fs::read_dir(from)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        for name in ordered(names, order) {
            copy_path(&from.join(&name), &to.join(&name), order);
        }
    } else {
        fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// Target directories below a rendered tree: every directory holding a
/// `.codex-k8s/target.json` (`staging`, `ai/pr-1`, …), sorted.
pub fn target_dirs(rendered: &Path) -> Vec<String> {
    let mut targets: Vec<String> = walkdir::WalkDir::new(rendered)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name() == "target.json")
        .filter_map(|e| {
            let target = e.path().parent()?.parent()?;
            Some(target.strip_prefix(rendered).ok()?.display().to_string())
        })
        .collect();
    targets.sort();
    targets
}

/// The object files of a target directory: every `.yaml` below a stage
/// directory except the `kustomization.yaml` files, sorted.
pub fn object_files(target_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(target_dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .filter(|p| !p.strip_prefix(target_dir).expect("below").starts_with(".codex-k8s"))
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------- YAML

/// Every non-empty document of a YAML stream.
pub fn yaml_documents(text: &str) -> Vec<Yaml> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Yaml::deserialize(doc).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{text}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// A file holding exactly one YAML document.
pub fn read_single_yaml(path: &Path) -> Yaml {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut docs = yaml_documents(&text);
    assert_eq!(docs.len(), 1, "{} must hold exactly one object", path.display());
    docs.remove(0)
}

pub fn yaml_to_json(value: &Yaml) -> Json {
    serde_json::to_value(value).expect("YAML with string keys converts to JSON")
}

/// `value[a][b]…` as a string, if present.
pub fn str_at<'a>(value: &'a Yaml, path: &[&str]) -> Option<&'a str> {
    let mut v = value;
    for key in path {
        v = v.get(*key)?;
    }
    v.as_str()
}

/// `(apiVersion, kind, namespace, name)` of an object.
pub fn identity(object: &Yaml) -> (String, String, String, String) {
    let s = |path: &[&str]| str_at(object, path).unwrap_or_default().to_owned();
    (s(&["apiVersion"]), s(&["kind"]), s(&["metadata", "namespace"]), s(&["metadata", "name"]))
}

pub fn label<'a>(object: &'a Yaml, key: &str) -> Option<&'a str> {
    str_at(object, &["metadata", "labels", key])
}

pub fn annotation<'a>(object: &'a Yaml, key: &str) -> Option<&'a str> {
    str_at(object, &["metadata", "annotations", key])
}

// ---------------------------------------------------------------- git

fn git_command(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("git");
    cmd.current_dir(dir).envs(GIT_IDENTITY.iter().copied());
    // Keep the developer's global config (signing, hooks, templates) out of the tests.
    cmd.env("GIT_CONFIG_NOSYSTEM", "1").env("GIT_CONFIG_GLOBAL", "/dev/null");
    cmd
}

/// Runs the `git` CLI in `dir`; requires exit 0 and returns stdout.
pub fn git_in(dir: &Path, args: &[&str]) -> String {
    git_with_env(dir, args, &[])
}

pub fn git_with_env(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = git_command(dir).args(args).envs(envs.iter().copied()).output().expect("run git");
    assert!(
        out.status.success(),
        "git {} failed in {}:\n{}{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("git output is UTF-8")
}

pub fn assert_fsck_clean(dir: &Path) {
    let out = git_command(dir).args(["fsck", "--strict", "--no-progress"]).output().expect("run git fsck");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "git fsck --strict failed in {}:\n{stdout}{stderr}", dir.display());
    let problems: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| !l.starts_with("dangling ") && !l.starts_with("Checking ") && !l.trim().is_empty())
        .collect();
    assert!(problems.is_empty(), "git fsck --strict reports problems in {}:\n{}", dir.display(), problems.join("\n"));
}

/// The trailers of a commit message, parsed by `git interpret-trailers --parse`.
pub fn trailers(dir: &Path, message: &str) -> BTreeMap<String, String> {
    use std::io::Write as _;
    let mut child = git_command(dir)
        .args(["interpret-trailers", "--parse"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run git interpret-trailers");
    child.stdin.take().expect("stdin").write_all(message.as_bytes()).expect("write message");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "git interpret-trailers failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

// ---------------------------------------------------------------- external validators

/// Finds an external tool. CI installs every tool, so a missing one fails the
/// test; set `CODEX_K8S_SKIP_MISSING_TOOLS=1` to skip (loudly) on a workstation.
pub fn require_tool(name: &str, install_hint: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
        .unwrap_or_default();
    match found {
        Some(path) => Some(path),
        None if std::env::var_os("CODEX_K8S_SKIP_MISSING_TOOLS").is_some() => {
            eprintln!("\n!!!!!!!! SKIPPED: `{name}` is not on PATH ({install_hint}) !!!!!!!!\n");
            None
        }
        None => panic!(
            "`{name}` is not on PATH: {install_hint} (or set CODEX_K8S_SKIP_MISSING_TOOLS=1 to skip this test locally)"
        ),
    }
}

/// The upstream CRD schemas under tests/schemas/crds, as strict JSON Schemas
/// keyed by `(group/version, kind)`.
pub fn crd_schemas() -> BTreeMap<(String, String), Json> {
    let dir = repo_root().join("tests/schemas/crds");
    let mut schemas = BTreeMap::new();
    for entry in fs::read_dir(&dir).expect("tests/schemas/crds") {
        let path = entry.expect("entry").path();
        for crd in yaml_documents(&fs::read_to_string(&path).expect("read CRD")) {
            let crd = yaml_to_json(&crd);
            assert_eq!(crd["kind"], "CustomResourceDefinition", "{}", path.display());
            let group = crd["spec"]["group"].as_str().expect("spec.group");
            let kind = crd["spec"]["names"]["kind"].as_str().expect("spec.names.kind");
            for version in crd["spec"]["versions"].as_array().expect("spec.versions") {
                let name = version["name"].as_str().expect("version name");
                let mut schema = version["schema"]["openAPIV3Schema"].clone();
                assert!(schema.is_object(), "{}: {kind} {name} has no openAPIV3Schema", path.display());
                close_object_schemas(&mut schema);
                schemas.insert((format!("{group}/{name}"), kind.to_owned()), schema);
            }
        }
    }
    schemas
}

/// Makes an OpenAPI v3 structural schema reject unknown fields, as the API
/// server's pruning would drop them: every object schema with `properties`
/// gets `additionalProperties: false` unless it says otherwise or preserves
/// unknown fields.
fn close_object_schemas(schema: &mut Json) {
    let Some(map) = schema.as_object_mut() else { return };
    if let Some(Json::Object(props)) = map.get_mut("properties") {
        for prop in props.values_mut() {
            close_object_schemas(prop);
        }
    }
    if let Some(items) = map.get_mut("items") {
        close_object_schemas(items);
    }
    if let Some(additional @ Json::Object(_)) = map.get_mut("additionalProperties") {
        close_object_schemas(additional);
    }
    let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Json::Bool(true));
    if map.contains_key("properties") && !map.contains_key("additionalProperties") && !preserves {
        map.insert("additionalProperties".into(), Json::Bool(false));
    }
}

/// Waits for a child with a deadline (300 s), killing it when it hangs.
pub fn wait_child(mut child: std::process::Child, what: &str) -> Run {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while child.try_wait().expect("try_wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish in 300s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Run::from_output(what.to_owned(), child.wait_with_output().expect("output"))
}
