//! The slot contract in git (issue 12, items 1, 2 and 4): a slot records
//! the source it was rendered from and belongs to it; `render --all` from
//! another source never overwrites it; `--branch B --push R` starts from
//! R's tip whatever the local branch holds; removal on the deploy branch is
//! idempotent. Every test runs the real binary against a bare origin with
//! clones made by the `git` CLI.

use std::path::{Path, PathBuf};

use crate::support::{git_in, Project};

const WEB: &str = "rendered/ai/{slot}/40-frontend/web/deployment-web.yaml";

fn web(slot: &str) -> String {
    WEB.replace("{slot}", slot)
}

/// A bare origin holding the example on `main`, and its deploy branch
/// `rendered` as main's CI first rendered it (recording the walls every
/// pull request's slot is held to).
fn origin() -> (tempfile::TempDir, PathBuf) {
    let seed = Project::example();
    let dir = tempfile::Builder::new().prefix("codex-k8s-origin-").tempdir().unwrap();
    let bare = dir.path().join("origin.git");
    git_in(dir.path(), &["clone", "-q", "--bare", &seed.root.display().to_string(), &bare.display().to_string()]);
    Project::clone_of(&bare).ok(&["render", "--all", "--branch", "rendered", "--push", "origin"]);
    (dir, bare)
}

/// A file on origin's `rendered` branch, if present.
fn on_deploy_branch(bare: &Path, path: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(bare)
        .args(["show", &format!("rendered:{path}")])
        .output()
        .unwrap();
    out.status.success().then(|| String::from_utf8(out.stdout).unwrap())
}

/// A clone on branch `pr-N` whose web container listens on `port`, committed.
fn pull_request(bare: &Path, n: u32, port: u32) -> Project {
    let pr = Project::clone_of(bare);
    pr.git(&["checkout", "-q", "-b", &format!("pr-{n}")]);
    pr.edit("manifests/web/deployment.yaml.j2", "containerPort: 5173", &format!("containerPort: {port}"));
    pr.git(&["commit", "-q", "-am", &format!("pr {n}: web on {port}")]);
    pr
}

fn render_slot(pr: &Project, n: u32, extra: &[&str]) -> crate::support::Run {
    let slot = format!("pr-{n}");
    let source = format!("refs/pull/{n}/head");
    let mut args = vec!["render", "--env", "ai", "--slot", &slot, "--source-ref", &source];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--branch", "rendered", "--push", "origin"]);
    pr.run(&args)
}

