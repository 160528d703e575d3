//! `diff --source-base REV [--source-head REV]`: the sources of two revisions
//! rendered in memory and diffed object by object, no rendered files needed.
//! Every repository here is built with the `git` CLI; revisions are read
//! back through libgit2 by the binary.

use serde_json::Value as Json;

use crate::support::{git_in, Project};

const SERVICES: &str = r#"apiVersion: codex-k8s.io/v1alpha1
kind: ServiceStack
project: shop
stages: [internal]
versions:
  api: "1.0.0"
images:
  api: {repository: registry.example.com/shop/api, tag: "{{ versions.api }}"}
environments:
  dev:
    namespace: shop-dev
  ai:
    slots: true
    namespace: "shop-ai-{{ slot }}"
    maxSlots: 5
services:
  - name: api
    image: api
    manifests: [manifests/api.yaml.j2]
"#;

const API: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
        - name: api
          image: "{{ images.api }}"
          env:
            - {name: TARGET, value: "{{ env }}{{ '/' ~ slot if slot else '' }}"}
"#;

/// A small project (services.yaml + one template) committed on `main`.
fn small_project() -> Project {
    let project = Project::empty();
    project.write("services.yaml", SERVICES);
    project.write("manifests/api.yaml.j2", API);
    project.git(&["init", "-q", "-b", "main"]);
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "small project"]);
    project
}

fn json(run: &crate::support::Run) -> Json {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e})\n{run}"))
}

/// `(target, kind, object kind/name)` of every change.
fn changes(report: &Json) -> Vec<(String, String, String)> {
    report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            let s = |v: &Json| v.as_str().unwrap_or_default().to_owned();
            (s(&c["target"]), s(&c["kind"]), format!("{}/{}", s(&c["id"]["kind"]), s(&c["id"]["name"])))
        })
        .collect()
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array().expect("a list").iter().map(|s| s.as_str().expect("a string").to_owned()).collect()
}

// ------------------------------------------------------------------ what it shows

#[test]
fn a_version_bump_in_the_work_tree_is_diffed_from_source_without_rendered_files() {
    let project = small_project();
    project.edit("services.yaml", "api: \"1.0.0\"", "api: \"1.1.0\"");
    let run = project.run(&["diff", "--source-base", "HEAD", "--format", "json", "--exit-code"]).expect_code(3);
    assert!(!project.exists("rendered"), "nothing is written");
    let report = json(&run);
    assert_eq!(
        changes(&report),
        [
            ("ai/probe".into(), "changed".into(), "Deployment/api".into()),
            ("dev".into(), "changed".into(), "Deployment/api".into())
        ],
        "{run}"
    );
    for c in report["changes"].as_array().unwrap() {
        let d = c["diff"].as_str().unwrap();
        assert!(d.contains("-        image: registry.example.com/shop/api:1.0.0"), "{d}");
        assert!(d.contains("+        image: registry.example.com/shop/api:1.1.0"), "{d}");
    }
    assert_eq!(report["base"]["rev"], "HEAD");
    assert_eq!(report["base"]["commit"], project.git(&["rev-parse", "HEAD"]).trim());
    assert_eq!(report["head"]["commit"], Json::Null, "the head is the work tree");
    assert_eq!(report["slots"][0]["slot"], "probe");
    assert_eq!(report["slots"][0]["probe"], true);
    // Text: the same objects, and the notes.
    let text = project.run(&["diff", "--source-base", "HEAD"]).expect_code(0).stdout;
    assert!(text.contains("== ai/probe") && text.contains("== dev"), "{text}");
    assert!(text.contains("diffed with the probe slot `probe`"), "{text}");
    assert!(text.ends_with("2 target(s) touched: +0 -0 ~2 object(s)\n"), "{text}");
}

#[test]
fn two_revisions_are_diffed_and_an_unchanged_source_is_no_change() {
    let project = small_project();
    project.edit("services.yaml", "api: \"1.0.0\"", "api: \"2.0.0\"");
    project.git(&["commit", "-q", "-am", "bump api"]);
    let run = project.ok(&["diff", "--source-base", "HEAD~1", "--source-head", "HEAD", "--format", "json"]);
    assert_eq!(changes(&json(&run)).len(), 2, "{run}");
    assert_eq!(json(&run)["head"]["rev"], "HEAD");
    // The work tree equals HEAD: nothing changed, exit 0 even with --exit-code.
    let run = project.ok(&["diff", "--source-base", "HEAD", "--exit-code"]);
    assert!(run.stdout.ends_with("no changes\n"), "{run}");
    // The head revision, not the work tree: an uncommitted edit is not seen.
    project.edit("services.yaml", "api: \"2.0.0\"", "api: \"3.0.0\"");
    project.ok(&["diff", "--source-base", "HEAD", "--source-head", "HEAD", "--exit-code"]);
    project.run(&["diff", "--source-base", "HEAD", "--exit-code"]).expect_code(3);
}

