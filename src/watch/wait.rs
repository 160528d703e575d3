//! `codex-k8s status --wait`: poll one slot until every stage is ready and
//! its agent Job started, a stage failed, or the deadline passed. The
//! stages come from the slot's tree in git, their state from the cluster,
//! judged as the watcher judges them (`ready`); it does not need the
//! watcher to run.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};
use kube::Client;
use serde::Serialize;

use super::bounded::{blocking, error_chain, within, FETCH_TIMEOUT, REQUEST_TIMEOUT};
use super::metrics::Health;
use super::ready::{self, SlotTree, StageState, State};
use super::ready_pass::{kinds, observe};
use super::source::Source;
use super::{stages, Error, Result};

/// What to wait for.
#[derive(Debug, Clone)]
pub struct Wait {
    /// The slot's environment (a slot environment of the inventory).
    pub env: String,
    /// The slot's name, a DNS label such as `pr-42`.
    pub slot: String,
    /// The revision holding the rendered tree (a branch such as `rendered`,
    /// `origin/rendered`); none: the checked-out branch.
    pub rev: Option<String>,
    /// Give up after this long.
    pub timeout: Duration,
    /// Time between two looks (bounded: at most 5 s is sensible).
    pub poll: Duration,
    /// The environment serves TLS (`tls` in the inventory): `https://` URLs.
    pub tls: bool,
}

/// How the wait ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Outcome {
    /// Every stage ready, the agent Job started.
    Ready,
    /// A stage failed.
    Failed {
        /// The stage directory.
        stage: String,
        /// `Kind/name`.
        object: String,
        /// How.
        why: String,
    },
    /// The deadline passed; the first stage not ready and what it waits for.
    TimedOut {
        /// The stage directory.
        stage: String,
        /// `Kind/name`.
        object: String,
        /// What is missing.
        why: String,
    },
}

/// The slot at the end of the wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The slot's environment (a slot environment of the inventory).
    pub env: String,
    /// The slot's name, a DNS label such as `pr-42`.
    pub slot: String,
    /// Namespace.
    pub namespace: String,
    /// The rendering judged.
    pub rendering: String,
    /// The slot's URL (`target.json` host, else its Ingress), if it has one.
    pub url: Option<String>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Each stage's own state at the end.
    pub stages: Vec<StageState>,
}

/// Waits for `w`; `progress` gets one line each time what is waited for changes.
pub async fn wait(client: &Client, src: &Source, w: &Wait, mut progress: impl FnMut(&str)) -> Result<Report> {
    let started = tokio::time::Instant::now();
    let mut last = String::new();
    loop {
        let tree = read_tree(src, w).await?;
        let (states, note) = match look(client, &tree).await {
            Ok(states) => (states, None),
            Err(e) => (Vec::new(), Some(format!("cannot read the cluster: {}", error_chain(&e)))),
        };
        let failed = states.iter().find_map(|s| match &s.state {
            State::Failed { object, why } => Some((s.stage.clone(), object.clone(), why.clone())),
            _ => None,
        });
        let ready = !states.is_empty() && ready::ready_prefix(&states).count() == states.len();
        let outcome = if let Some((stage, object, why)) = failed {
            Some(Outcome::Failed { stage, object, why })
        } else if ready || tree.stages.is_empty() && note.is_none() {
            Some(Outcome::Ready)
        } else if started.elapsed() >= w.timeout {
            let (stage, object, why) = first_waiting(&tree, &states, note.as_deref());
            Some(Outcome::TimedOut { stage, object, why })
        } else {
            None
        };
        if let Some(outcome) = outcome {
            let url = url(client, &tree, w.tls).await;
            return Ok(Report {
                env: tree.env.clone(),
                slot: tree.slot.clone(),
                namespace: tree.namespace.clone(),
                rendering: tree.rendering.clone(),
                url,
                outcome,
                stages: states,
            });
        }
        let (stage, object, why) = first_waiting(&tree, &states, note.as_deref());
        let line = format!("waiting for {stage}: {object}: {why}");
        if line != last {
            progress(&line);
            last = line;
        }
        let left = w.timeout.saturating_sub(started.elapsed());
        tokio::time::sleep(w.poll.min(left).max(Duration::from_millis(10))).await;
    }
}

