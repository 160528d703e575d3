//! `render --all --shard I/N`: the shards of a CI matrix, each pushing to a
//! bare remote, add up to exactly what one `render --all` commits.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::support::{assert_fsck_clean, git_in, Project};

const SLOTS: usize = 8;

/// A bare repository holding the example with slots `s-1`…`s-8` and the
/// plain environments rendered and committed, then `versions.users` bumped
/// (committed, not rendered): every target is out of date.
fn origin_with_stale_targets() -> (tempfile::TempDir, PathBuf) {
    let seed = Project::example();
    for n in 1..=SLOTS {
        seed.ok(&["render", "--env", "ai", "--slot", &format!("s-{n}"), "--run-id", &format!("r{n}"), "--commit"]);
    }
    seed.ok(&["render", "--all", "--commit"]);
    seed.edit("services.yaml", "users: \"1.4.0\"", "users: \"9.9.9\"");
    seed.git(&["commit", "-q", "-am", "bump users to 9.9.9"]);
    let dir = tempfile::Builder::new().prefix("codex-k8s-origin-").tempdir().unwrap();
    let bare = dir.path().join("origin.git");
    git_in(dir.path(), &["clone", "-q", "--bare", &seed.root.display().to_string(), &bare.display().to_string()]);
    (dir, bare)
}

/// The target directories (`dev`, `ai/s-1`, …) a commit touches below `rendered/`.
fn targets_touched(repo: &Path, commit: &str) -> BTreeSet<String> {
    git_in(repo, &["show", "--name-only", "--format=", commit])
        .lines()
        .filter_map(|p| p.strip_prefix("rendered/"))
        .filter(|p| !p.starts_with("argocd/") && !p.starts_with("flux/"))
        .map(|p| {
            let parts: Vec<&str> = p.split('/').collect();
            if parts[0] == "ai" {
                format!("ai/{}", parts[1])
            } else {
                parts[0].to_owned()
            }
        })
        .collect()
}

#[test]
fn shards_pushed_one_after_the_other_equal_one_render_all() {
    let (_dir, bare) = origin_with_stale_targets();
    let start = git_in(&bare, &["rev-parse", "main"]).trim().to_owned();

    // The whole, in a clone of its own.
    let whole = Project::clone_of(&bare);
    whole.ok(&["render", "--all", "--commit"]);
    let whole_tree = whole.git(&["rev-parse", "HEAD:rendered"]);

    // Two matrix jobs cloned at the same commit; the second pushes after the
    // first, so its push is rejected once and rebuilt on the new tip.
    let one = Project::clone_of(&bare);
    let two = Project::clone_of(&bare);
    let first = one.ok(&["render", "--all", "--shard", "1/2", "--commit", "--push", "origin"]);
    let second = two.ok(&["render", "--all", "--shard", "2/2", "--commit", "--push", "origin"]);
    assert!(first.stderr.contains("pushed to origin"), "{first}");
    assert!(second.stderr.contains("pushed to origin"), "{second}");

    assert_eq!(git_in(&bare, &["rev-parse", "main:rendered"]), whole_tree, "the shards' union differs from --all");
    assert_eq!(git_in(&bare, &["rev-list", "--count", &format!("{start}..main")]).trim(), "2");
    assert_eq!(git_in(&bare, &["rev-list", "--merges", "main"]), "", "history is not linear");

    // Each shard rendered a part, the parts are disjoint and cover every target.
    let a = targets_touched(&bare, "main~1");
    let b = targets_touched(&bare, "main");
    assert!(!a.is_empty() && !b.is_empty(), "a shard is empty: {a:?} / {b:?}");
    assert!(a.is_disjoint(&b), "both shards rendered {:?}", a.intersection(&b).collect::<Vec<_>>());
    let mut all: BTreeSet<String> = ["dev", "platform", "staging"].iter().map(|s| s.to_string()).collect();
    all.extend((1..=SLOTS).map(|n| format!("ai/s-{n}")));
    assert_eq!(a.union(&b).cloned().collect::<BTreeSet<_>>(), all);
    assert_fsck_clean(&bare);

    // The second job's work tree followed the remote: nothing left to render.
    two.assert_status_clean();
    let fresh = Project::clone_of(&bare);
    fresh.ok(&["render", "--all", "--check"]);
}

#[test]
fn shard_rendering_leaves_the_other_shards_targets_alone() {
    let (_dir, bare) = origin_with_stale_targets();
    let project = Project::clone_of(&bare);
    let before = project.snapshot("rendered");
    project.ok(&["render", "--all", "--shard", "2/3"]);
    let after = project.snapshot("rendered");
    let mut rendered = BTreeSet::new();
    for (path, bytes) in &after {
        let target = path.split("/.codex-k8s/").next().unwrap_or_default();
        if before.get(path) != Some(bytes) && path.ends_with(".codex-k8s/target.json") {
            rendered.insert(target.to_owned());
        }
    }
    assert!(!rendered.is_empty(), "shard 2/3 rendered nothing");
    for (path, bytes) in &before {
        let target = rendered.iter().find(|t| path.starts_with(&format!("{t}/")));
        if target.is_none() && !path.starts_with("flux/") && !path.starts_with("argocd/") {
            assert_eq!(after.get(path), Some(bytes), "{path} of another shard changed");
        }
    }
    // Its own targets are current, the others still stale.
    let check = project.run(&["render", "--all", "--check"]).expect_code(3);
    for t in &rendered {
        assert!(!check.stdout.contains(&format!("rendered/{t}/")), "{t} still drifts\n{check}");
    }
    project.ok(&["render", "--all", "--shard", "2/3", "--check"]);
}

#[test]
fn a_bad_shard_is_a_usage_error_before_anything_is_loaded() {
    let project = Project::example();
    for (args, says) in [
        (vec!["render", "--all", "--shard", "0/2"], "numbered from 1"),
        (vec!["render", "--all", "--shard", "3/2"], "does not exist in 2"),
        (vec!["render", "--all", "--shard", "1/0"], "at least 1"),
        (vec!["render", "--all", "--shard", "half"], "not a shard"),
        (vec!["render", "--env", "dev", "--shard", "1/2"], "--all"),
    ] {
        let run = project.run(&args).expect_code(2);
        assert!(run.stderr.contains(says), "{}: expected `{says}`\n{run}", args.join(" "));
    }
    assert!(!project.exists("rendered"));
}
