//! Issue 28: inputs stay inside the project (class 1), and every field read
//! from the tree or from a person's message is checked before it is printed
//! or committed (class 5).
//!
//! Each test builds a tiny project beside a directory "outside" it that
//! holds a secret in a file that does not parse, so a run that read it would
//! quote it in its error.

use std::fs;
use std::path::Path;

use crate::support::{git_in, Project, Run};

const SERVICES: &str = r#"apiVersion: codex-k8s.io/v1alpha1
kind: ServiceStack
project: shop
templates:
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
const MANIFEST: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api\ndata:\n  x: {{ quoted(vars.x) }}\n";

/// What the file outside the project holds: not YAML, not a template.
const SECRET: &str = "TOKEN: [hunter2-outside {{ %}\n";
const SECRET_WORD: &str = "hunter2";

/// The tiny project in a git repository, plus `../outside/` holding the
/// secret as `secret.yaml` and as `environments/dev.yaml`.
fn project() -> Project {
    let p = Project::empty();
    p.write("services.yaml", SERVICES);
    p.write("environments/dev.yaml", DEV);
    p.write("partials/quote.j2", PARTIAL);
    p.write("manifests/api.yaml.j2", MANIFEST);
    p.git(&["init", "-q", "-b", "main"]);
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "tiny project"]);
    let outside = outside(&p);
    fs::create_dir_all(outside.join("environments")).unwrap();
    fs::write(outside.join("secret.yaml"), SECRET).unwrap();
    fs::write(outside.join("environments/dev.yaml"), SECRET).unwrap();
    p
}

fn outside(p: &Project) -> std::path::PathBuf {
    p.root.parent().unwrap().join("outside")
}

/// Replaces `rel` (file or directory) by a symlink to `target`.
fn link(p: &Project, rel: &str, target: &Path) {
    let path = p.path(rel);
    if path.is_dir() {
        fs::remove_dir_all(&path).unwrap();
    } else if path.symlink_metadata().is_ok() {
        fs::remove_file(&path).unwrap();
    }
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, &path).unwrap();
}

fn assert_refused(run: &Run, fragments: &[&str]) {
    assert_ne!(run.code, Some(0), "must fail\n{run}");
    assert!(!run.stderr.contains(SECRET_WORD), "printed a file outside the project\n{run}");
    assert!(!run.stderr.contains("PATH="), "printed the environment\n{run}");
    assert!(!run.stderr.contains("panicked"), "{run}");
    for f in fragments {
        assert!(run.stderr.contains(f), "stderr lacks {f:?}\n{run}");
    }
}

#[test]
fn no_input_is_read_through_a_link_that_leaves_the_project() {
    let render: &[&str] = &["render", "--env", "dev", "--stdout"];
    // (what is linked, where it points, extra setup, the arguments, what stderr names)
    type Setup = fn(&Project);
    let cases: Vec<(&str, &str, Setup, Vec<&str>, &str)> = vec![
        ("services.yaml", "secret.yaml", |_| {}, vec!["validate"], "services.yaml"),
        ("services.yaml", "/proc/self/environ", |_| {}, vec!["validate"], "services.yaml"),
        ("environments/dev.yaml", "secret.yaml", |_| {}, vec!["validate"], "environments/dev.yaml"),
        ("environments/dev.yaml", "/proc/self/environ", |_| {}, vec!["validate"], "environments/dev.yaml"),
        ("environments", "environments", |_| {}, vec!["validate"], "environments"),
        ("partials/quote.j2", "secret.yaml", |_| {}, render.to_vec(), "partials/quote.j2"),
        ("manifests/api.yaml.j2", "secret.yaml", |_| {}, render.to_vec(), "manifests/api.yaml.j2"),
        (
            "parts/extra.yaml",
            "secret.yaml",
            |p| p.edit("services.yaml", "versions:", "imports: [parts/extra.yaml]\nversions:"),
            vec!["validate"],
            "parts/extra.yaml",
        ),
        (
            "values.yaml",
            "secret.yaml",
            |_| {},
            vec!["render", "--env", "dev", "--stdout", "--values", "values.yaml"],
            "values.yaml",
        ),
        (
            "values.yaml",
            "/proc/self/environ",
            |_| {},
            vec!["render", "--env", "dev", "--stdout", "--values", "values.yaml"],
            "values.yaml",
        ),
    ];
    for (rel, target, setup, args, names) in cases {
        let p = project();
        setup(&p);
        let target = if target.starts_with('/') { Path::new(target).to_path_buf() } else { outside(&p).join(target) };
        link(&p, rel, &target);
        let mut cmd = p.cmd();
        cmd.args(&args).env("CODEX_K8S_TEST_SECRET", SECRET_WORD);
        let run = Run::from_output(format!("{rel} -> {}", target.display()), cmd.output().unwrap());
        assert_refused(&run, &[names, "leads outside the project directory"]);
        assert!(!p.exists("rendered"), "{run}");
    }
}

