//! `render --commit/--branch/--push`, `diff` and `slots` on the bundled
//! example, each result checked with the `git` CLI.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use crate::support::{assert_fsck_clean, assert_same_tree, git_in, trailers, wait_child, Project, Run, GIT_IDENTITY};

const TARGETS: [&str; 4] = ["ai/pr-1", "dev", "platform", "staging"];
/// The targets that render the shop's services (`platform` holds only the watcher).
const SHOP_TARGETS: [&str; 3] = ["ai/pr-1", "dev", "staging"];

/// The example with `staging`, `dev` and slot `ai/pr-1` rendered and committed.
fn committed_example() -> Project {
    let project = Project::example();
    project.ok(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1", "--commit"]);
    project.ok(&["render", "--all", "--commit"]);
    assert_eq!(project.targets(), TARGETS);
    project.assert_status_clean();
    project
}

/// [`committed_example`] plus two commits: `versions.users` bumped in
/// services.yaml, then the re-render of every target.
fn users_bumped() -> Project {
    let project = committed_example();
    project.edit("services.yaml", "users: \"1.4.0\"", "users: \"9.9.9\"");
    project.git(&["commit", "-q", "-am", "bump users to 9.9.9"]);
    project.ok(&["render", "--all", "--commit"]);
    project
}

fn head_message(project: &Project) -> String {
    project.git(&["log", "-1", "--format=%B"])
}

/// `(status letter, path)` of every file a commit range changes, renames off.
fn name_status(project: &Project, from: &str, to: &str) -> Vec<(String, String)> {
    project
        .git(&["diff", "--no-renames", "--name-status", from, to])
        .lines()
        .map(|l| {
            let (status, path) = l.split_once('\t').expect("status<TAB>path");
            (status.to_owned(), path.to_owned())
        })
        .collect()
}

// ------------------------------------------------------------------ render --commit

#[test]
fn render_commit_makes_one_commit_with_provenance_trailers() {
    let project = Project::example();
    let source = project.git(&["rev-parse", "HEAD"]).trim().to_owned();
    project.ok(&["render", "--all", "--commit"]);

    assert_eq!(project.commit_count("HEAD"), 2, "one render commit on top of the sources");
    let message = head_message(&project);
    assert!(message.starts_with("render(dev, platform, staging): "), "subject: {message}");
    let trailers = trailers(&project.root, &message);
    assert_eq!(trailers.get("Rendered-From").map(String::as_str), Some(source.as_str()), "{message}");
    assert_eq!(trailers.get("Targets").map(String::as_str), Some("dev, platform, staging"), "{message}");
    let digest = trailers.get("Inputs-Digest").unwrap_or_else(|| panic!("no Inputs-Digest trailer:\n{message}"));
    assert!(regex::Regex::new("^sha256:[0-9a-f]{64}$").unwrap().is_match(digest), "Inputs-Digest: {digest}");

    assert_eq!(
        project.git(&["log", "-1", "--format=%an <%ae>|%cn <%ce>"]).trim(),
        "Test Author <author@example.com>|Test Committer <committer@example.com>"
    );
    let changed = project.git(&["show", "--name-only", "--format=", "HEAD"]);
    assert!(changed.lines().all(|p| p.starts_with("rendered/")), "the commit touches more than rendered/:\n{changed}");
    assert!(project.git(&["diff", "--stat", "HEAD~1", "HEAD"]).contains("files changed"));

    // The commit holds exactly the rendered tree on disk.
    let committed: BTreeSet<String> =
        project.git(&["ls-tree", "-r", "--name-only", "HEAD", "rendered"]).lines().map(String::from).collect();
    let on_disk: BTreeSet<String> = project.snapshot("rendered").into_keys().map(|p| format!("rendered/{p}")).collect();
    assert_eq!(committed, on_disk);
    project.assert_status_clean();
    project.assert_fsck_clean();
}

#[test]
fn render_commit_twice_makes_only_one_commit() {
    let project = Project::example();
    project.ok(&["render", "--env", "staging", "--commit"]);
    let head = project.git(&["rev-parse", "HEAD"]);
    project.ok(&["render", "--env", "staging", "--commit"]);
    project.ok(&["render", "--env", "staging", "--commit", "--force"]);
    assert_eq!(project.git(&["rev-parse", "HEAD"]), head, "a render without changes committed");
    assert_eq!(project.commit_count("HEAD"), 2);
    project.assert_status_clean();
    project.assert_fsck_clean();
}

#[test]
fn render_commit_after_a_plain_render_commits_the_whole_target() {
    let project = Project::example();
    project.ok(&["render", "--env", "staging"]);
    let run = project.ok(&["render", "--env", "staging", "--commit"]);

    let message = head_message(&project);
    assert!(message.starts_with("render(staging): "), "subject: {message}\n{run}");
    assert_eq!(trailers(&project.root, &message).get("Targets").map(String::as_str), Some("staging"), "{message}");
    let committed = project.git(&["ls-tree", "-r", "--name-only", "HEAD", "rendered"]);
    for file in ["rendered/staging/kustomization.yaml", "rendered/flux/staging.yaml", "rendered/argocd/staging.yaml"] {
        assert!(committed.lines().any(|l| l == file), "{file} is not committed; HEAD holds:\n{committed}");
    }
    project.assert_status_clean();
}

#[test]
fn rendered_from_marks_uncommitted_inputs_as_dirty() {
    let project = Project::example();
    let source = project.git(&["rev-parse", "HEAD"]).trim().to_owned();
    project.edit("environments/staging.yaml", "replicas: 2", "replicas: 3");
    project.ok(&["render", "--env", "staging", "--commit", "--allow-dirty"]);
    let trailers = trailers(&project.root, &head_message(&project));
    assert_eq!(trailers.get("Rendered-From"), Some(&format!("{source} (dirty)")));
}

/// Issue 30: a commit of output rendered from uncommitted sources makes every
/// clean checkout's `render --check` fail; `--commit` refuses it.
#[test]
fn render_commit_refuses_uncommitted_sources_unless_allow_dirty() {
    let project = Project::example();
    let head = project.git(&["rev-parse", "HEAD"]);
    project.edit("environments/staging.yaml", "replicas: 2", "replicas: 3");
    let refused = project.run(&["render", "--env", "staging", "--commit"]).expect_code(1);
    assert!(refused.stderr.contains("environments/staging.yaml"), "names the file: {refused}");
    assert!(refused.stderr.contains("--allow-dirty"), "names the way out: {refused}");
    assert_eq!(project.git(&["rev-parse", "HEAD"]), head, "nothing committed");
    assert!(project.git(&["status", "--porcelain", "rendered"]).is_empty(), "nothing written");
    project.git(&["commit", "-q", "-am", "staging: 3 replicas"]);
    project.ok(&["render", "--env", "staging", "--commit"]);
}

#[test]
fn render_commit_without_a_git_identity_fails_clearly() {
    let project = Project::example();
    let home = tempfile::tempdir().unwrap();
    let mut cmd = project.cmd();
    for (name, _) in GIT_IDENTITY {
        cmd.env_remove(name);
    }
    cmd.env("HOME", home.path()).env("XDG_CONFIG_HOME", home.path()).env("GIT_CONFIG_NOSYSTEM", "1");
    let run = Run::from_output(
        "render --env staging --commit (no identity)".into(),
        cmd.args(["render", "--env", "staging", "--commit"]).output().unwrap(),
    );
    let run = run.expect_code(1);
    assert!(run.stderr.contains("user.name") && run.stderr.contains("GIT_AUTHOR_NAME"), "{run}");
    assert_eq!(project.commit_count("HEAD"), 1);
}

// ------------------------------------------------------------------ render --branch

#[test]
fn render_branch_commits_to_a_hydrated_branch_without_touching_the_work_tree() {
    let project = Project::example();
    project.ok(&["render", "--env", "dev", "--branch", "hydrated"]);

    // The branch also holds a file of its own and a stale file inside the staging target.
    let wt = tempfile::tempdir().unwrap();
    let wt_path = wt.path().join("hydrated");
    project.git(&["worktree", "add", "-q", &wt_path.display().to_string(), "hydrated"]);
    std::fs::write(wt_path.join("README.hydrated.md"), "kept by codex-k8s\n").unwrap();
    std::fs::create_dir_all(wt_path.join("rendered/staging")).unwrap();
    std::fs::write(wt_path.join("rendered/staging/configmap-stale.yaml"), "stale: true\n").unwrap();
    git_in(&wt_path, &["add", "-A"]);
    git_in(&wt_path, &["commit", "-q", "-m", "hand-made files on the hydrated branch"]);
    project.git(&["worktree", "remove", "--force", &wt_path.display().to_string()]);

    let main_before = project.git(&["rev-parse", "main"]);
    let branch_before = project.git(&["rev-parse", "hydrated"]).trim().to_owned();
    let index_before = project.git(&["ls-files", "--stage"]);
    let status_before = project.git(&["status", "--porcelain", "--untracked-files=all"]);
    let worktree_before = project.snapshot_worktree();

    project.ok(&["render", "--env", "staging", "--branch", "hydrated"]);

    // Nothing of the checkout moved.
    assert_eq!(project.git(&["rev-parse", "main"]), main_before, "main moved");
    assert_eq!(project.git(&["symbolic-ref", "HEAD"]).trim(), "refs/heads/main");
    assert_eq!(project.git(&["ls-files", "--stage"]), index_before, "the index changed");
    assert_eq!(project.git(&["status", "--porcelain", "--untracked-files=all"]), status_before, "git status changed");
    assert_same_tree(&worktree_before, &project.snapshot_worktree(), "the work tree");
    assert!(!project.exists("rendered"), "--branch wrote rendered/ into the work tree");

    // One commit on the branch, touching only the staging target and its glue.
    assert_eq!(project.git(&["rev-parse", "hydrated~1"]).trim(), branch_before);
    let touched = name_status(&project, "hydrated~1", "hydrated");
    assert!(!touched.is_empty());
    for (_, path) in &touched {
        assert!(
            path.starts_with("rendered/staging/")
                || path == "rendered/argocd/staging.yaml"
                || path == "rendered/flux/staging.yaml",
            "--branch touched {path} outside the staging target"
        );
    }
    assert!(
        touched.contains(&("D".into(), "rendered/staging/configmap-stale.yaml".into())),
        "the stale file was kept: {touched:?}"
    );
    let files = project.git(&["ls-tree", "-r", "--name-only", "hydrated"]);
    assert!(files.lines().any(|l| l == "README.hydrated.md"), "the branch's own file was dropped");
    assert_eq!(
        project.git(&["rev-parse", "hydrated:rendered/dev"]),
        project.git(&["rev-parse", "hydrated~1:rendered/dev"]),
        "dev changed"
    );
    let message = project.git(&["log", "-1", "--format=%B", "hydrated"]);
    assert!(message.starts_with("render(staging)"), "{message}");
    project.assert_fsck_clean();

    // The branch holds exactly what a render into the work tree writes.
    project.ok(&["render", "--env", "staging"]);
    let on_disk = project.snapshot("rendered/staging");
    let on_branch: BTreeSet<String> = project
        .git(&["ls-tree", "-r", "--name-only", "hydrated", "rendered/staging"])
        .lines()
        .map(|l| l.trim_start_matches("rendered/staging/").to_owned())
        .collect();
    assert_eq!(on_branch, on_disk.keys().cloned().collect::<BTreeSet<_>>());
    for (path, bytes) in &on_disk {
        let blob = project.git(&["show", &format!("hydrated:rendered/staging/{path}")]);
        assert_eq!(
            blob.as_bytes(),
            bytes.as_slice(),
            "rendered/staging/{path} differs between the branch and the work tree"
        );
    }
}

// ------------------------------------------------------------------ a version bump and diff

#[test]
fn a_version_bump_changes_exactly_the_users_objects_in_every_target() {
    let project = users_bumped();
    let job =
        regex::Regex::new(r"^rendered/(.+)/10-migrations/users-migrate/job-users-migrate-[0-9a-f]{8}\.yaml$").unwrap();
    let deployment = regex::Regex::new(r"^rendered/(.+)/20-internal/users/deployment-users\.yaml$").unwrap();
    let bookkeeping =
        regex::Regex::new(r"^rendered/(.+)/(\.codex-k8s/target\.json|10-migrations/kustomization\.yaml)$").unwrap();

    let mut seen = BTreeSet::new();
    for (status, path) in name_status(&project, "HEAD~1", "HEAD") {
        if let Some(c) = job.captures(&path) {
            assert!(status == "A" || status == "D", "{status} {path}: the users-migrate Job is renamed, not edited");
            seen.insert((c[1].to_owned(), format!("Job {status}")));
        } else if let Some(c) = deployment.captures(&path) {
            assert_eq!(status, "M", "{path}");
            seen.insert((c[1].to_owned(), "Deployment M".to_owned()));
        } else {
            assert!(bookkeeping.is_match(&path), "the users bump changed an unrelated file: {status} {path}");
        }
    }
    let expected: BTreeSet<(String, String)> = SHOP_TARGETS
        .iter()
        .flat_map(|t| ["Job A", "Job D", "Deployment M"].map(|c| (t.to_string(), c.to_string())))
        .collect();
    assert_eq!(seen, expected);
    assert!(project.read("rendered/staging/20-internal/users/deployment-users.yaml").contains("shop/users:9.9.9\n"));

    // diff says the same, object by object.
    let json: Json =
        serde_json::from_str(&project.ok(&["diff", "--base", "HEAD~1", "--head", "HEAD", "--format", "json"]).stdout)
            .expect("diff --format json prints JSON");
    assert_eq!(
        (json["added"].as_u64(), json["removed"].as_u64(), json["changed"].as_u64()),
        (Some(0), Some(0), Some(6)),
        "{json:#}"
    );
    let changes: BTreeSet<(String, String, String, String)> = json["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            let name = c["id"]["name"].as_str().unwrap();
            let name = if c["id"]["kind"] == "Job" { job_base_name(name) } else { name.to_owned() };
            (
                c["target"].as_str().unwrap().to_owned(),
                c["kind"].as_str().unwrap().to_owned(),
                c["id"]["kind"].as_str().unwrap().to_owned(),
                name,
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, String, String)> = SHOP_TARGETS
        .iter()
        .flat_map(|t| {
            [("Deployment", "users"), ("Job", "users-migrate")]
                .map(|(k, n)| (t.to_string(), "changed".into(), k.into(), n.into()))
        })
        .collect();
    assert_eq!(changes, expected, "{json:#}");
    for c in json["changes"].as_array().unwrap() {
        assert!(
            c["diff"].as_str().unwrap_or_default().contains("+        image: registry.example.com/shop/users:9.9.9"),
            "{c:#}"
        );
    }
}

/// `users-migrate-3f2a9c1e` → `users-migrate`.
fn job_base_name(name: &str) -> String {
    name.rsplit_once('-').map_or(name, |(base, _)| base).to_owned()
}

#[test]
fn diff_ignores_key_reordering_and_moved_files() {
    let project = committed_example();
    let old = "rendered/staging/20-internal/users/service-users.yaml";
    let new = "rendered/staging/20-internal/users/moved/svc.yaml";
    let reordered = serde_yaml::to_string(&reversed_keys(serde_yaml::from_str(&project.read(old)).unwrap())).unwrap();
    assert_ne!(reordered, project.read(old), "the reordering must change the text");
    std::fs::remove_file(project.path(old)).unwrap();
    project.write(new, &reordered);
    project.edit("rendered/staging/20-internal/kustomization.yaml", "users/service-users.yaml", "users/moved/svc.yaml");
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "reorder and move an object by hand"]);
    assert!(project.git(&["diff", "--stat", "HEAD~1", "HEAD"]).contains("svc.yaml"));

    let run = project.ok(&["diff", "--base", "HEAD~1", "--head", "HEAD", "--exit-code"]);
    assert!(!run.stdout.contains("Service"), "{run}");
    let json: Json =
        serde_json::from_str(&project.ok(&["diff", "--base", "HEAD~1", "--head", "HEAD", "--format", "json"]).stdout)
            .unwrap();
    assert_eq!(json["changes"].as_array().map(Vec::len), Some(0), "{json:#}");

    // A real edit of the moved object is still a change of that object.
    project.edit(new, "port: 80", "port: 81");
    let run = project.run(&["diff", "--exit-code", "--format", "json"]).expect_code(3);
    let json: Json = serde_json::from_str(&run.stdout).unwrap();
    let changes = json["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{json:#}");
    assert_eq!(
        (changes[0]["id"]["kind"].as_str(), changes[0]["id"]["name"].as_str()),
        (Some("Service"), Some("users"))
    );
}

