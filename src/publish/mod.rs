//! Publishing the rendered tree: the pieces the CLI (`render`, `slots`) and
//! the watcher share, so both follow one set of rules. Entry point today:
//! [`lock_tree`] / [`lock_repo`], the one lock that serialises every run
//! writing a tree or its repository.

mod lock;

pub use lock::{lock_path, lock_repo, lock_tree, TreeLock};

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
