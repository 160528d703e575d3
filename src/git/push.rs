//! Pushing with retry: on a non-fast-forward (another CI job pushed first),
//! fetch the remote branch, rebuild this run's commit on the new tip
//! (re-applying only this run's updates), and try again with jittered
//! exponential backoff until a total deadline.
//!
//! Pushes to a repository on this machine (a path or a `file://` URL) are
//! also serialised among `codex-k8s` processes by an advisory lock (`flock`)
//! on the remote's git directory, held from the fetch to the end of the push:
//! concurrent renders then take turns instead of rebuilding and racing each
//! other's lease. The lock is released by the kernel when a process dies, so
//! it can never be left behind; pushers that do not take it (plain `git
//! push`) are still handled by the lease and the retry.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use git2::{Cred, CredentialType, FetchOptions, PushOptions, RemoteCallbacks, Repository};

use super::commit::{commit_on_ref, CommitRequest, Outcome};
use super::{Error, Result};

/// Retry policy: keep trying until `deadline` has passed since the first
/// attempt, sleeping `base_delay`, doubling up to `max_delay`, each with
/// random jitter (so pushers that collided once do not collide again).
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Total time for waiting on the remote's lock, fetching, rebuilding and pushing.
    pub deadline: Duration,
    /// First backoff after a rejection.
    pub base_delay: Duration,
    /// Longest single backoff.
    pub max_delay: Duration,
}

impl Retry {
    /// The default policy with another total deadline.
    pub fn with_deadline(deadline: Duration) -> Self {
        Retry { deadline, ..Retry::default() }
    }

    /// The backoff before attempt `attempt` (1 = the first retry): the
    /// exponential step, capped at `max_delay`, scaled by a random factor in
    /// [0.5, 1.0) ("equal jitter").
    fn backoff(&self, attempt: u32) -> Duration {
        let step = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(self.max_delay);
        step / 2 + step.mul_f64(random_unit() / 2.0)
    }
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            deadline: Duration::from_secs(120),
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// A number in [0, 1) that differs between processes and calls: the clock's
/// nanoseconds, the process id and a counter, mixed (splitmix64). Jitter
/// only, nothing depends on its quality.
fn random_unit() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut z =
        nanos ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// An advisory lock on a repository on this machine, held while one
/// `codex-k8s` process fetches, rebuilds and pushes (released on drop, or by
/// the kernel if the process dies).
struct RemoteLock(std::fs::File);

impl Drop for RemoteLock {
    fn drop(&mut self) {
        let _ = fs2::FileExt::unlock(&self.0);
    }
}

/// The git directory of the repository at `path` (so `/r`, `/r/.git` and a
/// `file://` URL of either lock the same thing), if it is one.
fn git_dir_of(path: &Path) -> Option<PathBuf> {
    let repo = Repository::open_ext(path, git2::RepositoryOpenFlags::NO_SEARCH, std::iter::empty::<&str>()).ok()?;
    Some(repo.path().to_path_buf())
}

/// Takes the advisory lock of the repository at `path`, waiting until
/// `until`. `Ok(None)`: not a repository (the push itself will say why).
fn lock_remote(path: &Path, until: Instant) -> std::result::Result<Option<RemoteLock>, String> {
    use fs2::FileExt;
    let Some(dir) = git_dir_of(path) else { return Ok(None) };
    // flock on the directory itself: nothing is written into the remote.
    let file = std::fs::File::open(&dir).map_err(|e| format!("opening {} to lock it: {e}", dir.display()))?;
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => return Ok(Some(RemoteLock(file))),
            Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => {}
            // A file system without flock: rely on the lease and the retry.
            Err(_) => return Ok(None),
        }
        if Instant::now() >= until {
            return Err(format!("{} stayed locked by other codex-k8s pushes", dir.display()));
        }
        // Short random polls, so waiting processes take turns roughly at random.
        std::thread::sleep(Duration::from_millis(5) + Duration::from_millis(20).mul_f64(random_unit()));
    }
}

