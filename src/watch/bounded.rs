//! Bounds on every wait of the watcher: the deadline of an API request and
//! of a git operation, [`within`] to apply one, and [`blocking`] to run
//! libgit2 work off the async threads.

use std::future::Future;
use std::time::Duration;

use super::{Error, Result};

/// Deadline of one API request (list, get, patch, delete, Lease write).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Deadline of a git fetch or push.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(60);

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