/// The same YAML with every mapping's keys in reverse order.
fn reversed_keys(value: Yaml) -> Yaml {
    match value {
        Yaml::Mapping(map) => {
            let entries: Vec<(Yaml, Yaml)> = map.into_iter().collect();
            Yaml::Mapping(entries.into_iter().rev().map(|(k, v)| (k, reversed_keys(v))).collect())
        }
        Yaml::Sequence(items) => Yaml::Sequence(items.into_iter().map(reversed_keys).collect()),
        other => other,
    }
}

#[test]
fn diff_markdown_has_a_collapsible_details_block_per_object() {
    let project = users_bumped();
    let md = project.ok(&["diff", "--base", "HEAD~1", "--head", "HEAD", "--format", "markdown"]).stdout;
    assert_eq!(md.matches("<details>").count(), 6, "one <details> per changed object:\n{md}");
    assert_eq!(md.matches("</details>").count(), 6, "{md}");
    assert_eq!(md.matches("<summary>").count(), 6, "{md}");
    assert_eq!(md.matches("```diff").count(), 6, "{md}");
    for target in SHOP_TARGETS {
        assert!(md.contains(&format!("`{target}`")), "no section for {target}:\n{md}");
    }
    assert!(md.contains("Deployment") && md.contains("Job"), "{md}");
}

