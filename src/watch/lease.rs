//! Leader election through a `coordination.k8s.io/v1` Lease, so two replicas
//! never act at once.
//!
//! Every candidate reads the Lease every `renew_every`; [`decide`] says what
//! to do with it. Writes are replaces carrying the `resourceVersion` read, so
//! of two candidates taking an expired lease at once the apiserver lets one
//! win (the other gets 409 Conflict and stays a follower). A leader that
//! cannot renew steps down before its lease can expire for the others. On
//! shutdown the leader clears `holderIdentity`, so a successor takes over at
//! its next try instead of after the lease duration.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::watch;

use super::{Clock, Result, Timestamp};

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

/// The pure election rule.
pub fn decide(lease: Option<&LeaseSpec>, identity: &str, now: Timestamp, default_duration: Duration) -> Step {
    let Some(spec) = lease else { return Step::Create };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == identity {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::TakeOver;
    }
    let duration_ms =
        spec.lease_duration_seconds.map(|s| i64::from(s.max(1)) * 1000).unwrap_or(default_duration.as_millis() as i64);
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0.as_millisecond());
    match renewed {
        Some(r) if now.as_millisecond() <= r + duration_ms => Step::Follow { holder: holder.to_owned() },
        _ => Step::TakeOver,
    }
}

/// One candidate.
pub struct Elector {
    api: Api<Lease>,
    config: Config,
    clock: Clock,
    /// The lease as last written or read by us.
    last: Option<Lease>,
    /// When we last renewed successfully (ms since the epoch).
    renewed_at: Option<i64>,
}

impl Elector {
    /// A candidate for `config`'s Lease.
    pub fn new(client: Client, config: Config, clock: Clock) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        Elector { api, config, clock, last: None, renewed_at: None }
    }

    /// Leader until the lease would expire since the last successful renewal.
    pub fn is_leader(&self) -> bool {
        let Some(at) = self.renewed_at else { return false };
        // Step down a little before the others may take over.
        let margin = (self.config.duration.as_millis() as i64) * 4 / 5;
        self.clock.now().as_millisecond() < at + margin
    }

    fn spec(&self, now: Timestamp, acquire: bool, transitions: i32) -> LeaseSpec {
        let t = MicroTime(now);
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
        let current = self.api.get_opt(&self.config.name).await?;
        let now = self.clock.now();
        let step =
            decide(current.as_ref().and_then(|l| l.spec.as_ref()), &self.config.identity, now, self.config.duration);
        let written = match step {
            Step::Create => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.config.name.clone()), ..Default::default() },
                    spec: Some(self.spec(now, true, 0)),
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
                lease.spec = Some(self.spec(now, take, if take { transitions + 1 } else { transitions }));
                // metadata.resourceVersion is the one just read: a concurrent
                // writer makes this a 409.
                self.api.replace(&self.config.name, &PostParams::default(), &lease).await
            }
            Step::Follow { .. } => {
                self.last = current;
                self.renewed_at = None;
                return Ok(false);
            }
        };
        match written {
            Ok(lease) => {
                self.last = Some(lease);
                self.renewed_at = Some(now.as_millisecond());
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.renewed_at = None;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the lease up by clearing `holderIdentity` (if still ours).
    pub async fn release(&mut self) -> Result<()> {
        if self.renewed_at.take().is_none() {
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
/// `leader`; releases the lease on the way out.
pub async fn run(mut elector: Elector, leader: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
    let every = elector.config.renew_every;
    loop {
        match elector.try_acquire_or_renew().await {
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %error_chain(&e), lease = %elector.config.name, "lease renewal failed"),
        }
        let leads = elector.is_leader();
        leader.send_if_modified(|l| {
            let changed = *l != leads;
            *l = leads;
            changed
        });
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    leader.send_replace(false);
    if let Err(e) = elector.release().await {
        tracing::warn!(error = %error_chain(&e), "releasing the lease failed");
    } else {
        tracing::info!(lease = %elector.config.name, identity = %elector.config.identity, "lease released");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_missing_lease_is_created() {
        assert_eq!(decide(None, "a", t(0), D), Step::Create);
    }

    #[test]
    fn the_holder_renews_and_others_follow_a_live_lease() {
        assert_eq!(decide(Some(&spec(Some("a"), 0)), "a", t(1000), D), Step::Renew);
        assert_eq!(decide(Some(&spec(Some("a"), 0)), "b", t(15_000), D), Step::Follow { holder: "a".into() });
    }

    #[test]
    fn an_expired_or_released_lease_is_taken_over() {
        assert_eq!(decide(Some(&spec(Some("a"), 0)), "b", t(15_001), D), Step::TakeOver);
        assert_eq!(decide(Some(&spec(None, 0)), "b", t(1), D), Step::TakeOver);
        assert_eq!(decide(Some(&spec(Some(""), 0)), "b", t(1), D), Step::TakeOver);
        assert_eq!(
            decide(Some(&LeaseSpec { holder_identity: Some("a".into()), ..Default::default() }), "b", t(0), D),
            Step::TakeOver
        );
    }
}
