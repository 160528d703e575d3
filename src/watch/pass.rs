//! The pass abstraction: a periodic piece of the watcher's work (the TTL
//! pass, the readiness pass) that the loop runs on its own task, while
//! leading, once the watch streams have listed — so a pass waiting on git
//! never delays another pass or the recording of agent phases. `--once`
//! runs each registered pass once, in order.
//!
//! Adding a pass is one file implementing [`Pass`] plus one entry in
//! [`super::PASSES`] (next to its `mod` line).

use std::time::Duration;

use futures::future::BoxFuture;
use kube::Client;

use super::context::{Config, Gate, Report};
use super::Result;

/// What a pass runs with.
pub(crate) struct Ctx<'a> {
    /// The API client.
    pub client: &'a Client,
    /// The watcher's configuration.
    pub config: &'a Config,
    /// Checked right before every write.
    pub gate: &'a Gate,
}

/// A periodic pass of the watcher.
pub(crate) trait Pass: Sync {
    /// Its name in logs and metrics (`ttl`, `readiness`).
    fn name(&self) -> &'static str;

    /// How often the long-running watcher runs it.
    fn period(&self, config: &Config) -> Duration;

    /// One run: its findings go to `report`; an error fails the pass (the
    /// next one retries).
    fn run<'a>(&'a self, ctx: &'a Ctx<'a>, report: &'a mut Report) -> BoxFuture<'a, Result<()>>;
}
