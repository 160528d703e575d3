//! A plain render streams each target through the staging area as soon as
//! it is rendered: a failure must still leave the tree exactly as it was,
//! in a git repository or not (where the lock file lives in the tree).

use crate::support::{assert_same_tree, Project};

/// The example without a git repository.
fn example_without_git() -> Project {
    let project = Project::example();
    std::fs::remove_dir_all(project.path(".git")).expect("remove .git");
    project
}

fn break_one_target(project: &Project) {
    let job = "manifests/users-migrate/job.yaml.j2";
    project.write(
        job,
        &format!("{}\n{{% if env == \"ai\" %}}{{{{ fail(\"injected failure\") }}}}{{% endif %}}\n", project.read(job)),
    );
}

#[test]
fn a_failed_first_render_without_git_leaves_no_tree_behind() {
    let project = example_without_git();
    break_one_target(&project);
    let before = project.snapshot_worktree();
    let run = project.run(&["render", "--env", "ai", "--slot", "pr-1", "--slot", "pr-2"]).expect_code(1);
    assert!(run.stderr.contains("injected failure") && run.stderr.contains("nothing was written"), "{run}");
    assert_same_tree(&before, &project.snapshot_worktree(), "the project after the failed render");
    assert!(!project.exists("rendered"), "the failed render left an empty rendered/");
}

#[test]
fn a_failed_render_without_git_leaves_the_tree_and_no_lock_file() {
    let project = example_without_git();
    project.ok(&["render", "--all"]);
    project.ok(&["render", "--env", "ai", "--slot", "pr-1"]);
    std::fs::remove_file(project.path("rendered/.codex-k8s.lock")).expect("the lock file of the runs");
    let before = project.snapshot("rendered");
    // A real change in every target, and a failure in one.
    project.edit("services.yaml", "users: \"1.4.0\"", "users: \"1.5.0\"");
    break_one_target(&project);
    project.run(&["render", "--all", "--force"]).expect_code(1);
    assert_same_tree(&before, &project.snapshot("rendered"), "rendered/ after the failed render");
    assert!(!project.exists("rendered/.codex-k8s.lock"), "the failed render left its lock file in the tree");

    // A namespace clash, found once every target has rendered and been
    // staged: nothing is written either.
    let job = "manifests/users-migrate/job.yaml.j2";
    let text = project.read(job);
    project.write(job, text.split("\n{% if env == \"ai\" %}").next().unwrap());
    project.edit("environments/dev.yaml", "namespace: \"{{ project }}-dev\"", "namespace: \"{{ project }}-staging\"");
    let run = project.run(&["render", "--all", "--force"]).expect_code(1);
    assert!(run.stderr.contains("both render namespace"), "{run}");
    assert_same_tree(&before, &project.snapshot("rendered"), "rendered/ after the refused render");
    assert!(!project.exists("rendered/.codex-k8s.lock"));
}