#[test]
fn a_values_file_outside_the_project_is_refused_and_one_inside_is_read() {
    let p = project();
    let file = outside(&p).join("values.yaml");
    fs::write(&file, "vars: {x: from-outside}\n").unwrap();
    let run = p.run(&["render", "--env", "dev", "--stdout", "--values", &file.display().to_string()]);
    assert_refused(&run, &["values.yaml", "outside the project directory"]);
    p.write("values.yaml", "vars: {x: from-inside}\n");
    let run = p.ok(&["render", "--env", "dev", "--stdout", "--values", "values.yaml"]);
    assert!(run.stdout.contains("from-inside"), "{run}");
}

#[test]
fn a_link_that_stays_inside_the_project_is_still_followed() {
    let p = project();
    p.write("shared/quote.j2", PARTIAL);
    link(&p, "partials/quote.j2", Path::new("../shared/quote.j2"));
    link(&p, "environments/dev.yaml", Path::new("../shared/dev.yaml"));
    p.write("shared/dev.yaml", DEV);
    let run = p.ok(&["render", "--env", "dev", "--stdout"]);
    assert!(run.stdout.contains("plain"), "{run}");
}

#[test]
fn nothing_under_dot_git_is_readable_by_templates() {
    // (the partials entry, a link to make first)
    let cases: &[(&str, Option<(&str, &str)>)] = &[
        (".git/config", None),
        ("./.git/config", None),
        (".git/HEAD", None),
        ("partials/cfg.j2", Some(("partials/cfg.j2", "../.git/config"))),
        ("partials/git/config", Some(("partials/git", "../.git"))),
    ];
    for (entry, link_to) in cases {
        let p = project();
        if let Some((rel, target)) = link_to {
            link(&p, rel, Path::new(target));
        }
        p.edit("services.yaml", "partials: [\"partials/*.j2\"]", &format!("partials: [\"partials/*.j2\", {entry:?}]"));
        p.write("manifests/api.yaml.j2", &format!("{MANIFEST}  c: |\n    {{% include {entry:?} %}}\n"));
        let run = p.run(&["render", "--env", "dev", "--stdout"]);
        assert_refused(&run, &[".git"]);
        assert!(!run.stderr.contains("[core]"), "printed .git/config\n{run}");
        assert!(run.stdout.is_empty(), "{run}");
    }
}

