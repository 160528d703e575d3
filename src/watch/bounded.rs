//! Bounds on every wait of the watcher: the deadline of an API request and
//! of a git operation, [`within`] to apply one, and [`blocking`] to run
//! libgit2 work off the async threads.

use std::future::Future;
use std::time::Duration;

use super::{Error, Result};

/// Deadline of one API call, its retries included (list, get, patch,
/// delete, Event create, a Lease round when not leading).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Default deadline of a git fetch (and of reading the tip it fetched).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// Default deadline of a removal: commit, push, and the fetch-rebuild-retry
/// of a rejected push.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Deadlines of the watcher's git operations (`--git-fetch-timeout`,
/// `--git-push-timeout`). A fetch only reads, so it fails fast and the
/// pass is retried at the next tick; a push may carry a removal and gets
/// longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GitTimeouts {
    /// Fetching the followed branch and reading its tip.
    pub fetch: Duration,
    /// Committing and pushing a removal (with its retries).
    pub push: Duration,
}

impl Default for GitTimeouts {
    fn default() -> Self {
        GitTimeouts { fetch: FETCH_TIMEOUT, push: PUSH_TIMEOUT }
    }
}

/// Bounds `fut` by `after`, as [`Error::Timeout`].
pub async fn within<T>(what: &str, after: Duration, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(after, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout { what: what.to_owned(), after }),
    }
}

/// Runs blocking work (libgit2) on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Task(e.to_string()))?
}

/// An error and its causes on one line, for logs.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