#[test]
fn diff_exit_code_is_3_on_changes_and_0_without() {
    let project = users_bumped();
    project.run(&["diff", "--base", "HEAD~1", "--head", "HEAD", "--exit-code"]).expect_code(3);
    project.ok(&["diff", "--base", "HEAD~1", "--head", "HEAD"]);
    project.ok(&["diff", "--base", "HEAD", "--head", "HEAD", "--exit-code"]);
    project.ok(&["diff", "--exit-code"]); // HEAD against a clean work tree

    project.edit("rendered/dev/20-internal/orders/deployment-orders.yaml", "replicas: 1", "replicas: 4");
    let run = project.run(&["diff", "--exit-code"]).expect_code(3);
    assert!(run.stdout.contains("Deployment") && run.stdout.contains("orders"), "{run}");
}

// ------------------------------------------------------------------ render --push

/// A bare repository holding the example's first commit, and a directory to keep it in.
fn bare_origin() -> (tempfile::TempDir, PathBuf) {
    let seed = Project::example();
    let dir = tempfile::Builder::new().prefix("codex-k8s-origin-").tempdir().unwrap();
    let bare = dir.path().join("origin.git");
    git_in(dir.path(), &["clone", "-q", "--bare", &seed.root.display().to_string(), &bare.display().to_string()]);
    (dir, bare)
}