#[test]
fn image_build_paths_stay_inside_the_project() {
    let bad = [
        ("context", "/"),
        ("context", "../.."),
        ("context", "app/../../x"),
        ("dockerfile", "/etc/passwd"),
        ("dockerfile", "../Dockerfile"),
        ("dockerfile", ".git/config"),
    ];
    for (key, value) in bad {
        let p = project();
        p.edit(
            "services.yaml",
            "versions:",
            &format!("images:\n  api:\n    repository: r.example.com/api\n    tag: \"1\"\n    build: {{{key}: {value:?}}}\nversions:"),
        );
        let run = p.run(&["validate"]);
        assert_refused(&run, &["services.yaml:", &format!("images.api.build.{key}")]);
    }
    let p = project();
    p.edit(
        "services.yaml",
        "versions:",
        "images:\n  api:\n    repository: r.example.com/api\n    tag: \"1\"\n    build: {context: app, dockerfile: app/Dockerfile.prod}\nversions:",
    );
    p.ok(&["validate"]);
}

#[test]
fn an_error_quotes_one_escaped_bounded_line_of_a_file_inside_the_project() {
    let p = project();
    let long = "y".repeat(5_000);
    p.write("environments/dev.yaml", &format!("namespace: shop-dev\nbogus: \"\x1b[31mred\r{long}\"\n"));
    let run = p.run(&["validate"]);
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("environments/dev.yaml:2"), "{run}");
    assert!(!run.stderr.contains('\x1b'), "an escape sequence reached the terminal\n{run}");
    assert!(!run.stderr.contains('\r'), "{run}");
    assert!(run.stderr.contains("\\u{1b}[31mred"), "{run}");
    assert!(run.stderr.len() < 2_000, "the quoted line is not bounded ({} bytes)", run.stderr.len());
    let _ = git_in;
}

#[test]
fn a_link_committed_in_a_source_revision_is_not_read_either() {
    let cases = [
        ("services.yaml", false, "is a symlink"),
        ("environments/dev.yaml", false, "leads outside the project directory"),
        ("environments/dev.yaml", true, "leads outside the project directory"),
        ("partials/quote.j2", false, "leads outside the project directory"),
    ];
    for (rel, absolute, says) in cases {
        let p = project();
        let target =
            if absolute { Path::new("/proc/self/environ").to_path_buf() } else { outside(&p).join("secret.yaml") };
        link(&p, rel, &target);
        p.git(&["add", "-A"]);
        p.git(&["commit", "-q", "-m", "a link out"]);
        // Restore the work tree, so only the revision holds the link.
        p.git(&["checkout", "-q", "HEAD~1", "--", "."]);
        let mut cmd = p.cmd();
        cmd.args(["diff", "--source-base", "HEAD~1", "--source-head", "HEAD"])
            .env("CODEX_K8S_TEST_SECRET", SECRET_WORD);
        let run = Run::from_output(format!("diff with {rel} -> {}", target.display()), cmd.output().unwrap());
        assert_refused(&run, &[rel, says]);
    }
}

// Class 5: fields read from the tree or a person's message.

/// The project with slot `ai/s1` rendered and committed.
fn with_slot() -> Project {
    let p = project();
    p.ok(&["render", "--env", "ai", "--slot", "s1", "--commit"]);
    p
}

const META: &str = "rendered/ai/s1/.codex-k8s/target.json";

/// `target.json` of `ai/s1` with `field` replaced by `value`.
fn forge_meta(p: &Project, field: &str, value: &str) {
    let mut meta: serde_json::Value = serde_json::from_str(&p.read(META)).unwrap();
    meta[field] = serde_json::Value::from(value);
    p.write(META, &meta.to_string());
}

