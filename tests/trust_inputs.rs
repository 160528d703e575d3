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
