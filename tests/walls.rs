//! A pull request never draws its own walls (issue 25), end to end with the
//! real binary and the `git` CLI, in the CI flow of docs/ci.md: main's CI
//! renders `--all --source-ref refs/heads/main --branch rendered --push
//! origin`, each pull request's job renders its slot from its detached head
//! with `--source-ref refs/pull/<N>/head` onto the same branch of a bare
//! origin whose hooks protect main.
//!
//! Each head below widens one wall the way an attacker (or an agent talked
//! into it) would; each is refused before anything is pushed, naming the
//! setting at its file:line with both values, and after all of them and a
//! benign pull request the shared glue on the deploy branch is byte for byte
//! what main rendered.

use crate::lifecycle::{ci, main_ci, Forge, CI_ENV, DEPLOY};
use crate::support::{git_in, Project, Run};

/// The pull request job of slot `pr-<n>` from runner's detached head.
fn slot_job(runner: &Project, n: u32) -> Run {
    let slot = format!("pr-{n}");
    let source = format!("refs/pull/{n}/head");
    ci(
        runner,
        &[
            "render",
            "--env",
            "ai",
            "--slot",
            &slot,
            "--source-ref",
            &source,
            "--run-id",
            "r1",
            "--branch",
            DEPLOY,
            "--push",
            "origin",
        ],
    )
}

/// Opens pull request `n` from origin's main with `edit` applied to the
/// developer's checkout; returns the runner checked out at its head.
fn open_pr(forge: &mut Forge, n: u32, edit: &dyn Fn(&Project)) -> Project {
    forge.dev.git(&["fetch", "-q", "origin"]);
    forge.dev.git(&["checkout", "-q", "-B", &format!("pr-{n}"), "origin/main"]);
    edit(&forge.dev);
    forge.dev.git(&["commit", "-q", "-am", &format!("pull request #{n}")]);
    forge.push(&[&format!("HEAD:refs/heads/pr-{n}"), &format!("+HEAD:refs/pull/{n}/head")]);
    forge.pr_runner(n)
}

/// Every file the protected render shares: the Argo CD glue and the walls record.
fn shared_glue(forge: &Forge) -> Vec<(String, String)> {
    let tip = format!("refs/heads/{DEPLOY}");
    let mut files = Vec::new();
    for dir in ["rendered/argocd", "rendered/.codex-k8s"] {
        let listing = git_in(&forge.origin, &["ls-tree", &format!("{tip}:{dir}")]);
        for line in listing.lines() {
            let (meta, name) = line.split_once('\t').expect("ls-tree line");
            files.push((format!("{dir}/{name}"), meta.to_owned()));
        }
    }
    files
}

/// The line (1-based) of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no `{needle}` in:\n{text}")) + 1
}

/// One attack: what the head edits, the setting it widens, the file and
/// line text the refusal must point at, and the head's value as printed.
struct Attack {
    what: &'static str,
    edit: fn(&Project),
    setting: &'static str,
    file: &'static str,
    at: &'static str,
    head_value: &'static str,
}

fn append(p: &Project, file: &str, text: &str) {
    let mut body = p.read(file);
    body.push_str(text);
    p.write(file, &body);
}