#[test]
fn env_limits_the_diff_to_one_environment_and_slot_picks_the_representative() {
    let project = small_project();
    project.edit("services.yaml", "api: \"1.0.0\"", "api: \"1.1.0\"");
    let run = project.ok(&["diff", "--source-base", "HEAD", "--env", "dev", "--format", "json"]);
    assert_eq!(changes(&json(&run)), [("dev".into(), "changed".into(), "Deployment/api".into())]);
    assert_eq!(json(&run)["slots"], serde_json::json!([]));
    let run = project.ok(&["diff", "--source-base", "HEAD", "--env", "ai", "--slot", "pr-9", "--format", "json"]);
    assert_eq!(changes(&json(&run)), [("ai/pr-9".into(), "changed".into(), "Deployment/api".into())]);
    assert_eq!(json(&run)["slots"][0]["probe"], false);
    let run = project.run(&["diff", "--source-base", "HEAD", "--env", "dev", "--slot", "pr-9"]).expect_code(1);
    assert!(run.stderr.contains("`dev` is not a slot environment: drop --slot"), "{run}");
    let run = project.run(&["diff", "--source-base", "HEAD", "--env", "prod"]).expect_code(1);
    assert!(run.stderr.contains("unknown environment `prod`") && run.stderr.contains("ai, dev"), "{run}");
    let run = project.run(&["diff", "--source-base", "HEAD", "--slot", "pr-9"]).expect_code(2);
    assert!(run.stderr.contains("--env"), "--slot needs --env\n{run}");
    project.run(&["diff", "--source-base", "HEAD", "--base", "HEAD~1"]).expect_code(2);
}

/// Slots pr-1 and pr-3 change as the probe does (their own names aside);
/// pr-2 pins `versions.api` with a recorded `--set`, so only the template
/// part of the change reaches it.
#[test]
fn existing_slots_are_counted_by_whether_they_change_the_same_way() {
    let project = small_project();
    project.ok(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1"]);
    project.ok(&["render", "--env", "ai", "--slot", "pr-2", "--run-id", "r2", "--set", "versions.api=pinned"]);
    project.ok(&["render", "--env", "ai", "--slot", "pr-3", "--run-id", "r3"]);
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "three slots"]);
    project.edit("services.yaml", "api: \"1.0.0\"", "api: \"1.1.0\"");
    // The slot's own name lands in the changed lines: normalised away.
    project.edit(
        "manifests/api.yaml.j2",
        "            - {name: TARGET",
        "            - {name: SLOT, value: \"{{ slot }} in {{ namespace }}\"}\n            - {name: TARGET",
    );
    let report = json(&project.ok(&["diff", "--source-base", "HEAD", "--env", "ai", "--format", "json"]));
    let group = &report["slots"][0];
    assert_eq!(group["slot"], "probe");
    assert_eq!(group["existing"], 3);
    assert_eq!(strings(&group["same"]), ["pr-1", "pr-3"], "{report:#}");
    assert_eq!(strings(&group["different"]), ["pr-2"], "{report:#}");
    assert_eq!(group["failed"], serde_json::json!([]));
    let diff = report["changes"][0]["diff"].as_str().unwrap();
    assert!(
        diff.lines().any(|l| l.starts_with('+') && l.trim_start_matches('+').trim() == "value: probe in shop-ai-probe"),
        "{diff}"
    );
    // The pull request's own slot as the representative: the others are counted.
    let run = project.ok(&["diff", "--source-base", "HEAD", "--env", "ai", "--slot", "pr-2", "--format", "json"]);
    let report = json(&run);
    let group = &report["slots"][0];
    assert_eq!((group["slot"].as_str(), group["existing"].as_u64()), (Some("pr-2"), Some(2)));
    assert_eq!(strings(&group["same"]), Vec::<String>::new());
    assert_eq!(strings(&group["different"]), ["pr-1", "pr-3"]);
    let pr2 = report["changes"][0]["diff"].as_str().unwrap();
    let changed_image = pr2.lines().any(|l| (l.starts_with('+') || l.starts_with('-')) && l.contains("image:"));
    assert!(!changed_image, "pr-2's recorded --set keeps its image\n{pr2}");
    let text = project.ok(&["diff", "--source-base", "HEAD", "--env", "ai"]).stdout;
    assert!(text.contains("of the other 3 slot(s) in rendered/ai, 2 the same way, 1 differently (pr-2)"), "{text}");
}