/// Credentials: ssh-agent for ssh URLs; for https, a token from
/// `CODEX_K8S_GIT_TOKEN` (or `GIT_TOKEN`), else git's credential helpers.
pub(super) fn callbacks<'a>() -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    let mut tried = 0u32;
    cb.credentials(move |url, username, allowed| {
        tried += 1;
        if tried > 4 {
            return Err(git2::Error::from_str("authentication failed (tried ssh-agent, token and credential helpers)"));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            return Cred::ssh_key_from_agent(username.unwrap_or("git"));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let Ok(token) = std::env::var("CODEX_K8S_GIT_TOKEN").or_else(|_| std::env::var("GIT_TOKEN")) {
                let user = std::env::var("CODEX_K8S_GIT_USER").unwrap_or_else(|_| "x-access-token".into());
                return Cred::userpass_plaintext(&user, &token);
            }
            if let Ok(config) = git2::Config::open_default() {
                return Cred::credential_helper(&config, url, username);
            }
        }
        Cred::default()
    });
    cb
}

fn is_retryable(message: &str) -> bool {
    let m = message.to_lowercase();
    ["non-fast", "fastforward", "fast-forward", "rejected", "fetch first", "lock", "stale info", "cannot push"]
        .iter()
        .any(|k| m.contains(k))
}

/// A push that did not land.
enum Rejection {
    /// Someone else moved the branch first: fetch, rebuild, retry.
    Retry(String),
    /// Retrying cannot help.
    Fatal(String),
}

/// The path of a remote on this machine (a plain path or a `file://` URL).
fn local_remote_path(repo: &Repository, remote: &str) -> Option<std::path::PathBuf> {
    let url = match repo.find_remote(remote) {
        Ok(r) => r.url()?.to_owned(),
        Err(_) => remote.to_owned(),
    };
    if let Some(path) = url.strip_prefix("file://") {
        return Some(path.into());
    }
    if url.contains("://") || url.contains('@') && url.contains(':') {
        return None;
    }
    let path = std::path::PathBuf::from(&url);
    let path = if path.is_relative() { repo.workdir().unwrap_or(repo.path()).join(path) } else { path };
    path.exists().then_some(path)
}

/// Pushes to a repository on this machine through the `git` CLI, so the
/// remote behaves exactly as git makes it: `git receive-pack` runs the
/// remote's hooks (pre-receive, update, post-receive), refuses its
/// checked-out branch (`receive.denyCurrentBranch`), and moves the branch
/// under its ref lock only if it still is at `expected` (a lease), so two
/// concurrent pushes can never both "win". Nothing is written to the remote
/// but objects and the branch itself (no scratch refs).
fn push_local(
    repo: &Repository,
    path: &std::path::Path,
    branch: &str,
    new: git2::Oid,
    expected: Option<git2::Oid>,
) -> std::result::Result<(), Rejection> {
    let target = format!("refs/heads/{branch}");
    let lease = format!("--force-with-lease={target}:{}", expected.map(|o| o.to_string()).unwrap_or_default());
    let output = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo.path())
        .args(["push", "--porcelain", &lease])
        .arg(path)
        .arg(format!("{new}:{target}"))
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            Rejection::Fatal(format!(
                "pushing to {} (a repository on this machine) runs the git CLI, so the remote's hooks and checks apply: {e}; install git or push through an ssh/https URL",
                path.display()
            ))
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        return Ok(());
    }
    // `--porcelain`: `<flag>\t<from>:<to>\t<summary> (<reason>)` per ref.
    let line = stdout.lines().find(|l| l.starts_with("!\t"));
    let remote_said: Vec<&str> = stderr.lines().filter(|l| l.starts_with("remote:")).map(str::trim).collect();
    let detail = if remote_said.is_empty() { String::new() } else { format!("; {}", remote_said.join(" | ")) };
    let summary = line.and_then(|l| l.split('\t').nth(2)).unwrap_or("").to_owned();
    let message = if summary.is_empty() {
        format!("git push to {}: {}", path.display(), stderr.trim())
    } else {
        format!("{} rejected {target}: {summary}{detail}", path.display())
    };
    let lower = format!("{summary} {stderr}").to_lowercase();
    let busy = [
        "fetch first",
        "non-fast-forward",
        "stale info",
        "failed to update ref",
        "cannot lock ref",
        "failed to lock",
        "unable to lock",
        "incorrect old value",
    ]
    .iter()
    .any(|k| lower.contains(k));
    // A hook that declined, or a branch the remote refuses to update, is a
    // verdict: retrying it would only repeat it.
    let verdict = is_verdict(&summary);
    if busy && !verdict {
        Err(Rejection::Retry(message))
    } else {
        Err(Rejection::Fatal(message))
    }
}