const ATTACKS: &[Attack] = &[
    Attack {
        what: "the slot namespace moves into cert-manager for one slot",
        edit: |p| {
            p.edit(
                "environments/ai.yaml",
                "namespace: \"{{ project }}-dev-{{ slot }}\"",
                "namespace: \"{{ 'cert-manager' if slot == 'pr-46' else project ~ '-dev-' ~ slot }}\"",
            )
        },
        setting: "environments.ai.namespace",
        file: "environments/ai.yaml",
        at: "namespace:",
        head_value: "cert-manager",
    },
    Attack {
        what: "plain Secrets are allowed",
        edit: |p| append(p, "services.yaml", "\npolicy:\n  allowPlainSecrets: true\n"),
        setting: "policy.allowPlainSecrets",
        file: "services.yaml",
        at: "allowPlainSecrets",
        head_value: "true",
    },
    Attack {
        what: "templates may read every variable of the CI job",
        edit: |p| p.edit("services.yaml", "env: [\"SHOP_*\"]", "env: [\"*\"]"),
        setting: "templates.env",
        file: "services.yaml",
        at: "env: [\"*\"]",
        head_value: "[\"*\"]",
    },
    Attack {
        what: "the slot cap goes up",
        edit: |p| p.edit("environments/ai.yaml", "maxSlots: 20", "maxSlots: 2000"),
        setting: "environments.ai.maxSlots",
        file: "environments/ai.yaml",
        at: "maxSlots",
        head_value: "2000",
    },
    Attack {
        what: "the slot never goes idle",
        edit: |p| p.edit("environments/ai.yaml", "idleTTL: 8h", "idleTTL: 100000h"),
        setting: "environments.ai.idleTTL",
        file: "environments/ai.yaml",
        at: "idleTTL",
        head_value: "100000h",
    },
    Attack {
        what: "the glue points at another revision",
        edit: |p| append(p, "services.yaml", "\ngitops:\n  revision: attacker\n"),
        setting: "gitops.revision",
        file: "services.yaml",
        at: "revision: attacker",
        head_value: "\"attacker\"",
    },
    Attack {
        what: "a render may burn a hundred times the CPU",
        edit: |p| append(p, "services.yaml", "\nlimits:\n  fuel: 400000000\n"),
        setting: "limits.fuel",
        file: "services.yaml",
        at: "fuel:",
        head_value: "400000000",
    },
    Attack {
        what: "a plain environment becomes a slot environment",
        edit: |p| {
            p.edit(
                "environments/dev.yaml",
                "namespace: \"{{ project }}-dev\"",
                "slots: true\nnamespace: \"{{ slot }}\"",
            )
        },
        setting: "environments.dev.slots",
        file: "environments/dev.yaml",
        at: "slots: true",
        head_value: "true",
    },
];

#[test]
fn a_head_that_widens_any_wall_lands_nothing_and_the_shared_glue_stays_mains() {
    let mut forge = Forge::new();
    main_ci(&forge.main_runner()).expect_code(0);
    // Main's render writes the slot environment's glue before any slot exists.
    let glue = shared_glue(&forge);
    let names: Vec<&str> = glue.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"rendered/argocd/ai.yaml"), "no glue for the slot environment: {names:?}");
    assert!(names.contains(&"rendered/.codex-k8s/walls.json"), "no walls record: {names:?}");
    let recorded = forge.deployed("rendered/.codex-k8s/walls.json");
    assert!(recorded.contains("\"environments.ai.namespace\": \"{{ project }}-dev-{{ slot }}\""), "{recorded}");

    for (i, attack) in ATTACKS.iter().enumerate() {
        let n = 40 + i as u32;
        let runner = open_pr(&mut forge, n, &attack.edit);
        let tip = forge.deploy_tip();
        let run = slot_job(&runner, n).expect_code(1);
        let err = run.output();
        let line = line_of(&runner.read(attack.file), attack.at);
        let place = format!("{}:{line}", attack.file);
        assert!(err.contains(&format!("`{}` is a wall of the slot", attack.setting)), "{}: {run}", attack.what);
        assert!(err.contains(&place), "{}: the refusal names {place}\n{run}", attack.what);
        assert!(err.contains(attack.head_value), "{}: the head's value {}\n{run}", attack.what, attack.head_value);
        assert!(err.contains("merge this change to it first"), "{}: what to do\n{run}", attack.what);
        assert_eq!(forge.deploy_tip(), tip, "{}: a refused render pushed", attack.what);
        forge.assert_invariants();
    }

    // A benign head renders its slot, and writes none of the shared files.
    let runner = open_pr(&mut forge, 60, &|p| {
        p.edit("manifests/web/deployment.yaml.j2", "containerPort: 5", "containerPort: 6")
    });
    slot_job(&runner, 60).expect_code(0);
    assert!(forge.rev(&format!("refs/heads/{DEPLOY}:rendered/ai/pr-60")).is_some(), "the benign slot landed");
    assert_eq!(shared_glue(&forge), glue, "a slot render changed the shared glue");
    let touched = git_in(&forge.origin, &["show", "--name-only", "--format=", &forge.deploy_tip()]);
    for path in touched.lines() {
        assert!(
            path.starts_with("rendered/ai/pr-60/") || path == "rendered/flux/ai/pr-60.yaml",
            "the slot's commit touched {path}"
        );
    }
    forge.assert_invariants();
}