#[test]
fn markdown_for_hundreds_of_changed_objects_stays_within_a_github_comment() {
    let project = small_project();
    let mut many = String::new();
    for i in 0..300 {
        many.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings-{i:03}\ndata:\n  version: \"{{{{ versions.api }}}}\"\n  note: \"{}\"\n",
            "padding ".repeat(20)
        ));
    }
    project.write("manifests/settings.yaml.j2", &many);
    project.edit("services.yaml", "manifests: [manifests/api.yaml.j2]", "manifests: [manifests/*.yaml.j2]");
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "300 config maps"]);
    project.edit("services.yaml", "api: \"1.0.0\"", "api: \"1.1.0\"");
    let md = project.ok(&["diff", "--source-base", "HEAD", "--format", "markdown"]).stdout;
    assert!(md.chars().count() <= 65_536, "{} characters", md.chars().count());
    let shown = md.matches("<details>").count();
    assert_eq!(md.matches("</details>").count(), shown, "whole objects only");
    let total = 2 * 301;
    assert!(shown > 10 && shown < total, "{shown} shown");
    assert!(md.contains(&format!("> {} more object change(s) not shown", total - shown)), "{}", &md[md.len() - 3000..]);
    assert!(
        md.contains("See every change: `codex-k8s diff --source-base HEAD --format text`"),
        "{}",
        &md[md.len() - 800..]
    );
    assert!(md.contains("**2 target(s) touched: +0 -0 ~602 object(s)**"));
    // The text format has them all.
    let text = project.ok(&["diff", "--source-base", "HEAD", "--format", "text"]).stdout;
    assert_eq!(text.matches("  ~ ConfigMap ").count(), 600);
}

// ------------------------------------------------------------------ bad revisions

#[test]
fn a_revision_that_does_not_exist_is_a_clear_error() {
    let project = small_project();
    let run = project.run(&["diff", "--source-base", "no-such-branch"]).expect_code(1);
    assert!(run.stderr.contains("revision `no-such-branch` does not exist"), "{run}");
    assert!(run.stderr.contains("git fetch origin no-such-branch"), "{run}");
    let run = project.run(&["diff", "--source-base", "HEAD", "--source-head", "v9"]).expect_code(1);
    assert!(run.stderr.contains("revision `v9` does not exist"), "{run}");
}

#[test]
fn a_base_before_the_project_existed_shows_every_object_added_and_says_so() {
    let project = Project::empty();
    project.write("README.md", "a repository before codex-k8s\n");
    project.git(&["init", "-q", "-b", "main"]);
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "readme"]);
    project.write("services.yaml", SERVICES);
    project.write("manifests/api.yaml.j2", API);
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "project"]);
    let run = project.run(&["diff", "--source-base", "HEAD~1", "--format", "json", "--exit-code"]).expect_code(3);
    let report = json(&run);
    assert_eq!(report["base"]["inventory"], false);
    assert_eq!((report["removed"].as_u64(), report["changed"].as_u64()), (Some(0), Some(0)), "{run}");
    let all = changes(&report);
    assert!(all.len() >= 4 && all.iter().all(|(_, kind, _)| kind == "added"), "{all:?}");
    assert!(all.iter().any(|c| c == &("dev".to_owned(), "added".to_owned(), "Deployment/api".to_owned())), "{all:?}");
    let text = project.ok(&["diff", "--source-base", "HEAD~1"]).stdout;
    assert!(
        text.contains("`HEAD~1` (")
            && text.contains("has no services.yaml (HEAD~1:services.yaml): every object is shown as added"),
        "{text}"
    );
}

#[test]
fn a_shallow_clone_missing_the_base_says_how_to_fetch_it() {
    let seed = small_project();
    seed.edit("services.yaml", "api: \"1.0.0\"", "api: \"1.1.0\"");
    seed.git(&["commit", "-q", "-am", "bump"]);
    let dir = tempfile::Builder::new().prefix("codex-k8s-shallow-").tempdir().unwrap();
    let url = format!("file://{}", seed.root.display());
    git_in(dir.path(), &["clone", "-q", "--depth", "1", &url, "clone"]);
    let clone = Project::at(dir, "clone");
    assert_eq!(clone.git(&["rev-parse", "--is-shallow-repository"]).trim(), "true");
    let run = clone.run(&["diff", "--source-base", "HEAD~1"]).expect_code(1);
    assert!(run.stderr.contains("revision `HEAD~1` is not in") && run.stderr.contains("a shallow clone"), "{run}");
    assert!(run.stderr.contains("fetch-depth: 0") && run.stderr.contains("git fetch --deepen"), "{run}");
    // After deepening, the same command works.
    clone.git(&["fetch", "-q", "--deepen=1"]);
    let run = clone.ok(&["diff", "--source-base", "HEAD~1", "--format", "json"]);
    assert_eq!(changes(&json(&run)).len(), 2, "{run}");
}

