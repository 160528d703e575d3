//! The command line's first-contact details: usage errors and their exit
//! code, which stream a result goes to, `--color`, and shell completions
//! (checked in a real bash).

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::Project;

fn bin() -> String {
    assert_cmd::cargo::cargo_bin("codex-k8s").display().to_string()
}

fn bash(script: &str) -> String {
    let out = Command::new("bash").arg("-c").arg(script).env("CODEX_K8S", bin()).output().expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "bash failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn render_without_a_target_is_a_usage_error() {
    let project = Project::example();
    let run = project.run(&["render"]).expect_code(2);
    assert!(run.stderr.contains("--env") && run.stderr.contains("--all"), "{run}");
}

#[test]
fn render_all_with_stdout_is_a_usage_error() {
    let project = Project::example();
    let run = project.run(&["render", "--all", "--stdout"]).expect_code(2);
    assert!(run.stderr.contains("--stdout") && run.stdout.is_empty(), "{run}");
}

#[test]
fn slots_gc_dry_run_prints_its_list_on_stdout() {
    let project = Project::example();
    project.ok(&["render", "--env", "ai", "--slot", "old", "--run-id", "r1"]);
    let two_days_ago = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - 2 * 24 * 3600;
    let date = format!("@{two_days_ago} +0000");
    project.git(&["add", "rendered"]);
    project.git_with(
        &["commit", "-q", "-m", "render(ai/old)"],
        &[("GIT_AUTHOR_DATE", &date), ("GIT_COMMITTER_DATE", &date)],
    );
    let dry = project.ok(&["slots", "gc", "--dry-run"]);
    assert!(dry.stdout.contains("ai/old: idle"), "the list belongs on stdout: {dry}");
    assert!(!dry.stderr.contains("ai/old: idle") && dry.stderr.contains("would remove 1 slot"), "{dry}");
}

#[test]
fn color_governs_clap_output_and_messages() {
    let project = Project::example();
    let never = project.run(&["--color", "never", "render"]).expect_code(2);
    assert!(!never.stderr.contains('\x1b'), "{never}");
    let always = project.run(&["--color=always", "render"]).expect_code(2);
    assert!(always.stderr.contains("\x1b["), "clap's usage error ignored --color always: {always}");
    // A message of the tool itself (not a diagnostic).
    let always = project.run(&["--color", "always", "slots", "remove", "--env", "nope", "--slot", "x"]).expect_code(1);
    assert!(always.stderr.contains("\x1b[1;31merror\x1b[0m"), "{always}");
    let never = project.run(&["--color", "never", "slots", "remove", "--env", "nope", "--slot", "x"]).expect_code(1);
    assert!(never.stderr.starts_with("error: ") && !never.stderr.contains('\x1b'), "{never}");
}

#[test]
fn completions_into_a_closed_pipe_exit_zero() {
    for shell in ["bash", "zsh", "fish"] {
        let out = bash(&format!("\"$CODEX_K8S\" completions {shell} | true; echo \"${{PIPESTATUS[0]}}\""));
        assert_eq!(out.trim(), "0", "completions {shell} | true");
    }
}

/// What bash offers after `codex-k8s WORDS… CUR`, through the generated script.
fn complete(words: &[&str], cur: &str) -> Vec<String> {
    let prev = words.last().copied().unwrap_or("codex-k8s");
    let all: Vec<String> =
        std::iter::once("codex-k8s").chain(words.iter().copied()).chain([cur]).map(|w| format!("'{w}'")).collect();
    let script = format!(
        r#"source <("$CODEX_K8S" completions bash) || exit 1
fn=$(complete -p codex-k8s | sed -E 's/.*-F ([^ ]+).*/\1/')
COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}
"$fn" codex-k8s '{cur}' '{prev}'
printf '%s\n' "${{COMPREPLY[@]}}""#,
        words = all.join(" "),
        cword = words.len() + 1,
    );
    bash(&script).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

#[test]
fn bash_completes_subcommands_and_their_flags() {
    assert!(complete(&[], "ren").contains(&"render".to_owned()));
    assert_eq!(complete(&["render"], "--fo"), ["--force"]);
    assert!(complete(&["slots", "gc"], "--dr").contains(&"--dry-run".to_owned()));
    assert!(complete(&["slots"], "").contains(&"gc".to_owned()));
    assert!(complete(&["--color"], "ne").contains(&"never".to_owned()));
}
