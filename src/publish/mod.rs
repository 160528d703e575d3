//! Publishing the rendered tree: what the CLI (`render`, `slots`, `plan`,
//! `images`) and the watcher share, so both follow one set of rules.
//!
//! - [`RenderRun`]: render → write the tree, compare it, or commit on the
//!   checked-out branch or on a branch from memory, then push with retry,
//!   starting from the remote's tip;
//! - [`requests`]: which targets a run renders, with what the tree remembers
//!   (run id, overrides, owner) and its limits (`maxSlots`, ownership);
//! - [`slots`]: the slots a tree holds with their idle time (one history
//!   reader, one TTL judgement), and slot removal (one commit shape);
//! - [`lock_tree`] / [`lock_repo`]: the one lock of every writing run;
//! - [`validate`]: every environment rendered in memory, with the warnings a
//!   render gives;
//! - [`review_plans`]: what a review from source compares, slot by slot.

mod commit;
mod lock;
mod render;
mod requests;
mod review;
pub mod slots;
mod source;
mod state;
mod validate;
pub mod walls;

pub use commit::{commit_or_push, commit_request, preflight, push_retry, source_paths, trailers};
pub use lock::{lock_path, lock_repo, lock_tree, TreeLock};
pub use render::{Action, Progress, Publish, RenderRun, Report, ReportKind, Written};
pub use requests::{requests, target_overrides, Options, Planned, Selection};
pub use review::{review_plans, ReviewSide};
pub use source::current as current_source;
pub use state::{check_meta, check_run_id, check_slot, out_dir, out_prefix, DiskTree, GitTree, TreeState};
pub use validate::{validate, Validated, PROBE};

use crate::diagnostic::Diagnostics;

/// A run refused for its input: the diagnostics say why; nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("nothing was written")]
pub struct NothingWritten(pub Diagnostics);

/// Publishing failures, each with what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The lock file cannot be created or opened.
    #[error("cannot open lock file {path}")]
    LockFile {
        /// The lock file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another run held the lock for longer than the wait allows.
    #[error("another codex-k8s run holds {path} for over a minute; wait for it or remove a stale lock")]
    Busy {
        /// The lock file.
        path: std::path::PathBuf,
    },
}

/// Result of publishing operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The git repository the project lives in, if any.
pub fn open_repo(root: &std::path::Path) -> Option<git2::Repository> {
    git2::Repository::discover(root).ok()
}