// ------------------------------------------------------------------ hostile trees

/// A revision may commit a symlink (mode 120000) out of the project: it is
/// written as a symlink and the loader refuses it as on disk, naming the
/// revision's path, never the temporary copy.
#[test]
fn a_symlink_committed_at_a_revision_is_refused_as_on_disk() {
    let project = small_project();
    let outside = project.root.parent().unwrap().join("outside.yaml.j2");
    std::fs::write(&outside, API).unwrap();
    std::fs::remove_file(project.path("manifests/api.yaml.j2")).unwrap();
    std::os::unix::fs::symlink(&outside, project.path("manifests/api.yaml.j2")).unwrap();
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "link a template out of the project"]);
    assert_eq!(project.git(&["ls-tree", "HEAD", "manifests/api.yaml.j2"]).split(' ').next(), Some("120000"));
    let on_disk = project.run(&["validate"]).expect_code(1);
    let refusal = "manifest `manifests/api.yaml.j2` is a symlink that leads outside the project directory";
    assert!(on_disk.stderr.contains(refusal), "{on_disk}");
    project.git(&["checkout", "-q", "HEAD~1", "--", "manifests/api.yaml.j2"]);
    let run = project.run(&["diff", "--source-base", "HEAD"]).expect_code(1);
    assert!(run.stderr.contains(refusal), "{run}");
    assert!(run.stderr.contains("--> HEAD:services.yaml"), "named by revision\n{run}");
    assert!(!run.stderr.contains("codex-k8s-source-"), "no temporary path\n{run}");
    // A relative link out of the project is refused as well.
    std::fs::remove_file(project.path("manifests/api.yaml.j2")).unwrap();
    std::os::unix::fs::symlink("../../outside.yaml.j2", project.path("manifests/api.yaml.j2")).unwrap();
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "relative link"]);
    project.git(&["checkout", "-q", "HEAD~2", "--", "manifests/api.yaml.j2"]);
    let run = project.run(&["diff", "--source-base", "HEAD"]).expect_code(1);
    assert!(run.stderr.contains("manifests/api.yaml.j2") && run.stderr.contains("HEAD:"), "{run}");
    // A symlink to a file inside the project is followed, as on disk.
    std::fs::rename(project.path("manifests/api.yaml.j2"), project.path("manifests/real.yaml.j2")).unwrap();
    std::os::unix::fs::symlink("real.yaml.j2", project.path("manifests/api.yaml.j2")).unwrap();
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "link inside"]);
    project.ok(&["validate"]);
    project.ok(&["diff", "--source-base", "HEAD", "--exit-code"]);
}

#[test]
fn a_symlinked_inventory_at_a_revision_is_refused() {
    let project = small_project();
    std::fs::rename(project.path("services.yaml"), project.path("real.yaml")).unwrap();
    std::os::unix::fs::symlink("real.yaml", project.path("services.yaml")).unwrap();
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "symlinked inventory"]);
    let run = project.run(&["diff", "--source-base", "HEAD"]).expect_code(1);
    assert!(run.stderr.contains("HEAD:services.yaml is a symlink"), "{run}");
}

/// A submodule (a gitlink, mode 160000) names a commit of another
/// repository: it is skipped, and the diff works.
#[test]
fn a_submodule_entry_is_skipped() {
    let project = small_project();
    let other = project.git(&["rev-parse", "HEAD"]).trim().to_owned();
    project.git(&["update-index", "--add", "--cacheinfo", &format!("160000,{other},vendor/lib")]);
    project.git(&["commit", "-q", "-m", "a submodule"]);
    assert!(project.git(&["ls-tree", "HEAD", "vendor/lib"]).starts_with("160000 commit"));
    project.ok(&["diff", "--source-base", "HEAD~1", "--source-head", "HEAD", "--exit-code"]);
}

#[test]
fn errors_at_a_revision_name_the_revision_and_the_path_in_the_repository() {
    let project = Project::empty();
    project.write("deploy/services.yaml", SERVICES);
    project.write("deploy/manifests/api.yaml.j2", API);
    project.git(&["init", "-q", "-b", "main"]);
    project.edit("deploy/services.yaml", "stages: [internal]", "stages: [internal]\nunknownKey: 1");
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "a typo"]);
    project.edit("deploy/services.yaml", "\nunknownKey: 1", "");
    project.ok(&["-f", "deploy/services.yaml", "validate"]);
    let run = project.run(&["-f", "deploy/services.yaml", "diff", "--source-base", "HEAD"]).expect_code(1);
    assert!(run.stderr.contains("--> HEAD:deploy/services.yaml:5:1"), "{run}");
    assert!(run.stderr.contains("unknownKey"), "{run}");
    assert!(!run.stderr.contains("codex-k8s-source-"), "{run}");
}
