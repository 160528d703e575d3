//! Issue 10, the tree and git side of "a slot is a sealed box": the output
//! tree is never followed out through a symlink (class 1), a command checks
//! every precondition before writing and rolls back when a later step fails
//! (class 8), git rules hold as git itself enforces them (class 9), concurrent
//! pushes neither fail nor break `maxSlots` (class 10), and a shallow clone
//! never yields idle times (class 11). Every result is checked with the `git`
//! CLI on real repositories.

use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::Instant;

use crate::support::{assert_fsck_clean, git_in, snapshot, Project, Run, Tree, GIT_IDENTITY};

/// A directory outside the project holding a sentinel file, and its snapshot.
struct Outside {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    before: Tree,
}

impl Outside {
    fn new() -> Outside {
        let tmp = tempfile::Builder::new().prefix("codex-k8s-outside-").tempdir().unwrap();
        let dir = tmp.path().join("sentinel-dir");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sentinel.txt"), "do not touch\n").unwrap();
        std::fs::write(dir.join("sub/kustomization.yaml"), "outside\n").unwrap();
        let before = snapshot(&dir);
        Outside { _tmp: tmp, dir, before }
    }

    fn assert_untouched(&self, what: &str) {
        let after = snapshot(&self.dir);
        assert_eq!(after, self.before, "{what}: the directory outside the repository changed");
        let names: Vec<_> = std::fs::read_dir(&self.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{what}: entries outside: {names:?}");
    }
}

/// Replaces `rel` (file or directory) in the project with a symlink to `to`, committed.
fn plant_link(project: &Project, rel: &str, to: &Path) {
    let path = project.path(rel);
    if path.is_dir() {
        std::fs::remove_dir_all(&path).unwrap();
    } else if path.symlink_metadata().is_ok() {
        std::fs::remove_file(&path).unwrap();
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(to, &path).unwrap();
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", &format!("plant a link at {rel}")]);
}

/// The example with slot `ai/pr-1` and every plain environment rendered and committed.
fn rendered_example() -> Project {
    let project = Project::example();
    project.ok(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1", "--commit"]);
    project.ok(&["render", "--all", "--commit"]);
    project
}

fn status(project: &Project) -> String {
    project.git(&["status", "--porcelain", "--untracked-files=all"])
}

fn head(project: &Project) -> String {
    project.git(&["rev-parse", "HEAD"]).trim().to_owned()
}

fn bare_clone_of(project: &Project) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("codex-k8s-origin-").tempdir().unwrap();
    let bare = dir.path().join("origin.git");
    git_in(dir.path(), &["clone", "-q", "--bare", &project.root.display().to_string(), &bare.display().to_string()]);
    (dir, bare)
}

// ------------------------------------------------------------------ class 1: symlinks

/// Each place of the tree a link can sit, what it points at, and what to run.
const LINK_CASES: &[(&str, bool, &[&str])] = &[
    ("rendered/dev", true, &["render", "--env", "dev"]),
    ("rendered/ai", true, &["render", "--env", "ai", "--slot", "pr-1"]),
    ("rendered/ai/pr-1", true, &["render", "--env", "ai", "--slot", "pr-1"]),
    ("rendered/argocd", true, &["render", "--env", "dev"]),
    ("rendered/flux", true, &["render", "--env", "dev"]),
    ("rendered/flux/ai", true, &["render", "--env", "ai", "--slot", "pr-1"]),
    ("rendered/dev/.codex-k8s", true, &["render", "--env", "dev", "--force"]),
    ("rendered/dev/00-stateful", true, &["render", "--env", "dev", "--force"]),
    ("rendered/dev/kustomization.yaml", false, &["render", "--env", "dev", "--force"]),
    ("rendered/argocd/dev.yaml", false, &["render", "--env", "dev", "--force"]),
    ("rendered/flux/dev.yaml", false, &["render", "--env", "dev", "--force"]),
    ("rendered/.codex-k8s-staging", true, &["render", "--env", "dev", "--force"]),
    ("rendered/.codex-k8s-trash", true, &["render", "--env", "dev", "--force"]),
    ("rendered/ai/pr-1", true, &["slots", "remove", "--env", "ai", "--slot", "pr-1"]),
    ("rendered/flux/ai", true, &["slots", "remove", "--env", "ai", "--slot", "pr-1"]),
    ("rendered/dev", true, &["render", "--env", "dev", "--check"]),
];

#[test]
fn a_symlink_anywhere_in_the_tree_is_an_error_naming_it_and_nothing_outside_changes() {
    for (rel, is_dir, args) in LINK_CASES {
        let project = rendered_example();
        let outside = Outside::new();
        let target = if *is_dir { outside.dir.clone() } else { outside.dir.join("sentinel.txt") };
        plant_link(&project, rel, &target);
        let before = project.snapshot_worktree();
        let run = project.run(args);
        let what = format!("link at {rel}, `{}`", args.join(" "));
        assert_eq!(run.code, Some(1), "{what} must fail\n{run}");
        assert!(
            run.stderr.contains(rel) && run.stderr.contains("symbolic link"),
            "{what}: error names the link\n{run}"
        );
        outside.assert_untouched(&what);
        assert_eq!(project.snapshot_worktree(), before, "{what}: the project changed");
        assert!(project.path(rel).symlink_metadata().unwrap().file_type().is_symlink(), "{what}: link replaced");
    }
}

#[test]
fn a_symlink_inside_a_slot_is_refused_by_render_all_and_commit() {
    let project = rendered_example();
    let outside = Outside::new();
    plant_link(&project, "rendered/ai/pr-1/00-stateful", &outside.dir);
    let head_before = head(&project);
    let run = project.run(&["render", "--all", "--commit"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("rendered/ai/pr-1/00-stateful"), "{run}");
    outside.assert_untouched("render --all --commit");
    assert_eq!(head(&project), head_before, "no commit");
}

// ------------------------------------------------------------------ class 8: all or nothing

#[test]
fn a_detached_head_is_refused_before_anything_is_written() {
    let project = Project::example();
    project.git(&["checkout", "-q", "--detach"]);
    project.edit("services.yaml", "users: \"1.4.0\"", "users: \"9.9.9\"");
    project.git(&["commit", "-q", "-am", "users 9.9.9"]);
    let before = project.snapshot("rendered");
    for args in [&["render", "--all", "--commit"][..], &["render", "--all", "--commit", "--push", "origin"][..]] {
        let run = project.run(args);
        assert_eq!(run.code, Some(1), "{run}");
        assert!(run.stderr.contains("detached"), "{run}");
        assert_eq!(project.snapshot("rendered"), before, "{}: the tree was written", args.join(" "));
    }
}

#[test]
fn a_missing_remote_is_refused_before_anything_is_written() {
    let project = Project::example();
    project.edit("services.yaml", "users: \"1.4.0\"", "users: \"9.9.9\"");
    project.git(&["commit", "-q", "-am", "users 9.9.9"]);
    let before = project.snapshot("rendered");
    let head_before = head(&project);
    let run = project.run(&["render", "--all", "--commit", "--push", "nosuchremote"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("nosuchremote"), "{run}");
    assert_eq!(project.snapshot("rendered"), before, "the tree was written");
    assert_eq!(head(&project), head_before, "a commit was made");
}

#[test]
fn a_locked_index_is_refused_before_commit_or_push() {
    let project = Project::example();
    let (_dir, bare) = bare_clone_of(&project);
    project.git(&["remote", "add", "origin", &bare.display().to_string()]);
    project.edit("services.yaml", "users: \"1.4.0\"", "users: \"9.9.9\"");
    project.git(&["commit", "-q", "-am", "bump"]);
    project.git(&["push", "-q", "origin", "main"]);
    let origin_before = git_in(&bare, &["rev-parse", "main"]);
    std::fs::write(project.path(".git/index.lock"), "").unwrap();
    let before = project.snapshot("rendered");
    let head_before = head(&project);
    for args in [&["render", "--all", "--commit"][..], &["render", "--all", "--commit", "--push", "origin"][..]] {
        let run = project.run(args);
        assert_eq!(run.code, Some(1), "{run}");
        assert!(run.stderr.contains("index.lock"), "{run}");
        assert_eq!(project.snapshot("rendered"), before, "{}: the tree was written", args.join(" "));
        assert_eq!(head(&project), head_before, "a commit was made");
        assert_eq!(git_in(&bare, &["rev-parse", "main"]), origin_before, "origin moved");
    }
    std::fs::remove_file(project.path(".git/index.lock")).unwrap();
    assert_eq!(status(&project), "", "the index or the work tree changed");
}

#[test]
fn a_stale_ref_lock_is_refused_before_anything_is_written() {
    // What a process killed while git updated a ref leaves behind.
    let project = Project::example();
    project.edit("services.yaml", "users: \"1.4.0\"", "users: \"9.9.9\"");
    project.git(&["commit", "-q", "-am", "bump"]);
    project.ok(&["render", "--all", "--branch", "rendered"]);
    project.edit("services.yaml", "users: \"9.9.9\"", "users: \"9.9.8\"");
    project.git(&["commit", "-q", "-am", "bump again"]);
    let before = project.snapshot("rendered");
    let head_before = head(&project);
    let deploy_before = project.git(&["rev-parse", "rendered"]);
    for (lock, args) in [
        (".git/refs/heads/main.lock", &["render", "--all", "--commit"][..]),
        (".git/refs/heads/rendered.lock", &["render", "--all", "--branch", "rendered"][..]),
    ] {
        std::fs::write(project.path(lock), "").unwrap();
        let run = project.run(args);
        assert_eq!(run.code, Some(1), "{run}");
        assert!(run.stderr.contains(lock.trim_start_matches(".git/")), "{lock}: {run}");
        assert!(run.stderr.contains("remove the file"), "{lock}: {run}");
        assert_eq!(project.snapshot("rendered"), before, "{lock}: the tree was written");
        assert_eq!(head(&project), head_before, "{lock}: a commit was made");
        assert_eq!(project.git(&["rev-parse", "rendered"]), deploy_before, "{lock}: the deploy branch moved");
        std::fs::remove_file(project.path(lock)).unwrap();
    }
}

#[test]
fn a_directory_where_a_file_goes_or_a_file_where_a_directory_goes_is_named() {
    for (rel, make_dir) in
        [("rendered/flux/dev.yaml", true), ("rendered/argocd/dev.yaml", true), ("rendered/dev", false)]
    {
        let project = rendered_example();
        project.edit("services.yaml", "users: \"1.4.0\"", "users: \"9.9.9\"");
        let path = project.path(rel);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
        if make_dir {
            std::fs::create_dir_all(path.join("x")).unwrap();
            std::fs::write(path.join("x/keep"), "x").unwrap();
        } else {
            std::fs::write(&path, "a file").unwrap();
        }
        let before = project.snapshot_worktree();
        let run = project.run(&["render", "--all"]);
        assert_eq!(run.code, Some(1), "{rel}\n{run}");
        assert!(run.stderr.contains(rel), "{rel}: the error names the path\n{run}");
        assert_eq!(project.snapshot_worktree(), before, "{rel}: something was written");
    }
}

#[test]
fn a_rejected_push_rolls_back_the_tree_and_the_branch() {
    let project = Project::example();
    let (_dir, bare) = bare_clone_of(&project);
    project.git(&["remote", "add", "origin", &bare.display().to_string()]);
    project.git(&["fetch", "-q", "origin"]);
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'renders are frozen today' >&2\nexit 1\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&hook).unwrap().permissions(), 0o755);
    std::process::Command::new("chmod").arg("755").arg(&hook).status().unwrap();
    project.edit("services.yaml", "users: \"1.4.0\"", "users: \"9.9.9\"");
    project.git(&["commit", "-q", "-am", "bump"]);
    let before = project.snapshot("rendered");
    let head_before = head(&project);
    let run = project.run(&["render", "--all", "--commit", "--push", "origin"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(project.snapshot("rendered"), before, "the tree was not rolled back");
    assert_eq!(head(&project), head_before, "the branch was not rolled back");
    assert_eq!(status(&project), "", "index or work tree left changed");
}

// ------------------------------------------------------------------ class 9: git rules

#[test]
fn branch_naming_the_checked_out_branch_or_head_is_refused() {
    let project = Project::example();
    project.edit("services.yaml", "users: \"1.4.0\"", "users: \"9.9.9\"");
    project.git(&["commit", "-q", "-am", "bump"]);
    let head_before = head(&project);
    for branch in ["main", "refs/heads/main", "HEAD", "refs/heads/HEAD", "-x", "a..b"] {
        let run = project.run(&["render", "--all", &format!("--branch={branch}")]);
        assert_eq!(run.code, Some(1), "--branch {branch}\n{run}");
        assert!(run.stderr.contains("--branch"), "--branch {branch}\n{run}");
        assert_eq!(head(&project), head_before, "--branch {branch} moved HEAD");
        assert_eq!(status(&project), "", "--branch {branch} left the index stale");
    }
    assert_eq!(project.git(&["for-each-ref", "refs/heads/HEAD"]), "");
    // Another branch still works and leaves the checkout alone.
    project.ok(&["render", "--all", "--branch", "rendered-main"]);
    assert_eq!(head(&project), head_before);
    assert_eq!(status(&project), "");
}

#[test]
fn pushing_to_the_checked_out_branch_of_a_non_bare_repository_is_refused() {
    let origin = Project::example();
    let clone = Project::clone_of(&origin.root);
    let origin_head = head(&origin);
    let run = clone.run(&["render", "--env", "ai", "--slot", "pr-9", "--commit", "--push", "origin"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("checked out"), "{run}");
    assert!(!run.stderr.contains("very busy") && !run.stderr.contains("pushed to"), "{run}");
    assert_eq!(head(&origin), origin_head, "origin's checked-out branch moved");
    assert_eq!(status(&origin), "", "origin's work tree went stale");
}

#[test]
fn a_local_remote_runs_its_hooks_and_a_pre_receive_rejection_is_reported_as_such() {
    let project = Project::example();
    let (dir, bare) = bare_clone_of(&project);
    let clone = Project::clone_of(&bare);
    let marker = dir.path().join("hook-ran");
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\ntouch '{}'\necho 'slot pushes need a review' >&2\nexit 1\n", marker.display()),
    )
    .unwrap();
    Process::new("chmod").arg("755").arg(&hook).status().unwrap();
    let tip = git_in(&bare, &["rev-parse", "main"]);
    let started = Instant::now();
    let run = clone.run(&["render", "--env", "ai", "--slot", "pr-9", "--commit", "--push", "origin"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(marker.exists(), "pre-receive did not run");
    assert!(run.stderr.contains("pre-receive") && run.stderr.contains("slot pushes need a review"), "{run}");
    assert!(!run.stderr.contains("very busy") && !run.stderr.contains("pushed to"), "{run}");
    assert!(started.elapsed().as_secs() < 20, "retried a rejection");
    assert_eq!(git_in(&bare, &["rev-parse", "main"]), tip);
    // With the hook accepting, the push lands (and file:// URLs behave the same).
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    clone.git(&["remote", "set-url", "origin", &format!("file://{}", bare.display())]);
    clone.ok(&["render", "--env", "ai", "--slot", "pr-9", "--commit", "--push", "origin"]);
    assert_ne!(git_in(&bare, &["rev-parse", "main"]), tip);
    assert_fsck_clean(&bare);
}

// ------------------------------------------------------------------ class 10: concurrency

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `CODEX_K8S_STRESS_PROCS` concurrent pushers, each pushing
/// `CODEX_K8S_STRESS_PUSHES` renders of its own slot (a new run id each time).
#[test]
fn concurrent_pushes_never_fail_and_every_commit_lands() {
    let procs = env_usize("CODEX_K8S_STRESS_PROCS", 4);
    let pushes = env_usize("CODEX_K8S_STRESS_PUSHES", 6);
    let project = Project::example();
    let (_dir, bare) = bare_clone_of(&project);
    let initial: usize = git_in(&bare, &["rev-list", "--count", "main"]).trim().parse().unwrap();
    let clones: Vec<Project> = (0..procs).map(|_| Project::clone_of(&bare)).collect();
    let started = Instant::now();
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = clones
            .iter()
            .enumerate()
            .map(|(i, clone)| {
                s.spawn(move || {
                    let mut failed = Vec::new();
                    for j in 0..pushes {
                        let out = Process::new(crate::support::bin())
                            .arg("-C")
                            .arg(&clone.root)
                            .args(["render", "--env", "ai", "--slot", &format!("s-{i}"), "--run-id"])
                            .arg(format!("r{j}"))
                            .args(["--commit", "--push", "origin"])
                            .envs(GIT_IDENTITY.iter().copied())
                            .env("CI", "1")
                            .env("NO_COLOR", "1")
                            .stdout(Stdio::piped())
                            .stderr(Stdio::piped())
                            .output()
                            .unwrap();
                        if !out.status.success() {
                            failed.push(format!("s-{i} r{j}: {}", String::from_utf8_lossy(&out.stderr)));
                        }
                    }
                    failed
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    eprintln!(
        "stress: {} pushes from {procs} processes, {} failures, {:.1}s",
        procs * pushes,
        failures.len(),
        elapsed.as_secs_f64()
    );
    assert!(failures.is_empty(), "{} push(es) failed:\n{}", failures.len(), failures.join("\n"));
    let count: usize = git_in(&bare, &["rev-list", "--count", "main"]).trim().parse().unwrap();
    assert_eq!(count, initial + procs * pushes, "every commit landed");
    assert_eq!(git_in(&bare, &["rev-list", "--merges", "main"]), "", "history is linear");
    for i in 0..procs {
        let info = git_in(&bare, &["show", &format!("main:rendered/ai/s-{i}/.codex-k8s/target.json")]);
        assert!(info.contains(&format!("\"runId\": \"r{}\"", pushes - 1)), "s-{i} holds its last run");
    }
    assert_fsck_clean(&bare);
    assert_eq!(git_in(&bare, &["for-each-ref", "refs/codex-k8s"]), "", "scratch refs left on the remote");
}

/// Another `codex-k8s` push holding the remote's turn past the deadline: the
/// run gives up naming the remote and the timeout, and rolls everything back.
#[test]
fn a_push_that_never_gets_its_turn_gives_up_at_the_deadline_and_rolls_back() {
    let seed = rendered_example();
    let (_dir, bare) = bare_clone_of(&seed);
    let clone = Project::clone_of(&bare);
    let tip = git_in(&bare, &["rev-parse", "main"]);
    let before = clone.snapshot("rendered");
    let head_before = head(&clone);
    let args = ["render", "--env", "ai", "--slot", "pr-9", "--commit", "--push", "origin"];
    let held = std::fs::File::open(&bare).unwrap();
    fs2::FileExt::lock_exclusive(&held).unwrap();
    let started = Instant::now();
    let run = clone.run_with(&args, &[("CODEX_K8S_PUSH_TIMEOUT", "2s")]);
    let waited = started.elapsed();
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("stayed locked by other codex-k8s pushes"), "{run}");
    assert!(run.stderr.contains("CODEX_K8S_PUSH_TIMEOUT"), "{run}");
    assert!(waited >= std::time::Duration::from_secs(2) && waited < std::time::Duration::from_secs(60), "{waited:?}");
    assert_eq!(git_in(&bare, &["rev-parse", "main"]), tip, "nothing reached the remote");
    assert_eq!(clone.snapshot("rendered"), before, "the tree was rolled back");
    assert_eq!(head(&clone), head_before, "the branch was rolled back");
    assert_eq!(status(&clone), "", "index and work tree as before");
    // Once the other push is done, the same run lands.
    drop(held);
    clone.ok(&args);
    assert_ne!(git_in(&bare, &["rev-parse", "main"]), tip);
    assert_fsck_clean(&bare);
}

#[test]
fn a_bad_push_timeout_is_refused_before_anything_is_written() {
    let seed = rendered_example();
    let (_dir, bare) = bare_clone_of(&seed);
    let clone = Project::clone_of(&bare);
    let before = clone.snapshot("rendered");
    for bad in ["soon", "0", "-5", ""] {
        let run = clone.run_with(
            &["render", "--env", "ai", "--slot", "pr-9", "--commit", "--push", "origin"],
            &[("CODEX_K8S_PUSH_TIMEOUT", bad)],
        );
        assert_eq!(run.code, Some(1), "{run}");
        assert!(run.stderr.contains(&format!("CODEX_K8S_PUSH_TIMEOUT={bad}: not a duration")), "{run}");
        assert_eq!(clone.snapshot("rendered"), before, "{bad:?}: nothing written");
        assert_eq!(status(&clone), "");
    }
}

#[test]
fn max_slots_holds_across_concurrent_pushers() {
    const JOBS: usize = 6;
    let seed = rendered_example();
    seed.edit("environments/ai.yaml", "maxSlots: 20", "maxSlots: 3");
    // Only pr-1 is in the tree: two more fit.
    seed.git(&["commit", "-q", "-am", "maxSlots: 3"]);
    let (_dir, bare) = bare_clone_of(&seed);
    let clones: Vec<Project> = (0..JOBS).map(|_| Project::clone_of(&bare)).collect();
    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = clones
            .iter()
            .enumerate()
            .map(|(i, clone)| {
                s.spawn(move || {
                    clone.run(&["render", "--env", "ai", "--slot", &format!("c-{i}"), "--commit", "--push", "origin"])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = runs.iter().filter(|r| r.code == Some(0)).count();
    let slots = git_in(&bare, &["ls-tree", "--name-only", "main:rendered/ai"]);
    assert_eq!(slots.lines().count(), 3, "slots on origin: {slots}");
    assert_eq!(ok, 2, "two new slots fit");
    for r in runs.iter().filter(|r| r.code != Some(0)) {
        assert!(r.stderr.contains("maxSlots"), "{r}");
    }
    assert_fsck_clean(&bare);
}

// ------------------------------------------------------------------ class 11: shallow clones

/// The example with slot pr-1 committed long ago and a newer unrelated commit, cloned `--depth 1`.
fn shallow_clone() -> (Project, Project) {
    let origin = Project::example();
    let old = [("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z"), ("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z")];
    origin.git_with(&["commit", "-q", "--allow-empty", "-m", "old"], &old);
    origin.ok(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "old", "--commit"]);
    origin.git_with(&["commit", "-q", "--amend", "--no-edit", "--date=2020-01-02T00:00:00Z"], &old);
    origin.write("README.extra", "newer\n");
    origin.git(&["add", "README.extra"]);
    origin.git(&["commit", "-q", "-m", "newer, unrelated"]);
    let tmp = tempfile::Builder::new().prefix("codex-k8s-shallow-").tempdir().unwrap();
    git_in(tmp.path(), &["clone", "-q", "--depth", "1", &format!("file://{}", origin.root.display()), "shallow"]);
    let shallow = Project::at(tmp, "shallow");
    (origin, shallow)
}

#[test]
fn slots_list_and_gc_refuse_a_shallow_clone_with_the_command_to_run() {
    let (origin, shallow) = shallow_clone();
    assert!(origin.ok(&["slots", "list", "--format", "json"]).stdout.contains("\"expired\": true"));
    assert_eq!(shallow.git(&["rev-parse", "--is-shallow-repository"]).trim(), "true");
    for args in [
        &["slots", "list"][..],
        &["slots", "list", "--format", "json"][..],
        &["slots", "gc", "--dry-run"][..],
        &["slots", "gc", "--commit"][..],
    ] {
        let before = shallow.snapshot_worktree();
        let run = shallow.run(args);
        assert_eq!(run.code, Some(1), "{}\n{run}", args.join(" "));
        assert!(run.stderr.contains("shallow") && run.stderr.contains("git fetch --unshallow"), "{run}");
        assert!(!run.stdout.contains("pr-1"), "printed an idle time: {run}");
        assert_eq!(shallow.snapshot_worktree(), before);
    }
    shallow.git(&["fetch", "-q", "--unshallow"]);
    assert!(shallow.ok(&["slots", "list", "--format", "json"]).stdout.contains("\"expired\": true"));
}

#[cfg(feature = "watch")]
#[test]
fn the_watchers_git_activity_refuses_a_shallow_clone() {
    let (_origin, shallow) = shallow_clone();
    let src = codex_k8s::watch::source::Source {
        repo: shallow.root.clone(),
        prefix: "rendered".into(),
        remote: None,
        branch: None,
        inventory: shallow.root.join("services.yaml"),
    };
    let err = codex_k8s::watch::source::read_state(&src, &["ai".to_owned()], &[("ai".into(), "pr-1".into())])
        .map(|_| ())
        .expect_err("a shallow clone is refused");
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    assert!(text.contains("shallow") && text.contains("--unshallow"), "{text}");
}
