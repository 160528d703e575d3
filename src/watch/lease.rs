//! Leader election through a `coordination.k8s.io/v1` Lease, so two replicas
//! never act at once.
//!
//! Every candidate reads the Lease every `renew_every`; [`decide`] says what
//! to do with it. Writes are replaces carrying the `resourceVersion` read, so
//! of two candidates taking an expired lease at once the apiserver lets one
//! win (the other gets 409 Conflict and stays a follower).
//!
//! Time is local, as in client-go's leader election: a follower never
//! compares the holder's `renewTime` with its own clock. It notes, on its own
//! monotonic clock, when it saw the lease's (holder, `renewTime`,
//! `resourceVersion`) last change, and takes over only when the lease
//! duration has passed since then without a change. A holder whose clock
//! runs hours ahead (or behind) therefore delays a takeover by nothing.
//!
//! The leader counts its lease from the moment it *sent* the renewal that
//! succeeded, and steps down [`STEP_DOWN`] of the lease duration later unless
//! a newer renewal succeeded: a renewal that hangs is abandoned at that
//! deadline and leadership is withdrawn at once, before any follower can
//! see the lease as expired. On shutdown the leader clears `holderIdentity`,
//! so a successor takes over at its next try instead of after the lease
//! duration.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::watch;
use tokio::time::Instant;

use super::bounded::error_chain;
use super::{Clock, Result};

/// The share of the lease duration a leader keeps leading after the start
/// of its last successful renewal (client-go's renew deadline is 10 s of a
/// 15 s lease; this is 12 s). Followers wait the whole duration from when
/// *they* saw that renewal, which is later, so the two never overlap.
pub const STEP_DOWN: (u32, u32) = (4, 5);

/// Deadline of releasing the lease on shutdown.
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Deadline of one round (read, then write) when not leading.
const ROUND_TIMEOUT: Duration = super::bounded::REQUEST_TIMEOUT;

/// Election settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This candidate (the pod name in a cluster).
    pub identity: String,
    /// How long a lease holds without renewal.
    pub duration: Duration,
    /// How often to try to acquire or renew.
    pub renew_every: Duration,
}

impl Config {
    /// Defaults: a 15 s lease renewed every 4 s.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, identity: impl Into<String>) -> Self {
        Config {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(4),
        }
    }

    /// How long the leader leads after the start of a successful renewal.
    pub fn step_down_after(&self) -> Duration {
        self.duration * STEP_DOWN.0 / STEP_DOWN.1
    }
}

/// What a candidate does with the Lease it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No Lease yet: create it, holding it.
    Create,
    /// It holds the lease: renew it.
    Renew,
    /// Released or expired: take it over.
    TakeOver,
    /// Someone else holds a live lease.
    Follow {
        /// The holder.
        holder: String,
    },
}

/// The pure election rule. `unchanged_for` is how long, on this candidate's
/// own clock, the lease has been seen unchanged (same holder, `renewTime`
/// and `resourceVersion`); the timestamps inside the lease are never
/// compared with this candidate's clock.
pub fn decide(lease: Option<&LeaseSpec>, identity: &str, unchanged_for: Duration, default_duration: Duration) -> Step {
    let Some(spec) = lease else { return Step::Create };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == identity {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::TakeOver;
    }
    let duration = spec
        .lease_duration_seconds
        .map(|s| Duration::from_secs(u64::from(s.max(1).unsigned_abs())))
        .unwrap_or(default_duration);
    if unchanged_for > duration {
        Step::TakeOver
    } else {
        Step::Follow { holder: holder.to_owned() }
    }
}

/// What identifies one state of a lease written by someone else.
type LeaseKey = (String, Option<String>, Option<String>);

fn key(lease: &Lease) -> LeaseKey {
    let spec = lease.spec.as_ref();
    (
        spec.and_then(|s| s.holder_identity.clone()).unwrap_or_default(),
        spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0.to_string()),
        lease.metadata.resource_version.clone(),
    )
}

