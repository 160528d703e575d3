//! Bounded retries of one API call within a pass, as client-go does: a
//! 429, a 5xx or a connection that broke is tried again after a jittered
//! exponential backoff, or after the server's `Retry-After`
//! (`details.retryAfterSeconds`) when it asks for no more than
//! [`RETRY_AFTER_CAP`]. Every attempt and wait fits in one deadline
//! ([`REQUEST_TIMEOUT`]), so a pass never waits longer on a call than
//! without retries.
//!
//! Only calls that are safe to repeat come here: reads; a DELETE carrying
//! the uid precondition; a merge patch carrying the `resourceVersion` it
//! was decided on; a create with a fixed name (a repeat that finds it is
//! `AlreadyExists`, which the caller counts as done). A call that is none
//! of these is not retried.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use super::bounded::REQUEST_TIMEOUT;
use super::metrics::Health;
use super::{Error, Result};

/// At most this many attempts per call.
pub const ATTEMPTS: u32 = 4;

/// The first backoff; each further one doubles, up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_millis(200);

/// The longest backoff between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The longest `Retry-After` honoured within a pass; a server asking for
/// more is answered at the next pass instead (`--interval`).
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(5);

/// How an answer is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not retryable: the error stands.
    Final,
    /// Retry after the backoff.
    Backoff,
    /// The server said when: retry after that many seconds.
    RetryAfter(u64),
}

/// What `e` allows.
pub fn verdict(e: &kube::Error) -> Verdict {
    match e {
        kube::Error::Api(s) if s.code == 429 || (500..600).contains(&s.code) => {
            match s.details.as_ref().map(|d| d.retry_after_seconds).filter(|s| *s > 0) {
                Some(secs) => Verdict::RetryAfter(u64::from(secs)),
                None => Verdict::Backoff,
            }
        }
        // The connection broke (reset, closed before the answer, refused).
        kube::Error::HyperError(_) | kube::Error::Service(_) => Verdict::Backoff,
        _ => Verdict::Final,
    }
}

/// How long to wait before attempt `attempt + 1` (attempts count from 1),
/// `jitter` in [0, 1): half the exponential backoff plus up to the other
/// half at random; `None` when the server asks for more than the cap.
pub fn wait(verdict: Verdict, attempt: u32, jitter: f64) -> Option<Duration> {
    match verdict {
        Verdict::Final => None,
        Verdict::RetryAfter(secs) => Some(Duration::from_secs(secs)).filter(|d| *d <= RETRY_AFTER_CAP),
        Verdict::Backoff => {
            let full = BASE_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(MAX_BACKOFF);
            Some(full / 2 + full.mul_f64(jitter.clamp(0.0, 1.0) / 2.0))
        }
    }
}

/// A number in [0, 1) from the process's random hasher keys.
fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The label of an API failure in metrics: the HTTP code, or `connection`.
pub fn code_of(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.code.to_string(),
        kube::Error::HyperError(_) | kube::Error::Service(_) => "connection".to_owned(),
        _ => "other".to_owned(),
    }
}

/// Runs `call` until it succeeds, fails for good, runs out of attempts or
/// the deadline ([`REQUEST_TIMEOUT`] for all attempts and waits) passes.
pub async fn call<T, F, Fut>(health: &Health, what: &str, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, kube::Error>>,
{
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let e = match tokio::time::timeout_at(deadline, call()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => {
                health.api_error("timeout");
                return Err(Error::Timeout { what: what.to_owned(), after: REQUEST_TIMEOUT });
            }
        };
        health.api_error(&code_of(&e));
        let v = verdict(&e);
        let Some(pause) = wait(v, attempt, jitter()).filter(|_| attempt < ATTEMPTS) else { return Err(e.into()) };
        if tokio::time::Instant::now() + pause >= deadline {
            return Err(e.into());
        }
        tracing::debug!(what, attempt, code = %code_of(&e), pause = ?pause, "API call failed; retrying");
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, retry_after: u32) -> kube::Error {
        let mut s = Status::failure("x", "y").with_code(code);
        if retry_after > 0 {
            s.details = serde_json::from_value(serde_json::json!({"retryAfterSeconds": retry_after})).ok();
        }
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn throttling_server_errors_and_broken_connections_are_retried_and_client_errors_are_not() {
        assert_eq!(verdict(&api(429, 0)), Verdict::Backoff);
        assert_eq!(verdict(&api(503, 0)), Verdict::Backoff);
        assert_eq!(verdict(&api(500, 0)), Verdict::Backoff);
        assert_eq!(verdict(&api(429, 2)), Verdict::RetryAfter(2));
        for code in [400, 403, 404, 409, 410, 422] {
            assert_eq!(verdict(&api(code, 0)), Verdict::Final, "{code}");
        }
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(verdict(&kube::Error::Service(Box::new(io))), Verdict::Backoff);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        assert_eq!(wait(Verdict::RetryAfter(1), 1, 0.5), Some(Duration::from_secs(1)));
        assert_eq!(wait(Verdict::RetryAfter(5), 1, 0.5), Some(RETRY_AFTER_CAP));
        assert_eq!(wait(Verdict::RetryAfter(600), 1, 0.5), None);
        assert_eq!(wait(Verdict::Final, 1, 0.5), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        assert_eq!(wait(Verdict::Backoff, 1, 0.0), Some(BASE_BACKOFF / 2));
        assert_eq!(wait(Verdict::Backoff, 1, 0.999_999).map(|d| d <= BASE_BACKOFF), Some(true));
        assert_eq!(wait(Verdict::Backoff, 2, 0.0), Some(BASE_BACKOFF));
        assert_eq!(wait(Verdict::Backoff, 30, 1.0), Some(MAX_BACKOFF));
        let j = jitter();
        assert!((0.0..1.0).contains(&j), "{j}");
    }
}