#[test]
fn slots_list_prints_only_checked_fields_and_slot_names() {
    let forged = [
        ("namespace", "Evil\nFORGED-LINE"),
        ("namespace", "x\u{1b}[2J"),
        ("host", "a.example.com\nFORGED-LINE: yes"),
        ("host", "a.example.com\u{2028}FORGED-LINE"),
        ("runId", "r1\rFORGED-LINE"),
    ];
    for (field, value) in forged {
        let p = with_slot();
        forge_meta(&p, field, value);
        let forged_line = |text: &str| text.lines().any(|l| l.trim_start().starts_with("FORGED-LINE"));
        let run = p.ok(&["slots", "list"]);
        assert!(!forged_line(&run.output()), "{field}={value:?} added a line\n{run}");
        assert!(!run.output().contains(['\u{1b}', '\r', '\u{2028}']), "{run}");
        assert!(run.stdout.contains("ai/s1"), "the slot is still listed\n{run}");
        assert!(run.stderr.contains("target.json"), "the bad file is named\n{run}");
        let run = p.ok(&["slots", "list", "--format", "json"]);
        let list: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let slot = &list[0];
        assert_eq!(slot["slot"], "s1", "{run}");
        for key in ["namespace", "host", "runId"] {
            assert!(!slot[key].to_string().contains("FORGED"), "{key} printed unchecked\n{run}");
        }
        assert!(slot["problem"].as_str().is_some_and(|p| !p.contains(['\n', '\r'])), "{run}");
    }
    // Directories that are not slot names are not slots.
    let p = with_slot();
    for dir in ["Not_A_Slot", "x\ny", "-lead"] {
        p.write(&format!("rendered/ai/{dir}/.codex-k8s/target.json"), &p.read(META));
    }
    let run = p.ok(&["slots", "list"]);
    assert!(
        !run.stdout.contains("Not_A_Slot") && !run.stdout.contains("-lead") && !run.stdout.contains("x\ny"),
        "{run}"
    );
    assert!(run.stdout.contains("ai/s1"), "{run}");
}

#[test]
fn a_removal_reason_or_a_commit_message_cannot_add_lines_or_trailers() {
    let forged = [
        "closed\n\nSource-Ref: refs/heads/other",
        "closed\nSource-Ref: refs/heads/other",
        "closed\rSource-Ref: x",
        "closed\u{85}Source-Ref: x",
        "closed\u{2028}Source-Ref: x",
        "closed\u{1b}[2J",
    ];
    for text in forged {
        let p = with_slot();
        let before = p.git(&["rev-parse", "HEAD"]);
        let run = p.run(&["slots", "remove", "--env", "ai", "--slot", "s1", "--commit", "--reason", text]);
        assert_ne!(run.code, Some(0), "{text:?}\n{run}");
        assert!(run.stderr.contains("--reason"), "{run}");
        assert_eq!(p.git(&["rev-parse", "HEAD"]), before, "a commit was made\n{run}");
        assert!(p.exists(META), "the slot was removed\n{run}");
        p.edit("environments/dev.yaml", "plain", "changed");
        let run = p.run(&["render", "--env", "dev", "--commit", "-m", text]);
        assert_ne!(run.code, Some(0), "{text:?}\n{run}");
        assert!(run.stderr.contains("-m"), "{run}");
        assert_eq!(p.git(&["rev-parse", "HEAD"]), before, "a commit was made\n{run}");
        assert!(!p.exists("rendered/dev"), "{run}");
    }
    // One line of text still works, and lands as written.
    let p = with_slot();
    p.ok(&["slots", "remove", "--env", "ai", "--slot", "s1", "--commit", "--reason", "pull request #7 closed: done"]);
    let message = p.git(&["log", "-1", "--format=%B"]);
    assert!(message.contains("Reason: pull request #7 closed: done"), "{message}");
}

// Class 3: namespace isolation with each slot's recorded overrides.

/// The project with a slot namespace a value can move:
/// `shop-ai-{{ vars.ns or slot }}`.
fn movable() -> Project {
    let p = project();
    p.edit(
        "services.yaml",
        "namespace: \"shop-ai-{{ slot }}\"\n    vars: {x: plain}",
        "namespace: \"shop-ai-{{ vars.ns or slot }}\"\n    vars: {x: plain, ns: \"\"}",
    );
    p.git(&["commit", "-qam", "movable namespace"]);
    p
}