#[test]
fn a_head_renders_no_plain_environment_and_nothing_before_the_protected_render() {
    let mut forge = Forge::new();
    let runner =
        open_pr(&mut forge, 7, &|p| p.edit("manifests/web/deployment.yaml.j2", "containerPort: 5", "containerPort: 6"));
    // No protected render yet: nothing to draw the walls from.
    let first = slot_job(&runner, 7).expect_code(1);
    assert!(first.output().contains("holds no walls record"), "{first}");
    assert!(first.output().contains("--walls-from"), "{first}");
    assert_eq!(forge.rev(&format!("refs/heads/{DEPLOY}")), None, "a refused render created the deploy branch");

    // The explicit protected ref draws them instead, and the slot lands.
    runner.git(&["fetch", "-q", "origin", "main:refs/remotes/origin/main"]);
    let slot = ["render", "--env", "ai", "--slot", "pr-7", "--source-ref", "refs/pull/7/head"];
    let mut with_walls = slot.to_vec();
    with_walls.extend(["--walls-from", "origin/main", "--branch", DEPLOY, "--push", "origin"]);
    ci(&runner, &with_walls).expect_code(0);
    assert_eq!(forge.rev(&format!("refs/heads/{DEPLOY}:rendered/argocd/ai.yaml")), None, "a head wrote the glue");

    // A head that renders a plain environment onto the deploy branch is refused.
    main_ci(&forge.main_runner()).expect_code(0);
    let tip = forge.deploy_tip();
    let plain = ci(
        &runner,
        &["render", "--env", "staging", "--source-ref", "refs/pull/7/head", "--branch", DEPLOY, "--push", "origin"],
    )
    .expect_code(1);
    assert!(plain.output().contains("renders only slots"), "{plain}");
    assert_eq!(forge.deploy_tip(), tip, "a refused render pushed");

    // --walls-from a revision whose walls differ from the head's refuses too.
    let widened = open_pr(&mut forge, 8, &|p| p.edit("environments/ai.yaml", "maxSlots: 20", "maxSlots: 21"));
    widened.git(&["fetch", "-q", "origin", "main:refs/remotes/origin/main"]);
    let run = ci(
        &widened,
        &[
            "render",
            "--env",
            "ai",
            "--slot",
            "pr-8",
            "--source-ref",
            "refs/pull/8/head",
            "--walls-from",
            "origin/main",
            "--branch",
            DEPLOY,
            "--push",
            "origin",
        ],
    )
    .expect_code(1);
    assert!(
        run.output().contains(
            "`environments.ai.maxSlots` is a wall of the slot: the protected branch has 20, this source has 21"
        ),
        "{run}"
    );
    assert_eq!(forge.deploy_tip(), tip);
    forge.assert_invariants();
}

#[test]
fn a_work_tree_without_a_deploy_branch_draws_its_own_walls() {
    let project = Project::example();
    project.edit("environments/ai.yaml", "maxSlots: 20", "maxSlots: 21");
    project.run_with(&["render", "--env", "ai", "--slot", "pr-1", "--run-id", "r1"], CI_ENV).expect_code(0);
    let walls = project.read("rendered/.codex-k8s/walls.json");
    assert!(walls.contains("\"environments.ai.maxSlots\": 21"), "{walls}");
}
