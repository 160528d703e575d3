//! Watch streams: newline-delimited JSON watch events over a chunked body,
//! resumption from the bounded history, 410 Expired, bookmarks, timeouts.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{interval_at, sleep_until, Instant, MissedTickBehavior};

use crate::error::ApiError;
use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{EventType, StoredEvent};
use crate::Shared;

/// A response body fed by a channel; ends when the sender is dropped.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// Parsed watch request.
pub struct WatchParams {
    pub def: &'static ResourceDef,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub allow_bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
}

impl WatchParams {
    /// Storage-form object -> wire form if it is visible to this watch.
    fn visible(&self, obj: &Value) -> Option<Value> {
        if let Some(ns) = &self.namespace {
            if crate::store::namespace_of(obj) != ns {
                return None;
            }
        }
        let ext = self.def.to_external(obj);
        (self.labels.matches(&ext) && self.fields.matches(&ext)).then_some(ext)
    }

    /// Translate a stored event for this watcher, applying the selector
    /// transition rules of the apiserver's watch cache (an object that starts
    /// matching is ADDED, one that stops matching is DELETED).
    fn translate(&self, ev: &StoredEvent) -> Option<(&'static str, Value)> {
        if ev.bucket != self.def.bucket {
            return None;
        }
        if let Some(ns) = &self.namespace {
            if &ev.namespace != ns {
                return None;
            }
        }
        let cur = self.visible(&ev.object);
        let prev_matched = ev.prev.as_ref().is_some_and(|p| self.visible(p).is_some());
        match ev.etype {
            EventType::Added => cur.map(|o| ("ADDED", o)),
            EventType::Deleted => cur.map(|o| ("DELETED", o)),
            EventType::Modified => match (prev_matched, cur) {
                (true, Some(o)) => Some(("MODIFIED", o)),
                (false, Some(o)) => Some(("ADDED", o)),
                (true, None) => Some(("DELETED", self.def.to_external(&ev.object))),
                (false, None) => None,
            },
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": meta})
    }
}

fn line(etype: &str, object: Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": etype, "object": object})).unwrap_or_else(|_| b"{}".to_vec());
    v.push(b'\n');
    Bytes::from(v)
}

struct WatchGuard(Arc<Shared>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Start a watch; returns the streaming body. Invalid parameters are
/// reported as an error before the stream starts.
pub fn start(shared: Arc<Shared>, p: WatchParams) -> Result<ChannelBody, ApiError> {
    let requested: Option<u64> = match p.resource_version.as_deref() {
        None | Some("") => None,
        Some(s) => Some(s.parse().map_err(|_| {
            ApiError::bad_request(format!("resourceVersion: Invalid value: \"{s}\": must be a non-negative integer"))
        })?),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut initial: Vec<Bytes> = Vec::new();
    let mut min_rv = 0u64;
    let expired;
    let mut sub: broadcast::Receiver<Arc<StoredEvent>>;
    {
        let store = shared.lock_store();
        sub = store.tx.subscribe();
        let from_state = p.send_initial_events || matches!(requested, None | Some(0));
        expired = match requested {
            Some(n) if !from_state && n < store.compacted_rv() => Some(ApiError::expired(n, store.compacted_rv())),
            _ => None,
        };
        if expired.is_none() {
            if from_state {
                for obj in store.list(p.def, p.namespace.as_deref()) {
                    if let Some(ext) = p.visible(&obj) {
                        initial.push(line("ADDED", ext));
                    }
                }
                min_rv = store.resource_version();
                if p.send_initial_events && p.allow_bookmarks {
                    initial.push(line("BOOKMARK", p.bookmark(min_rv, true)));
                }
            } else if let Some(n) = requested {
                min_rv = n.max(store.resource_version());
                for ev in store.history_after(n) {
                    if let Some((t, o)) = p.translate(&ev) {
                        initial.push(line(t, o));
                    }
                }
            }
        }
    }
    // Subscribe before spawning so that a drop/shutdown signalled before the
    // task first runs still ends it.
    let mut drops = shared.drop_tx.subscribe();
    drops.borrow_and_update();
    let mut shutdown = shared.shutdown_tx.subscribe();
    shared.open_watches.fetch_add(1, Ordering::SeqCst);
    let guard = WatchGuard(shared.clone());
    tokio::spawn(async move {
        let _guard = guard;
        if let Some(err) = expired {
            let _ = tx.send(line("ERROR", err.to_status())).await;
            return;
        }
        for l in initial {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let shared = _guard.0.clone();
        if *shutdown.borrow_and_update() {
            return;
        }
        let period = shared.config.bookmark_interval.max(Duration::from_millis(10));
        let mut ticker = interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let deadline = p.timeout.map(|t| Instant::now() + t);
        loop {
            tokio::select! {
                r = sub.recv() => match r {
                    Ok(ev) => {
                        if ev.rv <= min_rv {
                            continue;
                        }
                        if let Some((t, o)) = p.translate(&ev) {
                            if tx.send(line(t, o)).await.is_err() {
                                return;
                            }
                        }
                    }
                    // A watcher that cannot keep up is closed, like the
                    // apiserver does; the client resumes from its last RV.
                    Err(_) => return,
                },
                _ = ticker.tick(), if p.allow_bookmarks => {
                    let mut out = Vec::new();
                    let rv = {
                        let store = shared.lock_store();
                        loop {
                            match sub.try_recv() {
                                Ok(ev) => {
                                    if ev.rv > min_rv {
                                        if let Some((t, o)) = p.translate(&ev) {
                                            out.push(line(t, o));
                                        }
                                    }
                                }
                                Err(broadcast::error::TryRecvError::Empty) => break,
                                Err(_) => return,
                            }
                        }
                        store.resource_version()
                    };
                    out.push(line("BOOKMARK", p.bookmark(rv, false)));
                    for l in out {
                        if tx.send(l).await.is_err() {
                            return;
                        }
                    }
                },
                _ = async { sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => return,
                _ = drops.changed() => return,
                _ = shutdown.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(ChannelBody { rx })
}
