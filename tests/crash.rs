//! Crash safety of `render`, with the real binary:
//!
//! - SIGKILL at random points while `render` writes a tree of many slots,
//!   and while `render --commit` writes and commits it. After every kill each
//!   target directory holds exactly its old or its new files (a directory
//!   caught between its two renames sits whole in the trash, and the next
//!   run puts it back), `git fsck --strict` passes, HEAD's tree is the old or
//!   the new render, and the next run succeeds and yields the expected tree.
//! - Two `render` runs on one work tree at once: both succeed (the second
//!   waits for the lock) or one fails naming the lock; the final tree is one
//!   run's render, never a mix.
//! - `--out` scope: refused outside the project (absolute, `..`, through a
//!   symlink), and a render never touches anything but its targets.
//!
//! The seed of the random kill points is printed; set CRASH_SEED to replay.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Slots rendered per run: enough files that writing takes a while.
const SLOTS: usize = 8;
/// Kills per phase (write, commit).
const KILLS: usize = 25;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("codex-k8s")
}

struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
        eprintln!("crash test seed: CRASH_SEED={seed}");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, max).
    fn below(&mut self, max: Duration) -> Duration {
        let nanos = max.as_nanos().max(1) as u64;
        Duration::from_nanos(self.next() % nanos)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

fn git(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn git_text(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(git(dir, args).stdout).unwrap().trim().to_owned()
}

/// The bundled example in a fresh git repository, with room for [`SLOTS`] slots.
fn example() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["environments", "manifests", "partials"] {
        copy_dir(&root.join(dir), &tmp.path().join(dir));
    }
    fs::copy(root.join("services.yaml"), tmp.path().join("services.yaml")).unwrap();
    let ai = tmp.path().join("environments/ai.yaml");
    let text = fs::read_to_string(&ai).unwrap();
    assert!(text.contains("maxSlots: 20"), "the example's ai environment changed; update this test");
    fs::write(&ai, text.replace("maxSlots: 20", "maxSlots: 100")).unwrap();
    git(tmp.path(), &["init", "-q", "-b", "main"]);
    git(tmp.path(), &["add", "."]);
    git(tmp.path(), &["commit", "-q", "-m", "sources"]);
    tmp
}

/// The two renders the test moves between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Old,
    New,
}

impl Version {
    fn other(self) -> Version {
        match self {
            Version::Old => Version::New,
            Version::New => Version::Old,
        }
    }

    fn set(self) -> &'static str {
        match self {
            Version::Old => "versions.users=1.0.0-old",
            Version::New => "versions.users=2.0.0-new",
        }
    }
}

fn slots() -> Vec<String> {
    (1..=SLOTS).map(|i| format!("s{i:02}")).collect()
}

fn render_cmd(dir: &Path, v: Version, commit: bool) -> Command {
    let mut c = Command::new(bin());
    c.arg("-C").arg(dir).args(["render", "--env", "ai", "--run-id", "1", "--set", v.set()]);
    for s in slots() {
        c.args(["--slot", &s]);
    }
    if commit {
        c.args(["--commit", "-m", &format!("render {v:?}")]);
    }
    c.env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    c
}

