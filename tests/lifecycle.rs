//! The slot lifecycle as a team runs it (issue 12), end to end with the real
//! binary and the real `git` CLI: source on `main` of a bare origin, rendered
//! output only on the deploy branch `rendered`, written by CI jobs that each
//! work in their own clone, as `.github/workflows/` runs them
//! (docs/ci.md):
//!
//! - push to main → `render --all --source-ref refs/heads/main --branch rendered --push origin`;
//! - pull request opened or updated → `render --env ai --slot pr-<N> --source-ref refs/pull/<N>/head …`;
//! - review → `diff --source-base <base sha>`, from source, no rendered files;
//! - closed → `slots remove --env ai --slot pr-<N> --branch rendered --push origin`.
//!
//! The origin's hooks play the forge's branch protection: only people
//! (`LIFECYCLE_ACTOR=human`) may update `main`, no ref is ever rewound or
//! deleted, and every accepted update is logged with who made it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use tempfile::TempDir;

use crate::support::{
    assert_fsck_clean, bin, git_in, trailers, wait_child, yaml_documents, Project, Run, GIT_IDENTITY,
};

/// The deploy branch CI writes.
pub(crate) const DEPLOY: &str = "rendered";
/// How many pull requests are open at once.
const PRS: u32 = 8;
/// The web Deployment of a slot (the dev image's hot-reload port is what the pull requests change).
const WEB: &str = "40-frontend/web/deployment-web.yaml";
/// The users Deployment of a slot (its image tag is what the slot job's `--set` changes).
const USERS: &str = "20-internal/users/deployment-users.yaml";
/// The template every pull request edits.
const WEB_TEMPLATE: &str = "manifests/web/deployment.yaml.j2";

// ------------------------------------------------------------------ the forge

/// A bare origin with protective hooks and a developer's clone to push from.
pub(crate) struct Forge {
    _dir: TempDir,
    pub(crate) origin: PathBuf,
    log: PathBuf,
    pub(crate) dev: Project,
    /// What origin's `main` must be: the last push a person made.
    main: String,
}

const PRE_RECEIVE: &str = r#"#!/bin/sh
# Branch protection: main is written by people only, never by CI.
status=0
while read -r old new ref; do
  if [ "$ref" = refs/heads/main ] && [ "${LIFECYCLE_ACTOR:-}" != human ]; then
    echo "refs/heads/main is protected: ${LIFECYCLE_ACTOR:-an unknown actor} may not write it" >&2
    status=1
  fi
done
exit $status
"#;

impl Forge {
    /// The bundled example's sources as origin's `main` (no rendered files).
    pub(crate) fn new() -> Forge {
        let seed = Project::example();
        let dir = tempfile::Builder::new().prefix("codex-k8s-forge-").tempdir().expect("tempdir");
        let origin = dir.path().join("origin.git");
        let log = dir.path().join("pushes.log");
        git_in(dir.path(), &["clone", "-q", "--bare", &seed.root.display().to_string(), &origin.display().to_string()]);
        git_in(&origin, &["config", "receive.denyNonFastForwards", "true"]);
        git_in(&origin, &["config", "receive.denyDeletes", "true"]);
        let hooks = origin.join("hooks");
        fs::create_dir_all(&hooks).expect("hooks dir");
        let post_receive = format!(
            "#!/bin/sh\nwhile read -r old new ref; do echo \"${{LIFECYCLE_ACTOR:-unknown}} $ref $old $new\" >> '{}'; done\n",
            log.display()
        );
        write_executable(&hooks.join("pre-receive"), PRE_RECEIVE);
        write_executable(&hooks.join("post-receive"), &post_receive);
        let dev = Project::clone_of(&origin);
        let main = git_in(&origin, &["rev-parse", "refs/heads/main"]).trim().to_owned();
        Forge { _dir: dir, origin, log, dev, main }
    }

    fn url(&self) -> String {
        format!("file://{}", self.origin.display())
    }