#[test]
fn a_slot_records_its_source_and_main_never_overwrites_it() {
    let (_dir, bare) = origin();
    let main_before = git_in(&bare, &["rev-parse", "main"]);
    let pr = pull_request(&bare, 7, 5174);
    render_slot(&pr, 7, &[]).expect_code(0);
    let meta: serde_json::Value =
        serde_json::from_str(&on_deploy_branch(&bare, "rendered/ai/pr-7/.codex-k8s/target.json").unwrap()).unwrap();
    assert_eq!(meta["source"]["ref"], "refs/pull/7/head", "{meta}");
    assert_eq!(meta["source"]["commit"].as_str().unwrap(), pr.git(&["rev-parse", "HEAD"]).trim());
    let message = git_in(&bare, &["log", "-1", "--format=%B", "rendered"]);
    assert!(message.contains("Source-Ref: refs/pull/7/head"), "{message}");
    assert!(message.contains(&format!("Source-Commit: {}", pr.git(&["rev-parse", "HEAD"]).trim())), "{message}");
    let pr_render = on_deploy_branch(&bare, &web("pr-7")).unwrap();
    assert!(pr_render.contains("containerPort: 5174"), "{pr_render}");

    // main's CI, on a fresh clone and on a runner that has seen the deploy
    // branch: both leave the pull request's slot as it rendered it.
    let main = Project::clone_of(&bare);
    let run = main.ok(&["render", "--all", "--branch", "rendered", "--push", "origin"]);
    assert!(run.stderr.contains("left 1 slot(s) owned by other sources"), "{run}");
    main.git(&["fetch", "-q", "origin", "rendered:rendered"]);
    main.write("manifests/web/extra-note.txt", "a change on main\n");
    main.edit("manifests/web/deployment.yaml.j2", "containerPort: 8080", "containerPort: 8081");
    main.git(&["add", "-A"]);
    main.git(&["commit", "-q", "-m", "main: admin port 8081"]);
    main.git(&["push", "-q", "origin", "main"]);
    main.ok(&["render", "--all", "--branch", "rendered", "--push", "origin"]);
    assert_eq!(on_deploy_branch(&bare, &web("pr-7")).unwrap(), pr_render, "main's render changed the PR's slot");
    let staging = on_deploy_branch(&bare, "rendered/staging/40-frontend/web/deployment-web.yaml").unwrap();
    assert!(staging.contains("containerPort: 8081"), "main's own environments are rendered: {staging}");
    // CI never wrote main.
    let main_after = git_in(&bare, &["rev-parse", "main"]);
    assert_ne!(main_before, main_after, "the test pushed main itself");
    assert_eq!(git_in(&bare, &["log", "-1", "--format=%s", "main"]).trim(), "main: admin port 8081");
    // The pull request's own re-render replaces its slot.
    pr.edit("manifests/web/deployment.yaml.j2", "containerPort: 5174", "containerPort: 5175");
    pr.git(&["commit", "-q", "-am", "pr 7: web on 5175"]);
    render_slot(&pr, 7, &[]).expect_code(0);
    assert!(on_deploy_branch(&bare, &web("pr-7")).unwrap().contains("containerPort: 5175"));
    assert_eq!(git_in(&bare, &["rev-list", "--merges", "rendered"]).trim(), "", "the deploy branch is linear");
    git_in(&bare, &["fsck", "--strict"]);
}

#[test]
fn a_foreign_slot_is_refused_unless_adopted() {
    let (_dir, bare) = origin();
    let pr = pull_request(&bare, 3, 5174);
    render_slot(&pr, 3, &[]).expect_code(0);
    let main = Project::clone_of(&bare);
    let args = ["render", "--env", "ai", "--slot", "pr-3", "--branch", "rendered", "--push", "origin"];
    let refused = main.run(&args).expect_code(1);
    assert!(refused.stderr.contains("belongs to refs/pull/3/head") && refused.stderr.contains("--adopt"), "{refused}");
    assert!(on_deploy_branch(&bare, &web("pr-3")).unwrap().contains("containerPort: 5174"));
    let mut adopt = args.to_vec();
    adopt.push("--adopt");
    main.ok(&adopt);
    let meta = on_deploy_branch(&bare, "rendered/ai/pr-3/.codex-k8s/target.json").unwrap();
    assert!(meta.contains("\"ref\": \"refs/heads/main\""), "{meta}");
    assert!(on_deploy_branch(&bare, &web("pr-3")).unwrap().contains("containerPort: 5173"));
    // The source ref can come from the environment, and is checked.
    let env = main.run_with(&args[..7], &[("CODEX_K8S_SOURCE_REF", "refs/heads/a b")]).expect_code(1);
    assert!(env.stderr.contains("invalid source ref"), "{env}");
}