#[test]
fn a_recorded_override_that_moves_a_slot_onto_another_is_a_clash_in_every_mode() {
    let p = movable();
    // s2 records `vars.ns=s1`: its namespace is shop-ai-s1.
    p.ok(&["render", "--env", "ai", "--slot", "s2", "--set", "vars.ns=s1"]);
    assert_eq!(p.target_json("ai/s2")["namespace"], "shop-ai-s1");
    let modes: &[&[&str]] = &[
        &["render", "--env", "ai", "--slot", "s1"],
        &["render", "--env", "ai", "--slot", "s1", "--force"],
        &["render", "--env", "ai", "--slot", "s1", "--commit"],
    ];
    for args in modes {
        let run = p.run(args);
        assert_eq!(run.code, Some(1), "{run}");
        assert!(run.stderr.contains("both render namespace `shop-ai-s1`"), "{run}");
        assert!(!p.exists("rendered/ai/s1"), "{run}");
    }
    // The same pair already in the tree (written by hand): --all, --check
    // and --all --force see it.
    fs::create_dir_all(p.path("rendered/ai/s1")).unwrap();
    let other = p.read("rendered/ai/s2/.codex-k8s/target.json");
    let mut meta: serde_json::Value = serde_json::from_str(&other).unwrap();
    meta["slot"] = "s1".into();
    meta["sets"] = serde_json::json!({});
    p.write("rendered/ai/s1/.codex-k8s/target.json", &meta.to_string());
    for args in [&["render", "--all"][..], &["render", "--all", "--check"], &["render", "--all", "--force"]] {
        let run = p.run(args);
        assert_ne!(run.code, Some(0), "{run}");
        assert!(run.stderr.contains("both render namespace `shop-ai-s1`"), "{run}");
    }
}

#[test]
fn a_recorded_override_that_moves_a_slot_away_frees_its_namespace_in_every_mode() {
    let p = movable();
    // s1 records `vars.ns=elsewhere`: shop-ai-s1 is free.
    p.ok(&["render", "--env", "ai", "--slot", "s1", "--set", "vars.ns=elsewhere"]);
    assert_eq!(p.target_json("ai/s1")["namespace"], "shop-ai-elsewhere");
    p.ok(&["render", "--env", "ai", "--slot", "s3", "--set", "vars.ns=s1"]);
    assert_eq!(p.target_json("ai/s3")["namespace"], "shop-ai-s1");
    for args in [
        &["render", "--env", "ai", "--slot", "s3"][..],
        &["render", "--env", "ai", "--slot", "s3", "--force"],
        &["render", "--env", "ai", "--slot", "s1", "--check"],
        &["render", "--all"],
        &["render", "--all", "--check"],
        &["render", "--all", "--force"],
    ] {
        p.ok(args);
    }
    p.ok(&["render", "--all", "--commit"]);
}

// Class 2: recorded overrides round-trip, or are refused before anything is written.

