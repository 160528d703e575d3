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
    bash_in(&std::env::current_dir().expect("cwd"), script)
}

fn bash_in(dir: &std::path::Path, script: &str) -> String {
    let out =
        Command::new("bash").arg("-c").arg(script).current_dir(dir).env("CODEX_K8S", bin()).output().expect("run bash");
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
    complete_in(&std::env::current_dir().expect("cwd"), words, cur)
}

/// [`complete`] in the project at `dir`.
fn complete_in(dir: &std::path::Path, words: &[&str], cur: &str) -> Vec<String> {
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
    bash_in(dir, &script).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// Issue 30: `--env`, `--slot` and `--only` completed file names.
#[test]
fn bash_completes_environment_slot_and_component_names() {
    let project = Project::example();
    project.ok(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1"]);
    let root = project.root.clone();
    let envs = complete_in(&root, &["render", "--env"], "");
    for env in ["ai", "dev", "staging"] {
        assert!(envs.contains(&env.to_owned()), "--env offers {envs:?}");
    }
    assert_eq!(complete_in(&root, &["plan", "--env"], "sta"), ["staging"]);
    assert_eq!(complete_in(&root, &["render", "--env", "ai", "--slot"], "pr"), ["pr-1"]);
    assert_eq!(complete_in(&root, &["slots", "remove", "--env", "ai", "--slot"], ""), ["pr-1"]);
    let only = complete_in(&root, &["render", "--env", "dev", "--stdout", "--only"], "us");
    assert!(only.contains(&"users".to_owned()) && only.iter().all(|c| c.starts_with("us")), "--only offers {only:?}");
    assert!(complete_in(&root, &["render", "--env"], "services").is_empty(), "no file names");
}

#[test]
fn bash_completes_subcommands_and_their_flags() {
    assert!(complete(&[], "ren").contains(&"render".to_owned()));
    assert_eq!(complete(&["render"], "--forc"), ["--force"]);
    assert_eq!(complete(&["render"], "--form"), ["--format"]);
    assert!(complete(&["slots", "gc"], "--dr").contains(&"--dry-run".to_owned()));
    assert!(complete(&["slots"], "").contains(&"gc".to_owned()));
    assert!(complete(&["--color"], "ne").contains(&"never".to_owned()));
}

/// The long flags a `--help` lists (`--name`), in order, without `--help`
/// and `--version`.
fn help_flags(args: &[&str]) -> Vec<String> {
    let out = Command::new(bin()).args(args).arg("--help").env("NO_COLOR", "1").output().expect("run --help");
    assert!(out.status.success(), "{args:?} --help failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut flags = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if !line.starts_with('-') {
            continue; // only option lines: `-f, --file <FILE>` or `--env <ENV>`
        }
        for word in line.split([' ', ',', '=', '[', ']']) {
            let name = word.trim_end_matches(['.', ':', ')']);
            if name.starts_with("--")
                && name.len() > 2
                && !matches!(name, "--help" | "--version")
                && !flags.contains(&name.to_owned())
            {
                flags.push(name.to_owned());
            }
        }
    }
    flags
}

/// The subcommands a `--help` lists, without `help`.
fn help_subcommands(args: &[&str]) -> Vec<String> {
    let out = Command::new(bin()).args(args).arg("--help").env("NO_COLOR", "1").output().expect("run --help");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let Some(start) = text.find("Commands:") else { return Vec::new() };
    text[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

/// The sections of docs/cli.md whose heading names `command` in backticks
/// (`## \`render\``, `## \`slots list|remove|gc\``, `## \`watch\` and \`status\``).
fn doc_sections(doc: &str, command: &str) -> String {
    let mut out = String::new();
    for section in doc.split("\n## ").skip(1) {
        let heading = section.lines().next().unwrap_or_default();
        let named = heading
            .split('`')
            .skip(1)
            .step_by(2)
            .any(|code| code.split([' ', '|']).next() == Some(command) || code.starts_with(&format!("{command} ")));
        if named {
            out.push_str(section);
        }
    }
    out
}

#[test]
fn every_flag_of_every_help_is_in_docs_cli_md() {
    let doc = std::fs::read_to_string(crate::support::repo_root().join("docs/cli.md")).expect("docs/cli.md");
    let preamble = doc.split("\n## ").next().unwrap_or_default();
    let mut missing = Vec::new();
    for flag in help_flags(&[]) {
        if !preamble.contains(&flag) {
            missing.push(format!("codex-k8s {flag} (in the page's opening usage line)"));
        }
    }
    let global = help_flags(&[]);
    for command in help_subcommands(&[]) {
        let section = doc_sections(&doc, &command);
        assert!(!section.is_empty(), "docs/cli.md has no `## \\`{command} …\\`` section");
        let mut paths = vec![vec![command.clone()]];
        paths.extend(help_subcommands(&[&command]).into_iter().map(|sub| vec![command.clone(), sub]));
        for path in paths {
            let args: Vec<&str> = path.iter().map(String::as_str).collect();
            for flag in help_flags(&args) {
                let documented = section.match_indices(&flag).any(|(i, _)| {
                    !section[i + flag.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
                });
                if !global.contains(&flag) && !documented {
                    missing.push(format!("codex-k8s {} {flag}", path.join(" ")));
                }
            }
        }
    }
    assert!(missing.is_empty(), "flags of --help missing from docs/cli.md:\n  {}", missing.join("\n  "));
}

#[test]
fn quiet_drops_summaries_but_keeps_results_and_errors() {
    let project = Project::example();
    // The example's placeholder repoURL warns: warnings stay under -q.
    let loud = project.ok(&["validate"]);
    assert!(loud.stderr.contains("ok: ") && loud.stderr.contains("warning:"), "{loud}");
    let quiet = project.ok(&["-q", "validate"]);
    assert!(!quiet.stderr.contains("ok: ") && quiet.stderr.contains("warning:"), "-q validate: {quiet}");
    let loud = project.ok(&["render", "--env", "staging", "--force"]);
    assert!(loud.stderr.contains("rendered 1 target(s)"), "{loud}");
    let quiet = project.ok(&["--quiet", "render", "--env", "staging", "--force"]);
    assert!(!quiet.stderr.contains("rendered "), "-q render: {quiet}");
    let stdout = project.ok(&["-q", "render", "--env", "staging", "--stdout"]);
    assert!(stdout.stdout.contains("kind:"), "-q dropped the result: {stdout}");
    let failed = project.run(&["-q", "render", "--env", "nope"]).expect_code(1);
    assert!(failed.stderr.contains("nope"), "-q dropped the error: {failed}");
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[test]
fn validate_speaks_json_with_counts_or_located_errors() {
    let project = Project::example();
    let ok = json(&project.ok(&["validate", "--format", "json"]).stdout);
    assert_eq!(ok["ok"], true, "{ok}");
    assert!(ok["objects"].as_u64().unwrap_or(0) > 0 && ok["environments"].as_u64().unwrap_or(0) > 0, "{ok}");
    assert!(ok["diagnostics"].as_array().unwrap().iter().all(|d| d["severity"] == "warning"), "{ok}");
    project.edit("services.yaml", "project: shop", "projekt: shop");
    let bad = project.run(&["validate", "--format", "json"]).expect_code(1);
    let report = json(&bad.stdout);
    assert_eq!(report["ok"], false, "{report}");
    let first = &report["diagnostics"].as_array().unwrap().iter().find(|d| d["severity"] == "error").cloned().unwrap();
    assert_eq!(first["file"], "services.yaml", "{report}");
    assert_eq!(first["line"], 13, "{report}");
    assert!(first["message"].as_str().unwrap().contains("projekt"), "{report}");
}

#[test]
fn render_and_render_check_speak_json() {
    let project = Project::example();
    project.ok(&["render", "--all"]);
    let run = json(&project.ok(&["render", "--env", "staging", "--force", "--format", "json"]).stdout);
    assert_eq!(run["targets"], serde_json::json!(["staging"]), "{run}");
    assert!(run["changes"].is_array() && run["commit"].is_null(), "{run}");
    let current = json(&project.ok(&["render", "--all", "--check", "--format", "json"]).stdout);
    assert_eq!(current["upToDate"], true, "{current}");
    assert_eq!(current["drift"], serde_json::json!([]), "{current}");
    project.edit("rendered/staging/kustomization.yaml", "resources:", "resources: # edited\n");
    let drift = project.run(&["render", "--all", "--check", "--format", "json"]).expect_code(3);
    let drift = json(&drift.stdout);
    assert_eq!(drift["upToDate"], false, "{drift}");
    assert_eq!(drift["drift"][0]["path"], "staging/kustomization.yaml", "{drift}");
    assert_eq!(drift["drift"][0]["kind"], "changed", "{drift}");
}

#[test]
fn slots_gc_speaks_json() {
    let project = Project::example();
    let none = json(&project.ok(&["slots", "gc", "--dry-run", "--format", "json"]).stdout);
    assert_eq!(none["expired"], serde_json::json!([]), "{none}");
    assert_eq!(none["removed"], serde_json::json!([]), "{none}");
    assert_eq!(none["dryRun"], true, "{none}");
}
