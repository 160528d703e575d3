//! Git: commits with provenance through libgit2 (the `git` CLI only for pushes to a repository on this machine, so its hooks and receive checks apply),
//! trees built from memory so unchanged subtrees are reused, a hydrated
//! branch mode that needs no work tree, and pushes that survive concurrent
//! CI jobs by rebuilding on the new tip.

mod commit;
mod push;
mod read;
mod repo;
mod snapshot;
mod tree;

pub use commit::{
    commit_on_ref, commit_worktree, dirty_files, rendered_from, reset_index_to_head, signatures, CommitRequest, Outcome,
};
pub use push::{check_remote, fetch, fetch_tip, push_ref_once, push_with_retry, Retry};
pub use read::{changed_paths, last_touches, read_tree_parts};
pub use repo::{clone_if_missing, is_repository, Checkout};
pub use snapshot::{export_project, SourceSnapshot};
pub use tree::{Update, Updates};

/// Git failures, each with what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// libgit2 reported an error. Its message is printed here, so it is not
    /// also a `source()` (a printed chain would repeat it).
    #[error("git: {}", .0.message())]
    Git(git2::Error),
    /// No author identity is configured.
    #[error("no git identity: set user.name and user.email (`git config`), or GIT_AUTHOR_NAME and GIT_AUTHOR_EMAIL")]
    NoIdentity,
    /// HEAD is detached, so there is no branch to commit on.
    #[error("HEAD is detached: check out a branch, or commit with --branch REF")]
    DetachedHead,
    /// The repository has no work tree.
    #[error("the repository is bare: use --branch REF to commit from memory")]
    Bare,
    /// History is cut off (a shallow clone): idle times read from it would be wrong.
    #[error("{0} is a shallow clone, so the last change of each slot cannot be known (every slot would look idle for 0 s): run `git fetch --unshallow` (or `git -C {0} fetch --unshallow`), or check out with full history (actions/checkout: `fetch-depth: 0`)")]
    Shallow(String),
    /// A precondition of the run does not hold.
    #[error("{0}")]
    Refused(String),
    /// The remote refused the push for a reason retrying cannot fix.
    #[error("push failed: {0}")]
    Push(String),
    /// Every retry until the deadline met a newer remote tip (or a locked remote).
    #[error("push still rejected after {attempts} attempts in {waited} (last: {last}); the branch is very busy: run again, or allow more time with CODEX_K8S_PUSH_TIMEOUT (default 120s)")]
    PushRetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// Time spent, for people.
        waited: String,
        /// Last rejection.
        last: String,
    },
}

impl From<git2::Error> for Error {
    fn from(e: git2::Error) -> Self {
        Error::Git(e)
    }
}

/// Refuses a shallow repository for answers that depend on history.
pub fn require_full_history(repo: &git2::Repository) -> Result<()> {
    if repo.is_shallow() {
        let dir = repo.workdir().unwrap_or(repo.path());
        return Err(Error::Shallow(dir.display().to_string()));
    }
    Ok(())
}

/// Result of git operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_git_error_prints_its_cause_once_in_the_chain() {
        let err = Error::from(git2::Error::from_str("object not found"));
        let chain = format!("{:#}", anyhow::Error::new(err));
        assert_eq!(chain.matches("object not found").count(), 1, "{chain}");
    }
}