fn render(dir: &Path, v: Version, commit: bool) -> Duration {
    let start = Instant::now();
    let out = render_cmd(dir, v, commit).output().unwrap();
    assert!(out.status.success(), "render {v:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    start.elapsed()
}

type Files = BTreeMap<String, Vec<u8>>;

/// Files of every slot directory, by slot.
fn slot_trees(dir: &Path) -> BTreeMap<String, Files> {
    slots()
        .into_iter()
        .map(|s| (s.clone(), codex_k8s::tree::read_dir_files(&dir.join("rendered/ai").join(&s)).unwrap()))
        .collect()
}

/// A trashed copy of `slot` (the state between the two renames of a swap).
fn trashed(dir: &Path, slot: &str) -> Option<Files> {
    let trash = dir.join("rendered/.codex-k8s-trash");
    let prefix = format!("ai__{slot}-");
    let entry = fs::read_dir(trash).ok()?.flatten().find(|e| e.file_name().to_string_lossy().starts_with(&prefix))?;
    Some(codex_k8s::tree::read_dir_files(&entry.path()).unwrap())
}

struct Refs {
    old: BTreeMap<String, Files>,
    new: BTreeMap<String, Files>,
    old_tree: String,
    new_tree: String,
}

impl Refs {
    fn files(&self, v: Version) -> &BTreeMap<String, Files> {
        match v {
            Version::Old => &self.old,
            Version::New => &self.new,
        }
    }

    fn tree(&self, v: Version) -> &str {
        match v {
            Version::Old => &self.old_tree,
            Version::New => &self.new_tree,
        }
    }
}

/// After a kill: every slot directory is whole, old or new (or whole in the
/// trash, where the next run's recovery takes it from). Returns how many
/// slots are new, for the statistics.
fn check_after_kill(dir: &Path, refs: &Refs, what: &str) -> usize {
    let mut new = 0;
    for (slot, files) in slot_trees(dir) {
        let files = if files.is_empty() { trashed(dir, &slot).unwrap_or_default() } else { files };
        if files == refs.new[&slot] {
            new += 1;
        } else {
            assert!(files == refs.old[&slot], "{what}: rendered/ai/{slot} is neither the old nor the new render");
        }
    }
    new
}

fn fsck(dir: &Path) {
    let out = Command::new("git").arg("-C").arg(dir).args(["fsck", "--strict", "--no-progress"]).output().unwrap();
    assert!(out.status.success(), "git fsck --strict failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// Sets up the example, renders old and new once each (committed), and
/// records the reference files and trees.
fn setup() -> (tempfile::TempDir, Refs, Duration) {
    let tmp = example();
    render(tmp.path(), Version::Old, true);
    let old = slot_trees(tmp.path());
    let old_tree = git_text(tmp.path(), &["rev-parse", "HEAD:rendered"]);
    let t = render(tmp.path(), Version::New, true);
    let new = slot_trees(tmp.path());
    let new_tree = git_text(tmp.path(), &["rev-parse", "HEAD:rendered"]);
    assert_ne!(old, new);
    for (s, f) in &old {
        assert!(f.len() > 10, "slot {s} rendered only {} files", f.len());
    }
    (tmp, Refs { old, new, old_tree, new_tree }, t)
}

/// Kills `render` (with or without `--commit`) at random points, checks the
/// tree after each kill and after the next, complete run. Returns (kills
/// that left a mixed tree, i.e. landed inside the write; total kills).
fn kill_loop(
    dir: &Path,
    refs: &Refs,
    commit: bool,
    rng: &mut Rng,
    full: Duration,
    state: &mut Version,
) -> (usize, usize) {
    let mut mid_write = 0;
    for i in 0..KILLS {
        let goal = state.other();
        let mut child = render_cmd(dir, goal, commit).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        // Kill points spread over the later 60% of a run (loading
        // and rendering in memory come first and write nothing), and a little
        // past it so some runs finish.
        std::thread::sleep(full.mul_f64(0.4) + rng.below(full.mul_f64(0.65)));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let what = format!("kill {i} ({}, toward {goal:?}, {status})", if commit { "--commit" } else { "write" });
        let new = check_after_kill(dir, refs, &what);
        if new != 0 && new != SLOTS {
            mid_write += 1;
        }
        fsck(dir);
        if commit {
            let head = git_text(dir, &["rev-parse", "HEAD:rendered"]);
            assert!(head == refs.old_tree || head == refs.new_tree, "{what}: HEAD's rendered tree is neither render");
        }
        // The next run succeeds and yields the goal's tree.
        render_after_kill(dir, goal, commit, &what);
        assert!(slot_trees(dir) == *refs.files(goal), "{what}: the next run did not yield the expected tree");
        for scratch in [".codex-k8s-staging", ".codex-k8s-trash"] {
            assert!(!dir.join("rendered").join(scratch).exists(), "{what}: {scratch} left behind");
        }
        if commit {
            fsck(dir);
            assert_eq!(
                git_text(dir, &["rev-parse", "HEAD:rendered"]),
                refs.tree(goal),
                "{what}: HEAD after the next run"
            );
            let status = git_text(dir, &["status", "--porcelain", "--", "rendered"]);
            assert!(status.is_empty(), "{what}: work tree differs from HEAD after the next run:\n{status}");
        }
        *state = goal;
    }
    (mid_write, KILLS)
}

/// The run after a kill. A kill inside git's own update of the index or of
/// a ref leaves git's lock file: the run must refuse it by name before
/// writing anything, and succeed once it is removed (what its message tells
/// people to do when no git process runs).
fn render_after_kill(dir: &Path, goal: Version, commit: bool, what: &str) {
    let before = slot_trees(dir);
    let out = render_cmd(dir, goal, commit).output().unwrap();
    if out.status.success() {
        return;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let stale: Vec<PathBuf> =
        [".git/index.lock", ".git/refs/heads/main.lock"].iter().map(|l| dir.join(l)).filter(|p| p.exists()).collect();
    assert!(!stale.is_empty() && err.contains("remove the file"), "{what}: the next run failed:\n{err}");
    assert!(slot_trees(dir) == before, "{what}: the refused run wrote");
    for p in stale {
        fs::remove_file(p).unwrap();
    }
    render(dir, goal, commit);
}

#[test]
fn sigkill_during_write_and_commit_leaves_old_or_new() {
    let (tmp, refs, full_commit) = setup();
    let mut rng = Rng::seeded();
    // Kill points are drawn over the length of a run of the same kind.
    render(tmp.path(), Version::Old, false);
    let full_write = render(tmp.path(), Version::New, false);
    let mut state = Version::New;
    let (w_mid, w) = kill_loop(tmp.path(), &refs, false, &mut rng, full_write, &mut state);
    // Commit the write phase's end state, so the --commit phase starts clean.
    render(tmp.path(), state, true);
    let (c_mid, c) = kill_loop(tmp.path(), &refs, true, &mut rng, full_commit, &mut state);
    eprintln!(
        "crash test: {w} kills during write ({w_mid} left a mix of old and new slots), {c} during --commit ({c_mid} mixed); a run takes {full_write:?} (write) and {full_commit:?} (--commit)"
    );
}

#[test]
fn concurrent_renders_never_interleave() {
    let (tmp, refs, full) = setup();
    let dir = tmp.path();
    let mut rng = Rng::seeded();
    for round in 0..6 {
        let commit = round % 2 == 1;
        let first = if round % 4 < 2 { Version::Old } else { Version::New };
        let a = render_cmd(dir, first, commit).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        // The second starts anywhere inside the first run.
        std::thread::sleep(rng.below(full));
        let b = render_cmd(dir, first.other(), commit).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let (ra, rb) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        for r in [&ra, &rb] {
            if !r.status.success() {
                let err = String::from_utf8_lossy(&r.stderr);
                assert!(err.contains("lock"), "round {round}: a concurrent run failed without naming the lock:\n{err}");
            }
        }
        let trees = slot_trees(dir);
        let whole = trees == refs.old || trees == refs.new;
        assert!(whole, "round {round}: two concurrent renders left a mix of old and new slots");
        if commit {
            fsck(dir);
            let head = git_text(dir, &["rev-parse", "HEAD:rendered"]);
            assert!(head == refs.old_tree || head == refs.new_tree, "round {round}: HEAD's tree is neither render");
            let status = git_text(dir, &["status", "--porcelain", "--", "rendered"]);
            assert!(status.is_empty(), "round {round}: work tree differs from HEAD:\n{status}");
        }
        // The run that took the lock last wins when both succeed.
        if ra.status.success() && rb.status.success() {
            assert!(trees == refs.old || trees == refs.new);
        }
    }
}

/// Writes the reference files of `slot` in place of its directory (what a
/// concurrent run's swap does).
fn put_slot(dir: &Path, slot: &str, files: &Files) {
    let target = dir.join("rendered/ai").join(slot);
    fs::remove_dir_all(&target).unwrap();
    for (rel, bytes) in files {
        let path = target.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
}

/// Deterministic form of the race above: while another writer holds the
/// lock and is half-way through swapping slots in, a second `render` must
/// not decide which targets are current (it would skip the unswapped ones
/// and overwrite the swapped ones: a mix). It reads the tree only once it
/// holds the lock.
#[test]
fn a_waiting_render_reads_the_tree_only_after_taking_the_lock() {
    use fs2::FileExt;
    let (tmp, refs, _) = setup();
    let dir = tmp.path();
    render(dir, Version::Old, false);
    let lock =
        fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(".git/codex-k8s.lock")).unwrap();
    lock.lock_exclusive().unwrap();
    let all = slots();
    let (first, second) = all.split_at(SLOTS / 2);
    for s in first {
        put_slot(dir, s, &refs.new[s]);
    }
    let waiting = render_cmd(dir, Version::Old, false).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    // Long enough for a run that does not wait to read the tree and render.
    std::thread::sleep(Duration::from_millis(2500));
    for s in second {
        put_slot(dir, s, &refs.new[s]);
    }
    fs2::FileExt::unlock(&lock).unwrap();
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(slot_trees(dir) == refs.old, "the waiting run wrote a mix of its render and the other writer's");
}

// ---------------------------------------------------------------- --out scope

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin()).arg("-C").arg(dir).args(args).env("NO_COLOR", "1").stdin(Stdio::null()).output().unwrap()
}

fn all_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), fs::read(e.path()).unwrap()))
        .collect()
}