#[test]
fn every_recorded_override_round_trips_or_is_refused_before_anything_is_written() {
    // (values file, what stderr names) for values no record can hold.
    let refused = [
        ("vars: {m: {\"\": x}}\n", "empty key"),
        ("vars: {f: .inf}\n", "finite"),
        ("vars: {f: -.inf}\n", "finite"),
        ("vars: {f: .nan}\n", "finite"),
        ("vars: {l: [1, .nan]}\n", "finite"),
    ];
    for (values, says) in refused {
        let p = project();
        p.write("values.yaml", values);
        let run = p.run(&["render", "--env", "ai", "--slot", "s1", "--values", "values.yaml"]);
        assert_eq!(run.code, Some(1), "{values}\n{run}");
        assert!(run.stderr.contains(says), "{values}\n{run}");
        assert!(!p.exists("rendered"), "{values}\n{run}");
    }
    // Values that must come back exactly from the record, through a second
    // render that reads only `target.json`.
    let kept = [
        ("vars: {big: 123456789012345678901234567890}\n", "big", serde_json::json!("123456789012345678901234567890")),
        ("vars: {big: 18446744073709551615}\n", "big", serde_json::json!(18446744073709551615u64)),
        ("vars: {m: {\"a.b\": 1}}\n", "m", serde_json::json!({"a.b": 1})),
        ("vars: {m: {\"a[0]\": x, \"k=v\": y}}\n", "m", serde_json::json!({"a[0]": "x", "k=v": "y"})),
    ];
    for (values, key, want) in kept {
        let p = project();
        p.write("values.yaml", values);
        p.write("manifests/api.yaml.j2", &format!("{MANIFEST}  v: {{{{ vars.{key} | tojson | quote }}}}\n"));
        let first = p.run(&["render", "--env", "ai", "--slot", "s1", "--values", "values.yaml", "--stdout"]);
        p.ok(&["render", "--env", "ai", "--slot", "s1", "--values", "values.yaml"]);
        p.ok(&["render", "--all"]);
        let run = p.ok(&["render", "--env", "ai", "--slot", "s1", "--stdout"]);
        let got = |run: &Run| -> serde_json::Value {
            let docs = crate::support::yaml_documents(&run.stdout);
            let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap_or_else(|| panic!("{run}"));
            serde_json::from_str(cm["data"]["v"].as_str().unwrap()).unwrap()
        };
        assert_eq!(got(&first), want, "{values}: first render\n{first}");
        assert_eq!(got(&run), want, "{values}: read back from target.json\n{run}");
    }
}

// Class 4: every input is bounded.

#[test]
fn set_paths_are_bounded_in_indices_and_depth() {
    let p = project();
    let wide = format!("vars.a{}=1", "[65536]".repeat(300));
    let deep = format!("vars.a{}=1", "[0]".repeat(40_000));
    let sum = "vars.a[40000][40000]=1".to_owned();
    for (set, says) in [(wide, "indices"), (deep, "deeper than"), (sum, "indices")] {
        let run = p.run(&["render", "--env", "dev", "--stdout", "--set", &set]);
        assert_eq!(run.code, Some(1), "{run}");
        assert!(run.stderr.contains(says), "{}", &run.stderr[..run.stderr.len().min(400)]);
    }
    // The same paths recorded in a committed target.json are refused by `render --all`.
    let p = with_slot();
    let mut meta: serde_json::Value = serde_json::from_str(&p.read(META)).unwrap();
    meta["sets"] = serde_json::json!({ format!("vars.a{}", "[65536]".repeat(300)): 1 });
    p.write(META, &meta.to_string());
    let run = p.run(&["render", "--all"]);
    assert_eq!(run.code, Some(1), "{}", &run.stderr[..run.stderr.len().min(400)]);
    assert!(run.stderr.contains("target.json"), "{}", &run.stderr[..run.stderr.len().min(400)]);
    p.ok(&["render", "--env", "ai", "--slot", "s2", "--set", "vars.a[3][2]=1"]);
}