#[test]
fn branch_push_starts_from_the_remote_tip_whatever_the_local_branch_holds() {
    let (_dir, bare) = origin();
    // A persistent runner: its local `rendered` holds an old tip, plus a
    // commit of its own that never reached origin.
    let runner = pull_request(&bare, 1, 5174);
    render_slot(&runner, 1, &[]).expect_code(0);
    let other = pull_request(&bare, 2, 5176);
    render_slot(&other, 2, &[]).expect_code(0);
    runner.git(&["fetch", "-q", "origin", "rendered:rendered"]);
    let local = Project::clone_of(&bare);
    local.git(&["fetch", "-q", "origin", "rendered:rendered"]);
    render_slot(&other, 4, &[]).expect_code(0);
    // A shallow clone renders too (history is not needed to render).
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", bare.display());
    git_in(tmp.path(), &["clone", "-q", "--depth", "1", &url, "shallow"]);
    let shallow = Project::at(tmp, "shallow");
    assert_eq!(shallow.git(&["rev-parse", "--is-shallow-repository"]).trim(), "true");
    shallow.git(&["checkout", "-q", "-b", "pr-5"]);
    render_slot(&shallow, 5, &[]).expect_code(0);
    render_slot(&runner, 1, &["--set", "versions.users=1.2.3"]).expect_code(0);
    for n in [1, 2, 4, 5] {
        assert!(on_deploy_branch(&bare, &web(&format!("pr-{n}"))).is_some(), "pr-{n} lost");
    }
    assert!(on_deploy_branch(&bare, &web("pr-2")).unwrap().contains("containerPort: 5176"));
    assert_eq!(git_in(&bare, &["rev-list", "--merges", "rendered"]).trim(), "");
    git_in(&bare, &["fsck", "--strict"]);
}

#[test]
fn removing_a_slot_from_the_deploy_branch_is_idempotent() {
    let (_dir, bare) = origin();
    let pr = pull_request(&bare, 8, 5174);
    render_slot(&pr, 8, &[]).expect_code(0);
    render_slot(&pr, 9, &[]).expect_code(0);
    let closer = Project::clone_of(&bare);
    let listed = closer.ok(&["slots", "list", "--branch", "rendered", "--push", "origin", "--format", "json"]);
    let slots: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let names: Vec<&str> = slots.as_array().unwrap().iter().map(|s| s["slot"].as_str().unwrap()).collect();
    assert_eq!(names, ["pr-8", "pr-9"], "{listed}");
    assert_eq!(slots[0]["source"]["ref"], "refs/pull/8/head");
    assert!(slots[0]["lastChange"].as_i64().is_some(), "idle time comes from the deploy branch's history: {listed}");
    let remove = ["slots", "remove", "--env", "ai", "--slot", "pr-8", "--branch", "rendered", "--push", "origin"];
    let first = closer.ok(&remove);
    assert!(first.stderr.contains("removed ai/pr-8"), "{first}");
    assert!(on_deploy_branch(&bare, &web("pr-8")).is_none());
    assert!(on_deploy_branch(&bare, "rendered/flux/ai/pr-8.yaml").is_none());
    assert!(on_deploy_branch(&bare, &web("pr-9")).is_some(), "the other slot stays");
    let message = git_in(&bare, &["log", "-1", "--format=%B", "rendered"]);
    assert!(
        message.contains("Removed-By: codex-k8s slots remove") && message.contains("Targets: ai/pr-8"),
        "{message}"
    );
    let tip = git_in(&bare, &["rev-parse", "rendered"]);
    // Closed twice, and from a fresh clone: success, nothing written.
    let second = closer.ok(&remove);
    assert!(second.stderr.contains("ai/pr-8: already absent"), "{second}");
    Project::clone_of(&bare).ok(&remove);
    assert_eq!(git_in(&bare, &["rev-parse", "rendered"]), tip);
    // Absent from the work tree too.
    let local = closer.ok(&["slots", "remove", "--env", "ai", "--slot", "pr-8"]);
    assert!(local.stderr.contains("already absent"), "{local}");
    // An unknown environment is still an error.
    closer.run(&["slots", "remove", "--env", "nope", "--slot", "pr-8"]).expect_code(1);
}

#[test]
fn a_detached_head_must_name_its_source_to_render_a_slot() {
    let (_dir, bare) = origin();
    let ci = Project::clone_of(&bare);
    ci.git(&["checkout", "-q", "--detach"]);
    ci.git(&["fetch", "-q", "origin", "rendered:rendered"]);
    let run = ci.run(&["render", "--env", "ai", "--slot", "pr-6", "--branch", "rendered"]).expect_code(1);
    assert!(run.stderr.contains("--source-ref"), "{run}");
    ci.ok(&["render", "--env", "ai", "--slot", "pr-6", "--branch", "rendered", "--source-ref", "refs/pull/6/head"]);
}
