//! Reaching the cluster: the kube client ([`client`]) and the fresh lists
//! a pass decides on ([`list_cluster`]), each call bounded and retried
//! ([`super::retry`]).

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;

use super::bounded::REQUEST_TIMEOUT;
use super::context::Config;
use super::retry;
use super::{agent_selector, namespace_selector, Error, Result};

/// Server-side timeout of a watch request; the watch is then re-opened (and
/// re-listed on 410). A read silent for longer than this plus
/// [`REQUEST_TIMEOUT`] fails the stream, which then re-lists.
pub const WATCH_TIMEOUT_SECS: u32 = 60;

/// How to reach the cluster.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// A kubeconfig file; none: `KUBECONFIG`, `~/.kube/config`, then the
    /// in-cluster ServiceAccount (`kube::Config::infer`).
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig other than the current one.
    pub context: Option<String>,
}

/// A client for `cluster`.
pub async fn client(cluster: &Cluster) -> Result<Client> {
    let boxed = |e: Box<dyn std::error::Error + Send + Sync>| Error::Config(e);
    let options = KubeConfigOptions { context: cluster.context.clone(), ..Default::default() };
    let config = match (&cluster.kubeconfig, &cluster.context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| boxed(Box::new(e)))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await.map_err(|e| boxed(Box::new(e)))?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options).await.map_err(|e| boxed(Box::new(e)))?,
        (None, None) => kube::Config::infer().await.map_err(|e| boxed(Box::new(e)))?,
    };
    let mut config = config;
    // Every call is bounded: connecting, each read (a watch is closed by the
    // server after WATCH_TIMEOUT, so a read silent for longer is a hang).
    config.connect_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    config.read_timeout = Some(Duration::from_secs(u64::from(WATCH_TIMEOUT_SECS)) + REQUEST_TIMEOUT);
    // kube's built-in retry honours `Retry-After` uncapped (up to 1000 s)
    // and retries every method alike; the watcher retries each call itself,
    // only where repeating it is safe, within the call's deadline (`retry`).
    config.default_retry = false;
    Client::try_from(config).map_err(Error::Kube)
}

/// The managed slot namespaces and the agent Jobs, listed now (each list
/// retried within [`REQUEST_TIMEOUT`]).
pub(super) async fn list_cluster(client: &Client, config: &Config) -> Result<(Vec<Namespace>, Vec<Job>)> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let jobs: Api<Job> = Api::all(client.clone());
    let ns_lp = ListParams::default().labels(&namespace_selector(&config.envs));
    let job_lp = ListParams::default().labels(&agent_selector());
    let h = &config.health;
    let ns_list = retry::call(h, "listing namespaces", || nss.list(&ns_lp)).await?;
    let job_list = retry::call(h, "listing agent Jobs", || jobs.list(&job_lp)).await?;
    Ok((ns_list.items, job_list.items))
}