#[cfg(unix)]
#[test]
fn out_refuses_paths_outside_the_project() {
    let tmp = example();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("keep.txt"), "keep").unwrap();
    std::os::unix::fs::symlink(outside.path(), tmp.path().join("link")).unwrap();
    let abs = outside.path().join("r");
    let before = all_files(outside.path());
    for out in [abs.to_str().unwrap(), "../r", "a/../../r", "link", "link/rendered", "link/a/b"] {
        let r = run(tmp.path(), &["render", "--env", "staging", "--out", out]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "--out {out} was accepted:\n{err}");
        assert!(err.contains("--out"), "--out {out}: the error does not name --out:\n{err}");
    }
    assert_eq!(all_files(outside.path()), before, "something was written outside the project");
    assert!(!tmp.path().join("rendered").exists());
}

#[cfg(unix)]
#[test]
fn render_touches_nothing_but_its_targets() {
    let tmp = example();
    let dir = tmp.path();
    let r = run(dir, &["render", "--env", "staging"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // Things a render of `dev` must leave alone: other targets, stray files,
    // a target directory that is a symlink to somewhere outside.
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("precious.yaml"), "x").unwrap();
    fs::create_dir_all(dir.join("rendered/notes")).unwrap();
    fs::write(dir.join("rendered/notes/README.md"), "hand-written").unwrap();
    fs::write(dir.join("rendered/README.md"), "top").unwrap();
    fs::create_dir_all(dir.join("rendered/ai")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.join("rendered/ai/linked")).unwrap();
    let keep = |all: BTreeMap<PathBuf, Vec<u8>>| -> BTreeMap<PathBuf, Vec<u8>> {
        all.into_iter()
            .filter(|(p, _)| {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                !(rel.starts_with("rendered/dev/")
                    || rel == "rendered/flux/dev.yaml"
                    || rel == "rendered/argocd/dev.yaml")
            })
            .collect()
    };
    // A crafted leftover in the trash (as a pull request could commit it)
    // must not be "recovered" to a path outside the tree.
    fs::create_dir_all(dir.join("rendered/.codex-k8s-trash/..__escaped-1")).unwrap();
    fs::write(dir.join("rendered/.codex-k8s-trash/..__escaped-1/f.yaml"), "evil").unwrap();
    let before: BTreeMap<PathBuf, Vec<u8>> =
        keep(all_files(dir)).into_iter().filter(|(p, _)| !p.to_string_lossy().contains(".codex-k8s-trash")).collect();
    let outside_before = all_files(outside.path());
    for _ in 0..2 {
        let r = run(dir, &["render", "--env", "dev", "--force"]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    assert!(dir.join("rendered/dev/kustomization.yaml").is_file());
    assert_eq!(keep(all_files(dir)), before, "render --env dev touched files outside its target");
    assert_eq!(all_files(outside.path()), outside_before);
    assert!(fs::symlink_metadata(dir.join("rendered/ai/linked")).unwrap().file_type().is_symlink());
    assert!(!dir.join("escaped").exists(), "a crafted trash entry was moved outside the tree");
}