    /// `git rev-parse --verify` on origin, `None` when the revision does not exist.
    pub(crate) fn rev(&self, rev: &str) -> Option<String> {
        let out = Process::new("git")
            .current_dir(&self.origin)
            .args(["rev-parse", "--verify", "-q", rev])
            .output()
            .expect("run git rev-parse");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    pub(crate) fn deploy_tip(&self) -> String {
        self.rev(&format!("refs/heads/{DEPLOY}")).expect("origin has the deploy branch")
    }

    /// A file of the deploy branch's tip on origin.
    pub(crate) fn deployed(&self, path: &str) -> String {
        git_in(&self.origin, &["show", &format!("refs/heads/{DEPLOY}:{path}")])
    }

    fn target_json(&self, target: &str) -> Json {
        serde_json::from_str(&self.deployed(&format!("rendered/{target}/.codex-k8s/target.json")))
            .unwrap_or_else(|e| panic!("rendered/{target}/.codex-k8s/target.json on {DEPLOY}: {e}"))
    }

    /// The slots on the deploy branch's tip (directories below `rendered/ai`).
    fn slots(&self) -> Vec<String> {
        match self.rev(&format!("refs/heads/{DEPLOY}:rendered/ai")) {
            Some(_) => git_in(&self.origin, &["ls-tree", "--name-only", &format!("refs/heads/{DEPLOY}:rendered/ai")])
                .lines()
                .map(String::from)
                .collect(),
            None => Vec::new(),
        }
    }

    /// What a slot is on the deploy branch, byte for byte: the id of its
    /// directory's tree and of its Flux file.
    fn slot_ids(&self, n: u32) -> (String, String) {
        let tree = self.rev(&format!("refs/heads/{DEPLOY}:rendered/ai/pr-{n}")).unwrap_or_else(|| {
            panic!("slot pr-{n} is not on {DEPLOY}; slots there: {:?}", self.slots());
        });
        let flux = self.rev(&format!("refs/heads/{DEPLOY}:rendered/flux/ai/pr-{n}.yaml")).unwrap_or_default();
        (tree, flux)
    }

    /// The `containerPort` of a target's web Deployment on the deploy branch.
    fn web_port(&self, target: &str) -> i64 {
        let text = self.deployed(&format!("rendered/{target}/{WEB}"));
        let docs = yaml_documents(&text);
        docs[0]["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
            .as_i64()
            .unwrap_or_else(|| panic!("no containerPort in rendered/{target}/{WEB}:\n{text}"))
    }

    /// The users image of a target on the deploy branch.
    fn users_image(&self, target: &str) -> String {
        let docs = yaml_documents(&self.deployed(&format!("rendered/{target}/{USERS}")));
        docs[0]["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap_or_default().to_owned()
    }

    /// A person pushes from the developer's clone.
    pub(crate) fn push(&mut self, refspecs: &[&str]) {
        let mut args = vec!["push", "-q", "origin"];
        args.extend_from_slice(refspecs);
        self.dev.git_with(&args, &[("LIFECYCLE_ACTOR", "human")]);
        self.main = git_in(&self.origin, &["rev-parse", "refs/heads/main"]).trim().to_owned();
    }

    /// Opens pull request `n` from origin's `main`: a branch whose web
    /// template listens on `port`, pushed as `pr-<n>` and `refs/pull/<n>/head`.
    /// Returns its head commit.
    fn open_pr(&mut self, n: u32, port: u32) -> String {
        self.dev.git(&["fetch", "-q", "origin"]);
        self.dev.git(&["checkout", "-q", "-B", &format!("pr-{n}"), "origin/main"]);
        self.commit_port(n, port)
    }

    /// A new commit on pull request `n` (the `synchronize` event).
    fn update_pr(&mut self, n: u32, port: u32) -> String {
        self.dev.git(&["checkout", "-q", &format!("pr-{n}")]);
        self.commit_port(n, port)
    }

    fn commit_port(&mut self, n: u32, port: u32) -> String {
        let text = self.dev.read(WEB_TEMPLATE);
        let re = regex::Regex::new(r"containerPort: 5\d\d\d").unwrap();
        assert_eq!(re.find_iter(&text).count(), 1, "{WEB_TEMPLATE} has one hot-reload containerPort");
        self.dev.write(WEB_TEMPLATE, &re.replace(&text, format!("containerPort: {port}")));
        self.dev.git(&["commit", "-q", "-am", &format!("web: listen on {port} (pull request #{n})")]);
        self.push(&[&format!("HEAD:refs/heads/pr-{n}"), &format!("+HEAD:refs/pull/{n}/head")]);
        self.dev.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// Merges pull request `n` into main with a merge commit, as a person.
    pub(crate) fn merge_pr(&mut self, n: u32) {
        self.dev.git(&["fetch", "-q", "origin"]);
        self.dev.git(&["checkout", "-q", "-B", "main", "origin/main"]);
        self.dev.git(&["merge", "-q", "--no-ff", &format!("pr-{n}"), "-m", &format!("Merge pull request #{n}")]);
        self.push(&["main"]);
    }

    /// A fresh runner checkout of main (`actions/checkout` on a push).
    pub(crate) fn main_runner(&self) -> Project {
        Project::clone_of(&self.origin)
    }

    /// A fresh runner checkout of pull request `n`'s head, detached.
    pub(crate) fn pr_runner(&self, n: u32) -> Project {
        let runner = Project::clone_of(&self.origin);
        runner.git(&["fetch", "-q", "origin", &format!("refs/pull/{n}/head")]);
        runner.git(&["checkout", "-q", "--detach", "FETCH_HEAD"]);
        runner
    }

    /// Every accepted ref update so far: (actor, ref).
    fn pushes(&self) -> Vec<(String, String)> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let mut words = l.split(' ');
                (words.next().unwrap_or_default().to_owned(), words.next().unwrap_or_default().to_owned())
            })
            .collect()
    }

    /// What must hold after every CI job: main is exactly what people pushed,
    /// CI wrote only the deploy branch, which holds only rendered output and
    /// is linear, and the origin is sound.
    #[track_caller]
    pub(crate) fn assert_invariants(&self) {
        assert_eq!(self.rev("refs/heads/main").as_deref(), Some(self.main.as_str()), "CI moved main");
        for (actor, reference) in self.pushes() {
            match reference.as_str() {
                "refs/heads/main" => assert_eq!(actor, "human", "main was written by {actor}"),
                r if r == format!("refs/heads/{DEPLOY}") => assert_eq!(actor, "ci", "{r} was written by {actor}"),
                _ => assert_eq!(actor, "human", "{reference} was written by {actor}"),
            }
        }
        if self.rev(&format!("refs/heads/{DEPLOY}")).is_some() {
            let top = git_in(&self.origin, &["ls-tree", "--name-only", &format!("refs/heads/{DEPLOY}")]);
            assert_eq!(top.trim(), "rendered", "the deploy branch holds something besides rendered output");
            let merges = git_in(&self.origin, &["rev-list", "--merges", &format!("refs/heads/{DEPLOY}")]);
            assert_eq!(merges, "", "the deploy branch is not linear");
            let roots = git_in(&self.origin, &["rev-list", "--max-parents=0", &format!("refs/heads/{DEPLOY}")]);
            assert_eq!(roots.lines().count(), 1, "the deploy branch has more than one root");
        }
        assert_fsck_clean(&self.origin);
    }
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod hook");
}

// ------------------------------------------------------------------ CI jobs

/// The environment of a CI job: the test identity, CI, and the actor the hooks see.
pub(crate) const CI_ENV: &[(&str, &str)] = &[("LIFECYCLE_ACTOR", "ci")];

/// Runs one CI step in a runner's checkout.
pub(crate) fn ci(runner: &Project, args: &[&str]) -> Run {
    runner.run_with(args, CI_ENV)
}

/// `render --all` as the push-to-main job runs it.
pub(crate) fn main_ci(runner: &Project) -> Run {
    ci(runner, &["render", "--all", "--source-ref", "refs/heads/main", "--branch", DEPLOY, "--push", "origin"])
}

/// The arguments of the pull request job for slot `pr-<n>` at `sha`.
fn pr_job_args(n: u32, sha: &str) -> Vec<String> {
    [
        "render",
        "--env",
        "ai",
        "--slot",
        &format!("pr-{n}"),
        "--run-id",
        &format!("run-{n}-{}", &sha[..7]),
        "--set",
        &format!("versions.users=pr-{n}-{}", &sha[..7]),
        "--branch",
        DEPLOY,
        "--push",
        "origin",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The source ref of pull request `n`: on the command line for odd `n`, in
/// `CODEX_K8S_SOURCE_REF` for even `n` (both ways are the contract).
fn pr_source(n: u32, args: &mut Vec<String>) -> Vec<(&'static str, String)> {
    let reference = format!("refs/pull/{n}/head");
    if n % 2 == 1 {
        args.extend(["--source-ref".to_owned(), reference]);
        Vec::new()
    } else {
        vec![("CODEX_K8S_SOURCE_REF", reference)]
    }
}

/// The pull request job, run to its end.
fn pr_job(runner: &Project, n: u32, sha: &str) -> Run {
    let mut args = pr_job_args(n, sha);
    let env = pr_source(n, &mut args);
    let mut envs: Vec<(&str, &str)> = CI_ENV.to_vec();
    envs.extend(env.iter().map(|(k, v)| (*k, v.as_str())));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    runner.run_with(&args, &envs)
}

/// The pull request job, started in the background.
fn spawn_pr_job(runner: &Project, n: u32, sha: &str) -> Child {
    let mut args = pr_job_args(n, sha);
    let env = pr_source(n, &mut args);
    Process::new(bin())
        .arg("-C")
        .arg(&runner.root)
        .args(&args)
        .envs(GIT_IDENTITY.iter().copied())
        .envs(CI_ENV.iter().copied())
        .envs(env)
        .env("CI", "1")
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start codex-k8s")
}

/// `slots remove` as the `closed` job runs it.
fn close_job(runner: &Project, n: u32) -> Run {
    ci(
        runner,
        &["slots", "remove", "--env", "ai", "--slot", &format!("pr-{n}"), "--branch", DEPLOY, "--push", "origin"],
    )
}

// ------------------------------------------------------------------ assertions

/// Slot `pr-<n>` on the deploy branch is pull request `n`'s, rendered from `sha` with `port`.
#[track_caller]
fn assert_slot_from(forge: &Forge, n: u32, sha: &str, port: u32) {
    let target = format!("ai/pr-{n}");
    let info = forge.target_json(&target);
    assert_eq!(info["source"]["ref"], format!("refs/pull/{n}/head"), "{target}: source ref in {info:#}");
    assert_eq!(info["source"]["commit"], sha, "{target}: source commit in {info:#}");
    assert_eq!(info["runId"], format!("run-{n}-{}", &sha[..7]), "{target}: run id in {info:#}");
    assert_eq!(forge.web_port(&target), i64::from(port), "{target}: the pull request's template change");
    assert_eq!(
        forge.users_image(&target),
        format!("registry.example.com/shop/users:pr-{n}-{}-dev", &sha[..7]),
        "{target}: the job's --set"
    );
}

/// Every render commit on the deploy branch names its source in trailers,
/// and a slot's commit names its own pull request's ref.
#[track_caller]
fn assert_render_trailers(forge: &Forge) {
    let commits = git_in(&forge.origin, &["rev-list", &format!("refs/heads/{DEPLOY}")]);
    for commit in commits.lines() {
        let message = git_in(&forge.origin, &["log", "-1", "--format=%B", commit]);
        if !message.starts_with("render(") {
            continue;
        }
        let found = trailers(&forge.origin, &message);
        let (Some(reference), Some(source)) = (found.get("Source-Ref"), found.get("Source-Commit")) else {
            panic!("commit {commit} lacks Source-Ref/Source-Commit trailers:\n{message}");
        };
        assert_eq!(source.len(), 40, "Source-Commit is a full commit id:\n{message}");
        let targets = found.get("Targets").cloned().unwrap_or_default();
        for slot in targets.split(", ").filter_map(|t| t.strip_prefix("ai/pr-")) {
            assert_eq!(reference, &format!("refs/pull/{slot}/head"), "commit {commit}:\n{message}");
        }
        if reference == "refs/heads/main" {
            assert!(!targets.contains("ai/"), "main's CI rendered a slot in {commit}:\n{message}");
        }
    }
}

// ------------------------------------------------------------------ the lifecycle

/// Main's CI, eight pull requests at once, an update, a refused foreign
/// slot, a merge while slots exist (re-rendered by a persistent runner whose
/// local deploy branch is stale), closing pull requests (one twice), a shallow
/// clone, and the slots read back from the deploy branch.
#[test]
fn a_team_runs_the_slot_lifecycle_on_a_deploy_branch() {
    let mut forge = Forge::new();
    let persistent = first_main_ci(&forge);
    let stale = persistent.git(&["rev-parse", DEPLOY]).trim().to_owned();
    let rendered_by_prs = eight_pull_requests_at_once(&mut forge);

    // Main's checkout may not take over a pull request's slot.
    let tip = forge.deploy_tip();
    let foreign = ci(
        &forge.main_runner(),
        &[
            "render",
            "--env",
            "ai",
            "--slot",
            "pr-3",
            "--source-ref",
            "refs/heads/main",
            "--branch",
            DEPLOY,
            "--push",
            "origin",
        ],
    )
    .expect_code(1);
    assert!(foreign.output().contains("--adopt"), "the refusal names --adopt\n{foreign}");
    assert_eq!(forge.deploy_tip(), tip, "a refused render pushed");

    // Pull request 3 merges while every slot exists; main's CI runs on the
    // persistent runner, whose local deploy branch is many pushes behind.
    forge.merge_pr(3);
    persistent.git(&["fetch", "-q", "origin"]);
    persistent.git(&["checkout", "-q", "-B", "main", "origin/main"]);
    assert_eq!(persistent.git(&["rev-parse", DEPLOY]).trim(), stale, "the runner's deploy branch is stale");
    main_ci(&persistent).expect_code(0);
    forge.assert_invariants();
    assert_eq!(forge.web_port("dev"), 5203, "main's CI renders the merged change");
    assert_slots_unchanged(&forge, &rendered_by_prs, "main's CI after the merge");
    let all: Vec<String> = (1..=PRS).map(|n| format!("pr-{n}")).collect();
    assert_eq!(forge.slots(), all, "main's CI dropped or added slots");
    // Main's CI again, from a fresh clone: nothing to change, nothing pushed.
    let tip = forge.deploy_tip();
    main_ci(&forge.main_runner()).expect_code(0);
    assert_eq!(forge.deploy_tip(), tip, "an up-to-date render --all pushed a commit");
    assert_render_trailers(&forge);

    close_pull_requests(&forge, &persistent, &rendered_by_prs);
    let mut remaining = rendered_by_prs;
    remaining.retain(|n, _| ![3, 5].contains(n));

    // Pull request 9, from main after the merge, rendered in a shallow clone.
    let sha9 = forge.open_pr(9, 5209);
    let shallow = Project::clone_with(&forge.url(), &["--depth", "1", "--branch", "main"]);
    shallow.git(&["fetch", "-q", "--depth", "1", "origin", "refs/pull/9/head"]);
    shallow.git(&["checkout", "-q", "--detach", "FETCH_HEAD"]);
    assert_eq!(shallow.git(&["rev-parse", "--is-shallow-repository"]).trim(), "true");
    pr_job(&shallow, 9, &sha9).expect_code(0);
    forge.assert_invariants();
    assert_slot_from(&forge, 9, &sha9, 5209);
    assert_slots_unchanged(&forge, &remaining, "the shallow clone's job");

    // The slots as a fresh checkout reads them from the deploy branch.
    let reader = forge.main_runner();
    let listed =
        ci(&reader, &["slots", "list", "--env", "ai", "--branch", DEPLOY, "--push", "origin", "--format", "json"])
            .expect_code(0);
    let listed: Json = serde_json::from_str(&listed.stdout).unwrap_or_else(|e| panic!("{e}\n{listed}"));
    let names: Vec<&str> = listed.as_array().expect("a list").iter().filter_map(|s| s["slot"].as_str()).collect();
    assert_eq!(names, ["pr-1", "pr-2", "pr-4", "pr-6", "pr-7", "pr-8", "pr-9"]);
    let gc = ci(&reader, &["slots", "gc", "--dry-run", "--branch", DEPLOY, "--push", "origin"]).expect_code(0);
    assert_eq!(gc.stdout.trim(), "", "fresh slots are not idle\n{gc}");
    assert_render_trailers(&forge);
    forge.assert_invariants();
}

/// Push to main: the plain environments land on the deploy branch, no slot.
/// Returns the runner, which keeps its local deploy branch (a persistent runner).
fn first_main_ci(forge: &Forge) -> Project {
    let persistent = forge.main_runner();
    main_ci(&persistent).expect_code(0);
    forge.assert_invariants();
    assert_eq!(forge.slots(), Vec::<String>::new(), "main's CI rendered slots");
    for env in ["dev", "platform", "staging"] {
        assert!(forge.rev(&format!("refs/heads/{DEPLOY}:rendered/{env}/kustomization.yaml")).is_some(), "{env}");
    }
    assert_eq!(forge.web_port("dev"), 5173);
    let message = git_in(&forge.origin, &["log", "-1", "--format=%B", &format!("refs/heads/{DEPLOY}")]);
    let found = trailers(&forge.origin, &message);
    assert_eq!(found.get("Source-Ref").map(String::as_str), Some("refs/heads/main"), "{message}");
    assert_eq!(found.get("Source-Commit"), Some(&forge.main), "{message}");
    persistent.git(&["fetch", "-q", "origin", &format!("+{DEPLOY}:{DEPLOY}")]);
    persistent
}

/// Eight pull requests open at once, each its own job in its own clone with
/// its own template change and `--set`; then one of them is updated. Returns
/// each slot as its pull request rendered it.
fn eight_pull_requests_at_once(forge: &mut Forge) -> BTreeMap<u32, (String, String)> {
    let mut heads: BTreeMap<u32, (String, u32)> = BTreeMap::new();
    for n in 1..=PRS {
        heads.insert(n, (forge.open_pr(n, 5200 + n), 5200 + n));
    }
    let runners: Vec<(u32, Project)> = (1..=PRS).map(|n| (n, forge.pr_runner(n))).collect();
    let children: Vec<(u32, Child)> =
        runners.iter().map(|(n, runner)| (*n, spawn_pr_job(runner, *n, &heads[n].0))).collect();
    for (n, child) in children {
        wait_child(child, &format!("pull request job pr-{n}")).expect_code(0);
    }
    forge.assert_invariants();
    let all: Vec<String> = (1..=PRS).map(|n| format!("pr-{n}")).collect();
    assert_eq!(forge.slots(), all, "every slot landed");
    for (n, (sha, port)) in &heads {
        assert_slot_from(forge, *n, sha, *port);
    }
    assert_render_trailers(forge);

    // Pull request 2 is updated: its slot is replaced from the new head, the others stay.
    let before: BTreeMap<u32, (String, String)> = (1..=PRS).map(|n| (n, forge.slot_ids(n))).collect();
    let sha = forge.update_pr(2, 5292);
    pr_job(&forge.pr_runner(2), 2, &sha).expect_code(0);
    assert_slot_from(forge, 2, &sha, 5292);
    let mut others = before;
    others.remove(&2);
    assert_slots_unchanged(forge, &others, "pull request 2's update");
    forge.assert_invariants();
    (1..=PRS).map(|n| (n, forge.slot_ids(n))).collect()
}

/// Pull request 3 closes (merged), and the closed event is delivered twice;
/// pull request 5 closes unmerged, on the persistent runner whose deploy
/// branch is stale again.
fn close_pull_requests(forge: &Forge, persistent: &Project, rendered_by_prs: &BTreeMap<u32, (String, String)>) {
    close_job(&forge.main_runner(), 3).expect_code(0);
    assert!(!forge.slots().contains(&"pr-3".to_owned()), "pr-3 is still on the deploy branch");
    assert_eq!(forge.rev(&format!("refs/heads/{DEPLOY}:rendered/flux/ai/pr-3.yaml")), None, "pr-3's Flux file");
    let tip = forge.deploy_tip();
    let again = close_job(&forge.main_runner(), 3).expect_code(0);
    assert!(again.output().contains("already absent"), "the second removal says so\n{again}");
    assert_eq!(forge.deploy_tip(), tip, "the second removal pushed a commit");

    close_job(persistent, 5).expect_code(0);
    assert!(!forge.slots().contains(&"pr-5".to_owned()), "pr-5 is still on the deploy branch");
    forge.assert_invariants();
    let mut others = rendered_by_prs.clone();
    others.retain(|n, _| ![3, 5].contains(n));
    assert_slots_unchanged(forge, &others, "closing pull requests 3 and 5");
}

#[track_caller]
fn assert_slots_unchanged(forge: &Forge, expected: &BTreeMap<u32, (String, String)>, after: &str) {
    for (n, ids) in expected {
        assert_eq!(&forge.slot_ids(*n), ids, "{after} changed slot pr-{n}");
    }
}

// ------------------------------------------------------------------ review

/// The review diff of a pull request, from source: the pull request's change
/// in every target it reaches, nothing where it does not, no rendered files.
#[test]
fn a_review_diff_from_source_shows_the_pull_request_change_without_rendered_files() {
    let mut forge = Forge::new();
    let base = forge.main.clone();
    forge.open_pr(1, 5201);
    let runner = forge.pr_runner(1);
    assert!(!runner.exists("rendered"), "the pull request's checkout holds no rendered files");

    let json = ci(&runner, &["diff", "--source-base", &base, "--format", "json"]).expect_code(0);
    let report: Json = serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}\n{json}"));
    let changes = report["changes"].as_array().unwrap_or_else(|| panic!("no changes list\n{json}"));
    let targets: Vec<(&str, &str, &str)> =
        changes.iter().map(|c| (text(&c["target"]), text(&c["id"]["kind"]), text(&c["id"]["name"]))).collect();
    assert!(targets.contains(&("dev", "Deployment", "web")), "dev's web Deployment changes: {targets:?}");
    assert!(
        targets.iter().any(|(t, k, n)| t.starts_with("ai/") && *k == "Deployment" && *n == "web"),
        "the slot environment's web Deployment changes: {targets:?}"
    );
    assert!(targets.iter().all(|(t, _, _)| *t != "staging"), "staging (no hot reload) does not change: {targets:?}");
    assert!(
        targets.iter().all(|(_, k, n)| *k == "Deployment" && *n == "web"),
        "only the web Deployment changes: {targets:?}"
    );

    let markdown =
        ci(&runner, &["diff", "--source-base", &base, "--env", "ai", "--slot", "pr-1", "--format", "markdown"])
            .expect_code(0);
    assert!(markdown.stdout.chars().count() <= 65_536, "the comment fits GitHub's limit");
    assert!(markdown.stdout.contains("5201"), "the comment shows the change\n{markdown}");
    assert!(markdown.stdout.contains("<details>"), "{markdown}");
    ci(&runner, &["diff", "--source-base", &base, "--exit-code"]).expect_code(3);
    ci(&runner, &["diff", "--source-base", &base, "--source-head", &base, "--exit-code"]).expect_code(0);
    runner.assert_status_clean();
    forge.assert_invariants();
}

fn text(value: &Json) -> &str {
    value.as_str().unwrap_or_default()
}

// ------------------------------------------------------------------ runners

/// A pull request job on a persistent runner whose local deploy branch is
/// behind origin starts from origin's tip: the slots pushed since stay.
#[test]
fn a_pull_request_job_on_a_persistent_runner_with_a_stale_deploy_branch_keeps_the_others() {
    let mut forge = Forge::new();
    main_ci(&forge.main_runner()).expect_code(0);
    let persistent = forge.main_runner();
    let sha1 = forge.open_pr(1, 5201);
    persistent.git(&["fetch", "-q", "origin", "refs/pull/1/head"]);
    persistent.git(&["checkout", "-q", "--detach", "FETCH_HEAD"]);
    pr_job(&persistent, 1, &sha1).expect_code(0);
    persistent.git(&["fetch", "-q", "origin", &format!("+{DEPLOY}:{DEPLOY}")]);
    let stale = persistent.git(&["rev-parse", DEPLOY]).trim().to_owned();

    let sha2 = forge.open_pr(2, 5202);
    pr_job(&forge.pr_runner(2), 2, &sha2).expect_code(0);
    let pr2 = forge.slot_ids(2);

    // The runner picks up a new commit of pull request 1; its local deploy branch still lacks pr-2.
    let sha1 = forge.update_pr(1, 5211);
    persistent.git(&["fetch", "-q", "origin", "refs/pull/1/head"]);
    persistent.git(&["checkout", "-q", "--detach", "FETCH_HEAD"]);
    assert_eq!(persistent.git(&["rev-parse", DEPLOY]).trim(), stale);
    pr_job(&persistent, 1, &sha1).expect_code(0);
    assert_eq!(forge.slots(), ["pr-1", "pr-2"]);
    assert_slot_from(&forge, 1, &sha1, 5211);
    assert_eq!(forge.slot_ids(2), pr2, "the stale runner changed pr-2");
    let commits = git_in(&forge.origin, &["rev-list", "--count", &format!("refs/heads/{DEPLOY}")]);
    assert_eq!(commits.trim(), "4", "main's render, then one commit per job");
    assert_render_trailers(&forge);
    forge.assert_invariants();
}

// ------------------------------------------------------------------ idle TTL

/// Idle time comes from the deploy branch's history: a fresh checkout of main
/// (no rendered files, no local deploy branch) finds the idle slot and
/// removes it there.
#[test]
fn idle_slots_are_judged_and_removed_on_the_deploy_branch() {
    let mut forge = Forge::new();
    forge.dev.edit("environments/ai.yaml", "idleTTL: 8h", "idleTTL: 1s");
    forge.dev.git(&["commit", "-q", "-am", "ai: slots are idle after a second"]);
    forge.push(&["HEAD:main"]);
    main_ci(&forge.main_runner()).expect_code(0);
    let sha = forge.open_pr(1, 5201);
    pr_job(&forge.pr_runner(1), 1, &sha).expect_code(0);
    std::thread::sleep(Duration::from_secs(3));

    let reader = forge.main_runner();
    let dry = ci(&reader, &["slots", "gc", "--dry-run", "--branch", DEPLOY, "--push", "origin"]).expect_code(0);
    assert!(dry.stdout.contains("ai/pr-1"), "the dry run names the idle slot\n{dry}");
    assert_eq!(forge.slots(), ["pr-1"], "a dry run removed something");
    ci(&reader, &["slots", "gc", "--branch", DEPLOY, "--push", "origin"]).expect_code(0);
    assert_eq!(forge.slots(), Vec::<String>::new(), "the idle slot is still on the deploy branch");
    forge.assert_invariants();
}

// ------------------------------------------------------------------ the workflows

fn workflow(name: &str) -> Yaml {
    let path = crate::support::repo_root().join(".github/workflows").join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn jobs(workflow: &Yaml) -> Vec<(String, &Yaml)> {
    let map = workflow["jobs"].as_mapping().expect("jobs");
    map.iter().map(|(k, v)| (k.as_str().expect("job name").to_owned(), v)).collect()
}

fn steps(job: &Yaml) -> Vec<&Yaml> {
    job["steps"].as_sequence().map(|s| s.iter().collect()).unwrap_or_default()
}

fn yaml_text(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => s.clone(),
        Yaml::Bool(b) => b.to_string(),
        _ => serde_yaml::to_string(value).expect("YAML"),
    }
}

/// The shipped workflows run the lifecycle the test above plays, and keep to
/// the rules docs/ci.md states: least privilege per job, timeouts, concurrency
/// per pull request, forks without a write token, CI never writing main.
#[test]
fn the_workflows_run_the_deploy_branch_lifecycle() {
    let render = workflow("render.yml");
    let slot = workflow("slot.yml");
    let gc = workflow("slots-gc.yml");
    for (name, flow) in [("render.yml", &render), ("slot.yml", &slot), ("slots-gc.yml", &gc)] {
        assert!(!yaml_text(&flow["on"]).contains("pull_request_target"), "{name}: pull_request_target");
        assert_eq!(flow["permissions"], Yaml::Mapping(Default::default()), "{name}: no default permissions");
        assert!(flow["concurrency"]["group"].is_string(), "{name}: a concurrency group");
        for (job, body) in jobs(flow) {
            assert!(body["timeout-minutes"].as_u64().is_some(), "{name} {job}: timeout-minutes");
            assert!(body["permissions"].is_mapping(), "{name} {job}: its own permissions");
            for step in steps(body) {
                let run = yaml_text(&step["run"]);
                if run.contains("codex-k8s render") || run.contains("codex-k8s slots") {
                    assert!(
                        run.contains("--branch rendered --push origin"),
                        "{name} {job}: writes only the deploy branch:\n{run}"
                    );
                    assert!(!run.contains("--commit"), "{name} {job}: commits to the checked-out branch:\n{run}");
                }
            }
        }
    }
    assert_eq!(yaml_text(&render["on"]["push"]["branches"]).trim(), "- main");
    let deploy = yaml_text(&render["jobs"]["deploy"]["steps"]);
    assert!(deploy.contains("render --all --source-ref refs/heads/main --branch rendered --push origin"), "{deploy}");

    let types = yaml_text(&slot["on"]["pull_request"]["types"]);
    for event in ["opened", "synchronize", "reopened", "closed"] {
        assert!(types.contains(event), "slot.yml runs on {event}");
    }
    assert!(yaml_text(&slot["concurrency"]["group"]).contains("pull_request.number"), "a group per pull request");
    let all = yaml_text(&slot["jobs"]);
    assert!(all.contains("--source-ref \"$SOURCE_REF\""), "the slot job names its source");
    assert!(all.contains("slots remove --env ai --slot \"$SLOT\""), "closing removes the slot");
    // Issue 30: against the merge-base, not the base branch's tip (`base.sha`).
    assert!(all.contains("diff --source-base \"$MERGE_BASE\" --format markdown"), "the review diff from source");
    assert!(all.contains(".github/scripts/merge-base.sh \"$BASE_SHA\" \"$HEAD_SHA\""), "the merge-base");
    assert!(!all.contains("diff --source-base \"$BASE_SHA\""), "a review diff against the base branch's tip");
    let gc_runs = yaml_text(&gc["jobs"]);
    assert!(gc_runs.contains("codex-k8s slots gc --branch rendered --push origin"), "slots gc on the deploy branch");
    assert!(yaml_text(&gc["on"]["schedule"]).contains("cron"), "slots gc on a schedule");
    for (job, body) in jobs(&slot) {
        let writes = body["permissions"]["contents"].as_str() == Some("write");
        if writes {
            let guard = yaml_text(&body["if"]);
            assert!(
                guard.contains("head.repo.full_name == github.repository"),
                "{job} pushes: not for forks ({guard})"
            );
        }
        let builds = steps(body).iter().filter(|s| s["uses"].as_str() == Some("./")).count();
        assert!(builds <= 1, "{job} builds more than once");
        if builds == 1 {
            assert!(job == "build" || job == "remove", "{job} builds instead of using the build job's artifact");
        }
    }
    let review = &slot["jobs"]["review"];
    assert_eq!(review["permissions"]["pull-requests"].as_str(), Some("write"));
    assert!(yaml_text(&review["if"]).contains("!cancelled()"), "the review runs when the build failed");
    let summary = steps(review).into_iter().find(|s| yaml_text(&s["run"]).contains("GITHUB_STEP_SUMMARY"));
    assert!(summary.is_some_and(|s| yaml_text(&s["if"]).contains("always()")), "the job summary is always written");
    let comment = steps(review).into_iter().find(|s| yaml_text(&s["uses"]).starts_with("actions/github-script"));
    let comment = comment.expect("the sticky comment step");
    assert!(yaml_text(&comment["if"]).contains("always()"), "the comment is posted when a step failed");
    let script = yaml_text(&comment["with"]["script"]);
    assert!(script.contains("updateComment") && script.contains("MARKER"), "one comment, updated in place");
    assert!(script.contains(".github/scripts/preview-comment.js"), "the comment's text from the tested module");
    let module = fs::read_to_string(crate::support::repo_root().join(".github/scripts/preview-comment.js")).unwrap();
    assert!(module.contains("65536"), "the comment is kept within GitHub's size limit");
    // The preview: the slot job's report and, with cluster access, readiness.
    assert!(all.contains("codex-k8s status --env \"$SLOT_ENV\" --slot \"$SLOT\" --wait --timeout"), "readiness");
    assert!(all.contains("slot-report"), "the slot job reports to the comment");
}