/// Pushes through libgit2's transports (ssh, https); the server checks fast-forward atomically.
fn push_network(repo: &Repository, remote: &str, branch: &str) -> std::result::Result<(), Rejection> {
    push_network_ref(repo, remote, &format!("refs/heads/{branch}"), branch)
}

fn push_network_ref(repo: &Repository, remote: &str, src: &str, branch: &str) -> std::result::Result<(), Rejection> {
    let mut remote = repo
        .find_remote(remote)
        .or_else(|_| repo.remote_anonymous(remote))
        .map_err(|e| Rejection::Fatal(e.message().to_owned()))?;
    let mut rejected: Option<String> = None;
    {
        let mut cb = callbacks();
        cb.push_update_reference(|_refname, status| {
            if let Some(s) = status {
                rejected = Some(s.to_owned());
            }
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(cb);
        let spec = format!("{src}:refs/heads/{branch}");
        if let Err(e) = remote.push(&[spec.as_str()], Some(&mut opts)) {
            let msg = e.message().to_owned();
            return Err(if is_retryable(&msg) { Rejection::Retry(msg) } else { Rejection::Fatal(msg) });
        }
    }
    match rejected {
        Some(msg) if is_verdict(&msg) => Err(Rejection::Fatal(format!("{branch} rejected by the remote: {msg}"))),
        Some(msg) => Err(Rejection::Retry(msg)),
        None => Ok(()),
    }
}

/// A remote's refusal that retrying would only repeat: a hook or a branch
/// protection declined, or the branch is checked out there.
fn is_verdict(message: &str) -> bool {
    let m = message.to_lowercase();
    ["hook declined", "denied", "protected branch", "checked out", "not allowed", "permission"]
        .iter()
        .any(|k| m.contains(k))
}

/// Checks that `remote` names a configured remote or a repository path on
/// this machine, so a run can refuse a typo before it writes anything.
pub fn check_remote(repo: &Repository, remote: &str) -> Result<()> {
    if let Ok(r) = repo.find_remote(remote) {
        // A configured remote on this machine must exist, or libgit2 says
        // only "unsupported URL protocol".
        let url = r.url().unwrap_or_default();
        let local = url.strip_prefix("file://").map(str::to_owned).or_else(|| {
            let remote_like = url.contains("://") || url.contains('@') && url.contains(':');
            (!remote_like && !url.is_empty()).then(|| url.to_owned())
        });
        if let Some(path) = local {
            let path = std::path::PathBuf::from(path);
            let full = if path.is_relative() { repo.workdir().unwrap_or(repo.path()).join(&path) } else { path };
            if !full.exists() {
                return Err(Error::Push(format!(
                    "remote `{remote}` points at {}, which does not exist: create the repository (`git init --bare {}`) or fix the URL (`git remote set-url {remote} URL`)",
                    full.display(),
                    full.display()
                )));
            }
        }
        return Ok(());
    }
    if remote.contains("://") || remote.contains('@') && remote.contains(':') {
        return Ok(());
    }
    if local_remote_path(repo, remote).is_some_and(|p| p.exists()) {
        return Ok(());
    }
    let known: Vec<String> = repo.remotes()?.iter().flatten().map(str::to_owned).collect();
    Err(Error::Push(format!(
        "no remote `{remote}`: it is neither a configured remote ({}) nor a repository path; add it with `git remote add {remote} URL`",
        if known.is_empty() { "none configured".to_owned() } else { known.join(", ") }
    )))
}

/// Fetches `branch` from `remote`; returns the remote tip, if the branch exists there.
pub fn fetch(repo: &Repository, remote: &str, branch: &str) -> Result<Option<git2::Oid>> {
    let mut r = repo.find_remote(remote).or_else(|_| repo.remote_anonymous(remote))?;
    let tracking = format!("refs/codex-k8s/remote/{branch}");
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks());
    let spec = format!("+refs/heads/{branch}:{tracking}");
    r.fetch(&[spec.as_str()], Some(&mut opts), None)?;
    match repo.find_reference(&tracking) {
        Ok(reference) => Ok(reference.target()),
        Err(_) => Ok(None),
    }
}

/// The tip of `branch` on `remote`, its objects downloaded, without writing
/// any ref (no remote-tracking ref, no `FETCH_HEAD`): what a dry run reads.
pub fn fetch_tip(repo: &Repository, remote: &str, branch: &str) -> Result<Option<git2::Oid>> {
    let mut r = repo.find_remote(remote).or_else(|_| repo.remote_anonymous(remote))?;
    let want = format!("refs/heads/{branch}");
    let tip = {
        let conn = r.connect_auth(git2::Direction::Fetch, Some(callbacks()), None)?;
        conn.list()?.iter().find(|h| h.name() == want).map(|h| h.oid())
    };
    let Some(tip) = tip else { return Ok(None) };
    if repo.find_commit(tip).is_err() {
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks());
        // `download` only: `update_tips` (refs, FETCH_HEAD) is never called.
        r.download(&[want.as_str()], Some(&mut opts))?;
        r.disconnect()?;
    }
    Ok(Some(tip))
}

