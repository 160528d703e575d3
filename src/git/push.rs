//! Pushing with retry: on a non-fast-forward (another CI job pushed first),
//! fetch the remote branch, rebuild this run's commit on the new tip
//! (re-applying only this run's updates), and try again with backoff.

use std::time::Duration;

use git2::{Cred, CredentialType, FetchOptions, PushOptions, RemoteCallbacks, Repository};

use super::commit::{commit_on_ref, CommitRequest, Outcome};
use super::{Error, Result};

/// Retry policy.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts before giving up.
    pub attempts: u32,
    /// First backoff; doubles each time, with jitter.
    pub base_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { attempts: 10, base_delay: Duration::from_millis(50) }
    }
}

/// Credentials: ssh-agent for ssh URLs; for https, a token from
/// `CODEX_K8S_GIT_TOKEN` (or `GIT_TOKEN`), else git's credential helpers.
fn callbacks<'a>() -> RemoteCallbacks<'a> {
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
    let verdict = summary.contains("hook declined") || summary.contains("checked out") || summary.contains("denied");
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
        Some(msg) => Err(Rejection::Retry(msg)),
        None => Ok(()),
    }
}

/// Checks that `remote` names a configured remote or a repository path on
/// this machine, so a run can refuse a typo before it writes anything.
pub fn check_remote(repo: &Repository, remote: &str) -> Result<()> {
    if repo.find_remote(remote).is_ok() {
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
/// a rejection (another job pushed first) backs off and tries again.
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
    let mut last_error = String::new();
    let mut ours: Option<git2::Oid> = None;
    for attempt in 0..retry.attempts {
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
            let jitter = u64::from((std::process::id().wrapping_mul(31).wrapping_add(attempt * 17)) % 40);
            std::thread::sleep(retry.base_delay * 2u32.saturating_pow(attempt.min(5)) + Duration::from_millis(jitter));
        }
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
    Err(Error::PushRetriesExhausted { attempts: retry.attempts, last: last_error })
}