#[test]
fn a_values_file_is_a_regular_file_of_bounded_size() {
    let p = project();
    let fifo = p.path("values.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let run = p.run(&["render", "--env", "dev", "--stdout", "--values", "values.fifo"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("not a regular file"), "{run}");
    link(&p, "zero.yaml", Path::new("/dev/zero"));
    let run = p.run(&["render", "--env", "dev", "--stdout", "--values", "zero.yaml"]);
    assert_eq!(run.code, Some(1), "{run}");
    p.write("big.yaml", &format!("vars: {{x: \"{}\"}}\n", "y".repeat(5 << 20)));
    let run = p.run(&["render", "--env", "dev", "--stdout", "--values", "big.yaml"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("the limit is 4194304"), "{run}");
}

/// Commits a tree of `dirs` directories each holding `files` entries that
/// all point at one blob (3 objects in all) as `bomb/` next to the project.
fn commit_bomb(p: &Project, dirs: usize, files: usize) {
    let repo = git2::Repository::open(&p.root).unwrap();
    let blob = repo.blob(b"x: 1\n").unwrap();
    let mut inner = repo.treebuilder(None).unwrap();
    for i in 0..files {
        inner.insert(format!("f{i}.txt"), blob, 0o100644).unwrap();
    }
    let inner = inner.write().unwrap();
    let mut bomb = repo.treebuilder(None).unwrap();
    for i in 0..dirs {
        bomb.insert(format!("d{i}"), inner, 0o040000).unwrap();
    }
    let bomb = bomb.write().unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    let mut root = repo.treebuilder(Some(&head.tree().unwrap())).unwrap();
    root.insert("bomb", bomb, 0o040000).unwrap();
    let tree = repo.find_tree(root.write().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "bomb", &tree, &[&head]).unwrap();
}

#[test]
fn an_exported_revision_is_bounded_in_files_and_bytes() {
    let p = project();
    commit_bomb(&p, 300, 1_000);
    let run = p.run(&["diff", "--source-base", "HEAD~1", "--source-head", "HEAD"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("more than 100000 files"), "{run}");
    let p = project();
    commit_bomb(&p, 2, 1_000);
    p.ok(&["diff", "--source-base", "HEAD~1", "--source-head", "HEAD"]);
}

#[test]
fn a_non_utf8_file_name_in_a_revision_is_not_a_malformed_commit() {
    use std::os::unix::ffi::OsStrExt;
    let p = project();
    let name = std::ffi::OsStr::from_bytes(b"notes-\xff.txt");
    fs::write(p.root.join(name), "x").unwrap();
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "a non-UTF-8 name"]);
    let run = p.ok(&["diff", "--source-base", "HEAD~1", "--source-head", "HEAD"]);
    assert!(!run.stderr.contains("malformed"), "{run}");
}

#[test]
fn use_of_a_large_preset_many_times_is_bounded() {
    let p = project();
    let vars: String = (0..20_000).map(|i| format!("k{i}: 1, ")).collect();
    let services: String =
        (0..10).map(|i| format!("  - {{name: s{i}, use: [big], manifests: [manifests/api.yaml.j2]}}\n")).collect();
    let text =
        SERVICES.replace("services:\n", &format!("presets:\n  big: {{vars: {{{vars}}}}}\nservices:\n{services}"));
    p.write("services.yaml", &text);
    let run = p.run(&["validate"]);
    assert_eq!(run.code, Some(1), "{}", &run.stderr[..run.stderr.len().min(600)]);
    assert!(run.stderr.contains("exceed 200000 values"), "{}", &run.stderr[..run.stderr.len().min(600)]);
    // Used a few times, the same preset is fine.
    let few: String =
        (0..2).map(|i| format!("  - {{name: s{i}, use: [big], manifests: [manifests/api.yaml.j2]}}\n")).collect();
    p.write(
        "services.yaml",
        &SERVICES.replace("services:\n", &format!("presets:\n  big: {{vars: {{{vars}}}}}\nservices:\n{few}")),
    );
    let run = p.run(&["validate"]);
    assert!(!run.stderr.contains("exceed 200000 values"), "{}", &run.stderr[..run.stderr.len().min(600)]);
}

// Class 6: the missing-remote message names the path.

#[test]
fn a_push_to_a_missing_local_path_names_the_path() {
    let p = project();
    let missing = p.root.parent().unwrap().join("no-such-repo.git");
    p.git(&["remote", "add", "origin", &missing.display().to_string()]);
    for remote in ["origin", "file-url"] {
        if remote == "file-url" {
            p.git(&["remote", "set-url", "origin", &format!("file://{}", missing.display())]);
        }
        let run = p.run(&["render", "--env", "dev", "--commit", "--push", "origin"]);
        assert_eq!(run.code, Some(1), "{run}");
        assert!(run.stderr.contains(&missing.display().to_string()), "{run}");
        assert!(!run.stderr.contains("unsupported URL protocol"), "{run}");
        assert!(!p.exists("rendered"), "{run}");
    }
}