/// Moves the local branch to where this run's commit must go: the remote tip,
/// or the local tip when it already contains the remote tip.
fn align_with_remote(repo: &Repository, refname: &str, remote_tip: Option<git2::Oid>) -> Result<()> {
    let local = repo.find_reference(refname).ok().and_then(|r| r.target());
    match (local, remote_tip) {
        (_, None) => Ok(()),
        (None, Some(tip)) => {
            repo.reference(refname, tip, false, "codex-k8s: remote tip")?;
            Ok(())
        }
        (Some(l), Some(t)) if l == t || repo.graph_descendant_of(l, t)? => Ok(()),
        (Some(l), Some(t)) if repo.graph_descendant_of(t, l)? => {
            repo.reference_matching(refname, t, true, l, "codex-k8s: fast-forward to remote tip")?;
            Ok(())
        }
        _ => Err(Error::Push(format!("{refname} has diverged from the remote; pull or rebase it first"))),
    }
}

/// Pushes the commit `src_ref` points at to `branch` of `remote`, expecting
/// the remote branch at `expected` (compare-and-swap; one attempt, no local
/// branch involved). `Ok(false)`: rejected because the branch moved.
pub fn push_ref_once(
    repo: &Repository,
    remote: &str,
    src_ref: &str,
    branch: &str,
    expected: Option<git2::Oid>,
) -> Result<bool> {
    let new = repo.refname_to_id(src_ref)?;
    let pushed = match local_remote_path(repo, remote) {
        Some(path) => push_local(repo, &path, branch, new, expected),
        None => push_network_ref(repo, remote, src_ref, branch),
    };
    match pushed {
        Ok(()) => Ok(true),
        Err(Rejection::Retry(_)) => Ok(false),
        Err(Rejection::Fatal(msg)) => Err(Error::Push(msg)),
    }
}