/// The slot's tree, re-read on every look (a render may land meanwhile).
async fn read_tree(src: &Source, w: &Wait) -> Result<SlotTree> {
    let (s, rev) = (src.clone(), w.rev.clone());
    let key = (w.env.clone(), w.slot.clone());
    let k = key.clone();
    let mut trees =
        within("reading the slot from git", FETCH_TIMEOUT, blocking(move || stages::read(&s, rev.as_deref(), &[k])))
            .await?;
    let at = w.rev.as_deref().map_or_else(|| "the checked-out branch".to_owned(), |r| format!("`{r}`"));
    match trees.remove(&key) {
        Some(Ok(tree)) => Ok(tree),
        Some(Err(why)) => Err(Error::Slot(format!("slot {}/{} cannot be read at {at}: {why}", w.env, w.slot))),
        None => Err(Error::Slot(format!(
            "slot {}/{} is not in {}/ at {at}: render it first, or name the branch holding the rendered tree with --branch",
            w.env, w.slot, src.prefix
        ))),
    }
}

/// Each stage's state now; all waiting on the Namespace while it is absent.
async fn look(client: &Client, tree: &SlotTree) -> Result<Vec<StageState>> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns =
        within("reading the namespace", REQUEST_TIMEOUT, async { Ok(nss.get_opt(&tree.namespace).await?) }).await?;
    if ns.is_none() {
        let why = "not in the cluster yet".to_owned();
        let object = format!("Namespace/{}", tree.namespace);
        let waiting = State::Waiting { object, why };
        return Ok(tree.stages.iter().map(|s| StageState { stage: s.dir.clone(), state: waiting.clone() }).collect());
    }
    let observed = observe(client, &Health::default(), &tree.namespace, &kinds(tree)).await?;
    Ok(ready::evaluate(tree, &observed))
}

fn first_waiting(tree: &SlotTree, states: &[StageState], note: Option<&str>) -> (String, String, String) {
    let first = tree.stages.first().map(|s| s.dir.clone()).unwrap_or_default();
    if let Some(note) = note {
        return (first, format!("Namespace/{}", tree.namespace), note.to_owned());
    }
    states
        .iter()
        .find_map(|s| match &s.state {
            State::Waiting { object, why } => Some((s.stage.clone(), object.clone(), why.clone())),
            _ => None,
        })
        .unwrap_or((first, format!("Namespace/{}", tree.namespace), "unknown".into()))
}

/// `https://<host>/` (or `http://` without TLS): the host from `target.json`,
/// else the slot's first Ingress rule; TLS when the environment declares it
/// or the Ingress lists the host under `tls`.
async fn url(client: &Client, tree: &SlotTree, tls: bool) -> Option<String> {
    let ing: Api<Ingress> = Api::namespaced(client.clone(), &tree.namespace);
    let listed = within("listing ingresses", REQUEST_TIMEOUT, async { Ok(ing.list(&ListParams::default()).await?) });
    let ingresses = listed.await.map(|l| l.items).unwrap_or_default();
    let rule_host = ingresses.iter().find_map(|i| i.spec.as_ref()?.rules.as_ref()?.iter().find_map(|r| r.host.clone()));
    let host = tree.host.clone().or(rule_host)?;
    let ingress_tls = ingresses.iter().any(|i| {
        i.spec
            .as_ref()
            .and_then(|s| s.tls.as_ref())
            .into_iter()
            .flatten()
            .any(|t| t.hosts.iter().flatten().any(|h| *h == host))
    });
    let scheme = if tls || ingress_tls { "https" } else { "http" };
    Some(format!("{scheme}://{host}/"))
}