#[test]
fn eight_concurrent_pushes_of_different_slots_all_land_on_a_linear_main() {
    const JOBS: usize = 8;
    let (_dir, bare) = bare_origin();
    let initial = git_in(&bare, &["rev-parse", "main"]).trim().to_owned();
    let clones: Vec<Project> = (0..JOBS).map(|_| Project::clone_of(&bare)).collect();

    let children: Vec<Child> = clones
        .iter()
        .enumerate()
        .map(|(i, clone)| {
            let n = i + 1;
            Process::new(assert_cmd::cargo::cargo_bin("codex-k8s"))
                .arg("-C")
                .arg(&clone.root)
                .args([
                    "render",
                    "--env",
                    "ai",
                    "--slot",
                    &format!("s-{n}"),
                    "--run-id",
                    &format!("r{n}"),
                    "--commit",
                    "--push",
                    "origin",
                ])
                .envs(GIT_IDENTITY.iter().copied())
                .env("CI", "1")
                .env("NO_COLOR", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start codex-k8s")
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .enumerate()
        .map(|(i, child)| wait_child(child, &format!("push of slot s-{}", i + 1)))
        .collect();
    for run in &runs {
        assert_eq!(run.code, Some(0), "a concurrent push failed\n{run}");
    }

    // Every slot made it to main, each as its own commit, one after the other.
    let slots: Vec<String> =
        git_in(&bare, &["ls-tree", "--name-only", "main:rendered/ai"]).lines().map(String::from).collect();
    let expected: Vec<String> = (1..=JOBS).map(|n| format!("s-{n}")).collect();
    assert_eq!(slots, expected, "slots on origin's main");
    let flux: Vec<String> =
        git_in(&bare, &["ls-tree", "--name-only", "main:rendered/flux/ai"]).lines().map(String::from).collect();
    assert_eq!(flux, expected.iter().map(|s| format!("{s}.yaml")).collect::<Vec<_>>());
    for n in 1..=JOBS {
        let info: Json =
            serde_json::from_str(&git_in(&bare, &["show", &format!("main:rendered/ai/s-{n}/.codex-k8s/target.json")]))
                .unwrap();
        assert_eq!(info["runId"], format!("r{n}"), "slot s-{n}");
    }
    assert_eq!(git_in(&bare, &["rev-list", "--merges", "main"]), "", "history is not linear");
    assert_eq!(
        git_in(&bare, &["rev-list", "--count", "main"]).trim(),
        (JOBS + 1).to_string(),
        "initial + one commit per job"
    );
    assert_eq!(git_in(&bare, &["rev-list", "--max-parents=0", "main"]).trim(), initial);

    // Each commit carries only its own slot (every environment's Argo CD
    // file and the walls record come with the first: a work tree's commit
    // is its own authority).
    let subject_slot = regex::Regex::new(r"^render\(ai/(s-\d+)\)").unwrap();
    for commit in git_in(&bare, &["rev-list", "main", &format!("^{initial}")]).lines() {
        let subject = git_in(&bare, &["log", "-1", "--format=%s", commit]);
        let slot = subject_slot.captures(&subject).unwrap_or_else(|| panic!("subject {subject}"))[1].to_owned();
        for path in git_in(&bare, &["show", "--name-only", "--format=", commit]).lines() {
            assert!(
                path.starts_with(&format!("rendered/ai/{slot}/"))
                    || path == format!("rendered/flux/ai/{slot}.yaml")
                    || path.starts_with("rendered/argocd/")
                    || path == "rendered/.codex-k8s/walls.json",
                "the commit for {slot} touches {path}"
            );
        }
    }
    assert_fsck_clean(&bare);

    // main is exactly what rendering those slots from its own inputs gives.
    let fresh = Project::clone_of(&bare);
    let mut args = vec!["render", "--env", "ai", "--check"];
    let slot_args: Vec<String> = expected.iter().map(|s| format!("--slot={s}")).collect();
    args.extend(slot_args.iter().map(String::as_str));
    fresh.ok(&args);
}

#[test]
fn render_push_leaves_the_clone_clean_and_in_step_with_the_remote() {
    let (_dir, bare) = bare_origin();
    let clone = Project::clone_of(&bare);
    let other = Project::clone_of(&bare);

    clone.ok(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1", "--commit", "--push", "origin"]);
    assert_eq!(clone.git(&["rev-parse", "HEAD"]), git_in(&bare, &["rev-parse", "main"]));
    clone.assert_status_clean();

    // Another job pushes first: this one is rebuilt on the new tip.
    other.ok(&["render", "--env", "ai", "--slot", "pr-2", "--run-id", "r2", "--commit", "--push", "origin"]);
    other.assert_status_clean();
    clone.ok(&["render", "--env", "ai", "--slot", "pr-3", "--run-id", "r3", "--commit", "--push", "origin"]);
    assert_eq!(clone.git(&["rev-parse", "HEAD"]), git_in(&bare, &["rev-parse", "main"]));
    assert!(clone.exists("rendered/ai/pr-2/kustomization.yaml"), "the other job's slot is not in the work tree");
    clone.assert_status_clean();
    assert_eq!(git_in(&bare, &["rev-list", "--count", "main"]).trim(), "4");
    assert_fsck_clean(&bare);
}

// ------------------------------------------------------------------ slots

#[test]
fn slots_list_json_reports_every_slot() {
    let project = committed_example();
    project.ok(&["render", "--env", "ai", "--slot", "pr-2", "--commit"]);
    let slots: Json = serde_json::from_str(&project.ok(&["slots", "list", "--format", "json"]).stdout).expect("JSON");
    let slots = slots.as_array().expect("an array of slots");
    assert_eq!(slots.len(), 2, "{slots:#?}");
    for (slot, n) in slots.iter().zip([1, 2]) {
        assert_eq!(slot["env"], "ai");
        assert_eq!(slot["slot"], format!("pr-{n}"));
        assert_eq!(slot["namespace"], format!("shop-dev-pr-{n}"));
        assert_eq!(slot["host"], format!("pr-{n}.ai.shop.example.com"));
        assert_eq!(slot["ttlSeconds"], 8 * 3600);
        assert_eq!(slot["expired"], false);
        assert!(slot["idleSeconds"].as_u64().is_some_and(|s| s < 600), "{slot:#}");
    }
    assert_eq!(slots[0]["runId"], "r1");
    assert!(slots[1]["runId"].is_null());

    let text = project.ok(&["slots", "list", "--env", "ai"]).stdout;
    assert!(text.contains("ai/pr-1") && text.contains("ai/pr-2"), "{text}");
}

#[test]
fn slots_remove_commit_removes_the_slot_and_its_flux_file() {
    let project = committed_example();
    project.ok(&["render", "--env", "ai", "--slot", "pr-2", "--commit"]);
    let before = project.git(&["rev-parse", "HEAD"]).trim().to_owned();

    project.ok(&["slots", "remove", "--env", "ai", "--slot", "pr-1", "--commit"]);
    assert_eq!(project.git(&["rev-parse", "HEAD~1"]).trim(), before, "exactly one commit");
    for (status, path) in name_status(&project, "HEAD~1", "HEAD") {
        assert_eq!(status, "D", "{path}");
        assert!(path.starts_with("rendered/ai/pr-1/") || path == "rendered/flux/ai/pr-1.yaml", "removed {path}");
    }
    assert!(!project.exists("rendered/ai/pr-1") && !project.exists("rendered/flux/ai/pr-1.yaml"));
    assert!(project.exists("rendered/ai/pr-2/kustomization.yaml") && project.exists("rendered/flux/ai/pr-2.yaml"));
    assert!(project.exists("rendered/argocd/ai.yaml"), "the ApplicationSet still serves pr-2");
    let trailers = trailers(&project.root, &head_message(&project));
    assert_eq!(trailers.get("Rendered-From"), Some(&before), "a clean checkout is not dirty");
    project.assert_status_clean();
    project.assert_fsck_clean();
}

#[test]
fn slots_gc_removes_only_slots_idle_past_their_ttl() {
    let project = Project::example();
    project.ok(&["render", "--env", "ai", "--slot", "old", "--run-id", "r1"]);
    let two_days_ago = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - 2 * 24 * 3600;
    let date = format!("@{two_days_ago} +0000");
    project.git(&["add", "rendered"]);
    project.git_with(
        &["commit", "-q", "-m", "render(ai/old)"],
        &[("GIT_AUTHOR_DATE", &date), ("GIT_COMMITTER_DATE", &date)],
    );
    project.ok(&["render", "--env", "ai", "--slot", "fresh", "--run-id", "r2", "--commit"]);

    let slots: Json = serde_json::from_str(&project.ok(&["slots", "list", "--format", "json"]).stdout).unwrap();
    let expired: Vec<(&str, bool)> = slots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["slot"].as_str().unwrap(), s["expired"].as_bool().unwrap()))
        .collect();
    assert_eq!(expired, [("fresh", false), ("old", true)]);

    let head = project.git(&["rev-parse", "HEAD"]);
    let tree = project.snapshot_worktree();
    let dry = project.ok(&["slots", "gc", "--dry-run"]);
    assert!(dry.output().contains("ai/old") && !dry.output().contains("ai/fresh"), "{dry}");
    assert_eq!(project.git(&["rev-parse", "HEAD"]), head, "--dry-run committed");
    assert_same_tree(&tree, &project.snapshot_worktree(), "the project after gc --dry-run");

    project.ok(&["slots", "gc", "--commit"]);
    assert_eq!(project.git(&["rev-parse", "HEAD~1"]), head, "exactly one commit");
    assert_eq!(project.git(&["ls-tree", "--name-only", "HEAD:rendered/ai"]).trim(), "fresh");
    assert_eq!(project.git(&["ls-tree", "--name-only", "HEAD:rendered/flux/ai"]).trim(), "fresh.yaml");
    for (status, path) in name_status(&project, "HEAD~1", "HEAD") {
        assert_eq!(status, "D", "{path}");
        assert!(path.starts_with("rendered/ai/old/") || path == "rendered/flux/ai/old.yaml", "gc removed {path}");
    }
    assert!(!project.exists("rendered/ai/old") && project.exists("rendered/ai/fresh/kustomization.yaml"));
    project.assert_status_clean();
    project.assert_fsck_clean();

    let head = project.git(&["rev-parse", "HEAD"]);
    project.ok(&["slots", "gc", "--commit"]);
    assert_eq!(project.git(&["rev-parse", "HEAD"]), head, "a gc with nothing to remove committed");
}