/// Commits `req` on `branch` and pushes it to `remote`. Each attempt fetches
/// the remote tip, re-applies only this run's updates on top of it and pushes;
/// a rejection (another job pushed first, a lease or ref-lock race) backs off
/// and tries again until `retry.deadline`. A verdict of the remote (a hook
/// declined, a refused branch) is final.
pub fn push_with_retry(
    repo: &Repository,
    remote: &str,
    branch: &str,
    req: &CommitRequest,
    retry: Retry,
    check: &dyn Fn(&Repository, git2::Oid) -> Result<()>,
) -> Result<Outcome> {
    let refname = format!("refs/heads/{branch}");
    let local_path = local_remote_path(repo, remote);
    let started = Instant::now();
    let until = started + retry.deadline;
    let mut last_error = String::new();
    let mut ours: Option<git2::Oid> = None;
    let mut attempt: u32 = 0;
    loop {
        // Drop our rejected commit: it is rebuilt on the new remote tip below.
        if let Some(mine) = ours.take() {
            let parent = repo.find_commit(mine)?.parent_ids().next();
            if let (Some(parent), Ok(local)) = (parent, repo.refname_to_id(&refname)) {
                if local == mine {
                    repo.reference_matching(&refname, parent, true, mine, "codex-k8s: drop rejected commit")?;
                }
            }
        }
        if attempt > 0 {
            let pause = retry.backoff(attempt);
            if Instant::now() + pause >= until {
                break;
            }
            std::thread::sleep(pause);
        }
        attempt += 1;
        // Held until this attempt's push has landed or was rejected.
        let _lock = match &local_path {
            Some(path) => match lock_remote(path, until) {
                Ok(lock) => lock,
                Err(msg) => {
                    last_error = msg;
                    break;
                }
            },
            None => None,
        };
        let remote_tip = fetch(repo, remote, branch)?;
        align_with_remote(repo, &refname, remote_tip)?;
        if let Outcome::Committed(oid) = commit_on_ref(repo, &refname, req)? {
            ours = Some(oid);
        }
        let tip = repo.refname_to_id(&refname)?;
        if Some(tip) == remote_tip {
            // The remote already holds exactly this content.
            return Ok(Outcome::Unchanged);
        }
        // Limits that depend on what others pushed (maxSlots) are checked
        // on every rebuilt tip, not only on the tip the run started from.
        if let Err(e) = check(repo, tip) {
            if let Some(mine) = ours.take() {
                if let Some(parent) = repo.find_commit(mine)?.parent_ids().next() {
                    let _ = repo.reference_matching(&refname, parent, true, mine, "codex-k8s: drop refused commit");
                }
            }
            return Err(e);
        }
        let pushed = match &local_path {
            Some(path) => push_local(repo, path, branch, tip, remote_tip),
            None => push_network(repo, remote, branch),
        };
        match pushed {
            Ok(()) => {
                // Keep the remote-tracking ref honest so `git status` agrees.
                if repo.find_remote(remote).is_ok() {
                    let _ = repo.reference(&format!("refs/remotes/{remote}/{branch}"), tip, true, "codex-k8s push");
                }
                return Ok(Outcome::Committed(tip));
            }
            Err(Rejection::Retry(msg)) => last_error = msg,
            Err(Rejection::Fatal(msg)) => return Err(Error::Push(msg)),
        }
    }
    // Give up with the branch where it was: our rejected commit is not left on it.
    if let Some(mine) = ours.take() {
        if let Some(parent) = repo.find_commit(mine)?.parent_ids().next() {
            let _ = repo.reference_matching(&refname, parent, true, mine, "codex-k8s: drop rejected commit");
        }
    }
    Err(Error::PushRetriesExhausted {
        attempts: attempt,
        waited: humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())).to_string(),
        last: last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let r = Retry::default();
        for attempt in 1..40 {
            let step = (r.base_delay * 2u32.pow((attempt - 1).min(16))).min(r.max_delay);
            let d = r.backoff(attempt);
            assert!(d >= step / 2 && d < step, "attempt {attempt}: {d:?} outside [{:?}, {step:?})", step / 2);
        }
        assert!(r.backoff(30) >= r.max_delay / 2);
    }

    #[test]
    fn a_remote_verdict_is_final_and_a_race_is_retried() {
        for verdict in [
            "pre-receive hook declined",
            "protected branch hook declined",
            "branch is currently checked out",
            "permission denied",
        ] {
            assert!(is_verdict(verdict), "{verdict}");
        }
        for race in ["stale info", "fetch first", "failed to update ref", "cannot lock ref 'refs/heads/main'"] {
            assert!(!is_verdict(race), "{race}");
        }
    }

    #[test]
    fn jitter_differs_between_calls() {
        let a: Vec<u64> = (0..16).map(|_| (random_unit() * 1e9) as u64).collect();
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert!(distinct.len() > 12, "{a:?}");
        assert!(a.iter().all(|&x| x < 1_000_000_000));
    }

    #[test]
    fn the_remote_lock_is_exclusive_and_waits_until_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        Repository::init_bare(dir.path()).unwrap();
        let held = lock_remote(dir.path(), Instant::now()).unwrap().expect("a repository is locked");
        let started = Instant::now();
        let err = lock_remote(dir.path(), Instant::now() + Duration::from_millis(300)).err().expect("the lock is held");
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
        assert!(err.contains("locked"), "{err}");
        drop(held);
        assert!(lock_remote(dir.path(), Instant::now()).unwrap().is_some());
        // Not a repository: nothing to lock, the push itself reports it.
        let plain = tempfile::tempdir().unwrap();
        assert!(lock_remote(plain.path(), Instant::now()).unwrap().is_none());
    }
}