/// One candidate.
pub struct Elector {
    api: Api<Lease>,
    config: Config,
    /// Wall clock, only for the times written into the Lease (informative
    /// for humans; no decision reads them).
    clock: Clock,
    /// The lease as last written or read by us.
    last: Option<Lease>,
    /// Leader until then (monotonic): the start of the last successful
    /// renewal plus [`Config::step_down_after`].
    leading_until: Option<Instant>,
    /// The other holder's lease as last seen, and when (monotonic) we first
    /// saw it in that state.
    observed: Option<(LeaseKey, Instant)>,
}

impl Elector {
    /// A candidate for `config`'s Lease.
    pub fn new(client: Client, config: Config, clock: Clock) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        Elector { api, config, clock, last: None, leading_until: None, observed: None }
    }

    /// Leader until the step-down deadline of the last successful renewal.
    pub fn is_leader(&self) -> bool {
        self.leading_until.is_some_and(|t| Instant::now() < t)
    }

    /// When this round must end: while leading, the step-down deadline (a
    /// renewal that cannot finish by then is abandoned); otherwise the
    /// request timeout.
    fn round_deadline(&self, start: Instant) -> Instant {
        match self.leading_until {
            Some(t) if t > start => t,
            _ => start + ROUND_TIMEOUT,
        }
    }

    fn spec(&self, acquire: bool, transitions: i32) -> LeaseSpec {
        let t = MicroTime(self.clock.now());
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.duration.as_secs().max(1) as i32),
            acquire_time: if acquire {
                Some(t.clone())
            } else {
                self.last.as_ref().and_then(|l| l.spec.as_ref()?.acquire_time.clone())
            },
            renew_time: Some(t),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One round: read the Lease and create, renew or take it over if due.
    /// Returns whether this candidate leads afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool> {
        let start = Instant::now();
        let current = self.api.get_opt(&self.config.name).await?;
        let unchanged_for = match &current {
            Some(l) => {
                let k = key(l);
                match &self.observed {
                    Some((seen, at)) if *seen == k => start.saturating_duration_since(*at),
                    _ => {
                        self.observed = Some((k, start));
                        Duration::ZERO
                    }
                }
            }
            None => Duration::ZERO,
        };
        let step = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.config.identity,
            unchanged_for,
            self.config.duration,
        );
        let written = match step {
            Step::Create => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.config.name.clone()), ..Default::default() },
                    spec: Some(self.spec(true, 0)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Step::Renew | Step::TakeOver => {
                // Invariant: `decide` returns Renew or TakeOver only for a
                // lease with a spec, i.e. when `current` is `Some`.
                let mut lease = current.clone().expect("a lease to renew or take over was read");
                let transitions = lease.spec.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0);
                let take = step == Step::TakeOver;
                self.last = Some(lease.clone());
                lease.spec = Some(self.spec(take, if take { transitions + 1 } else { transitions }));
                // metadata.resourceVersion is the one just read: a concurrent
                // writer makes this a 409.
                self.api.replace(&self.config.name, &PostParams::default(), &lease).await
            }
            Step::Follow { .. } => {
                self.last = current;
                self.leading_until = None;
                return Ok(false);
            }
        };
        match written {
            Ok(lease) => {
                self.last = Some(lease);
                self.leading_until = Some(start + self.config.step_down_after());
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.leading_until = None;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the lease up by clearing `holderIdentity` (if still ours).
    pub async fn release(&mut self) -> Result<()> {
        if self.leading_until.take().is_none() {
            return Ok(());
        }
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else { return Ok(()) };
        if lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = Some(MicroTime(self.clock.now()));
        }
        match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Runs the election until `stop` turns true, publishing leadership on
/// `leader`; releases the lease on the way out (within [`RELEASE_TIMEOUT`]).
///
/// Leadership turns false at the step-down deadline even when the renewal
/// in flight never answers: the round is bounded by that deadline.
pub async fn run(mut elector: Elector, leader: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
    let every = elector.config.renew_every;
    let publish = |leads: bool| {
        leader.send_if_modified(|l| {
            let changed = *l != leads;
            *l = leads;
            changed
        });
    };
    loop {
        let start = Instant::now();
        let deadline = elector.round_deadline(start);
        tokio::select! {
            round = tokio::time::timeout_at(deadline, elector.try_acquire_or_renew()) => match round {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %error_chain(&e), lease = %elector.config.name, "lease renewal failed"),
                Err(_) => tracing::warn!(lease = %elector.config.name, after = ?deadline.saturating_duration_since(start), "lease renewal did not answer in time"),
            },
            _ = stop.wait_for(|s| *s) => break,
        }
        let leads = elector.is_leader();
        if !leads && *leader.borrow() {
            tracing::warn!(lease = %elector.config.name, identity = %elector.config.identity, "could not renew the lease in time: stepping down");
        }
        publish(leads);
        // Wake up at the step-down deadline at the latest, so leadership
        // is withdrawn on time even if renewals keep failing fast.
        let mut next = Instant::now() + every;
        if let Some(until) = elector.leading_until.filter(|_| leads) {
            next = next.min(until);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    leader.send_replace(false);
    match tokio::time::timeout(RELEASE_TIMEOUT, elector.release()).await {
        Ok(Ok(())) => {
            tracing::info!(lease = %elector.config.name, identity = %elector.config.identity, "lease released")
        }
        Ok(Err(e)) => tracing::warn!(error = %error_chain(&e), "releasing the lease failed"),
        Err(_) => {
            tracing::warn!(after = ?RELEASE_TIMEOUT, "releasing the lease did not answer in time; it expires on its own")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::Timestamp;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_700_000_000_000 + ms).unwrap()
    }

    fn spec(holder: Option<&str>, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(t(renewed))),
            ..Default::default()
        }
    }

    const D: Duration = Duration::from_secs(15);
    const S: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_missing_lease_is_created() {
        assert_eq!(decide(None, "a", S(0), D), Step::Create);
    }

    #[test]
    fn the_holder_renews_and_others_follow_a_live_lease() {
        assert_eq!(decide(Some(&spec(Some("a"), 0)), "a", S(1000), D), Step::Renew);
        assert_eq!(decide(Some(&spec(Some("a"), 0)), "b", S(15_000), D), Step::Follow { holder: "a".into() });
    }

    #[test]
    fn an_expired_or_released_lease_is_taken_over() {
        assert_eq!(decide(Some(&spec(Some("a"), 0)), "b", S(15_001), D), Step::TakeOver);
        assert_eq!(decide(Some(&spec(None, 0)), "b", S(0), D), Step::TakeOver);
        assert_eq!(decide(Some(&spec(Some(""), 0)), "b", S(0), D), Step::TakeOver);
        let no_times = LeaseSpec { holder_identity: Some("a".into()), ..Default::default() };
        assert_eq!(decide(Some(&no_times), "b", S(15_001), D), Step::TakeOver);
        assert_eq!(decide(Some(&no_times), "b", S(1), D), Step::Follow { holder: "a".into() });
    }

    #[test]
    fn the_holders_timestamps_are_never_compared_with_the_readers_clock() {
        // A renewTime two hours in the future (the holder's clock runs
        // ahead) or years in the past counts for nothing: only how long
        // this candidate has seen the lease unchanged.
        for renewed in [2 * 3_600_000, -365 * 24 * 3_600_000] {
            let s = spec(Some("a"), renewed);
            assert_eq!(decide(Some(&s), "b", S(14_999), D), Step::Follow { holder: "a".into() });
            assert_eq!(decide(Some(&s), "b", S(15_001), D), Step::TakeOver);
        }
    }

    #[test]
    fn the_leader_steps_down_before_followers_may_take_over() {
        let c = Config::new("ns", "l", "a");
        assert!(c.step_down_after() < c.duration);
    }
}
