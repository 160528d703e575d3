//! An in-process emulator of the Kubernetes API server for tests.
//!
//! It speaks the real REST/JSON wire format (lists, watches with
//! newline-delimited events, `Status` errors, patches) for a small set of
//! resources — namespaces, batch/v1 jobs, core/v1 and events.k8s.io/v1
//! events, coordination.k8s.io/v1 leases, pods and configmaps — over plain
//! HTTP on `127.0.0.1`, so real clients (kube-rs, kubectl) can be pointed at
//! it with a kubeconfig. See the crate README for what is and is not
//! emulated.
//!
//! ```no_run
//! # async fn demo() {
//! let emu = kube_emulator::Emulator::start().await;
//! emu.write_kubeconfig("/tmp/kubeconfig").unwrap();
//! emu.create(serde_json::json!({
//!     "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}
//! })).unwrap();
//! emu.shutdown().await;
//! # }
//! ```

// `ApiError` carries a full Kubernetes `Status`; it only travels on the
// error path of a test server, where its size costs nothing.
#![allow(clippy::result_large_err)]

mod error;
mod http;
mod patch;
mod resources;
mod selector;
mod store;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch as tokio_watch, Notify};
use tokio::task::JoinHandle;

pub use error::ApiError;
pub use patch::{json_patch, merge_patch};
pub use resources::{ResourceDef, RESOURCES};
pub use selector::{FieldSelector, LabelRequirement, LabelSelector};
pub use store::now_rfc3339;

use store::{DeleteOutcome, Preconditions, Store, Subresource, WriteOpts};

/// Tunables of an emulator instance.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// How long a deleted namespace stays `Terminating` before the emulated
    /// namespace controller starts deleting its content and finalizes it.
    /// Default: zero (on the controller's next tick, a few milliseconds).
    pub namespace_finalize_delay: Duration,
    /// Interval of `BOOKMARK` events on watches with
    /// `allowWatchBookmarks=true`. Default: 1 s (the apiserver uses ~1 min).
    pub bookmark_interval: Duration,
    /// Number of write events retained for watch resumption; watches from
    /// an older resourceVersion get `410 Expired`. Default: 1000.
    pub history_limit: usize,
    /// Create `default`, `kube-system`, `kube-public` and `kube-node-lease`
    /// at start, like a fresh cluster. Default: true.
    pub default_namespaces: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            namespace_finalize_delay: Duration::ZERO,
            bookmark_interval: Duration::from_secs(1),
            history_limit: 1000,
            default_namespaces: true,
        }
    }
}

/// One served HTTP request, as recorded in the request log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `POST`, ...
    pub method: String,
    /// URL path, e.g. `/apis/batch/v1/namespaces/ns/jobs`.
    pub path: String,
    /// Raw (still percent-encoded) query string, without `?`.
    pub query: String,
    /// Decoded query parameters in order.
    pub params: Vec<(String, String)>,
    /// `Content-Type` request header.
    pub content_type: Option<String>,
    /// HTTP status code of the response (200 for a watch that started).
    pub status: u16,
    /// Whether this was a watch request.
    pub watch: bool,
}

impl RequestRecord {
    /// Value of a decoded query parameter (last occurrence).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

struct Fault {
    method: String,
    prefix: String,
    effect: FaultEffect,
    /// Fires on every matching request until [`Emulator::clear_faults`].
    sticky: bool,
}

/// What an injected fault does to the request it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultEffect {
    /// Answer with this status code and a `Status` body.
    Error(u16),
    /// Answer with this status code and a `Retry-After: <seconds>` header.
    RetryAfter(u16, u64),
    /// Never answer (the connection stays open until the emulator stops).
    Hang,
    /// Close the connection without answering and without serving the
    /// request (what a client sees of a connection reset before the server
    /// read the request).
    Reset,
    /// Serve the request (its writes persist), then close the connection
    /// without sending the answer: the write landed but the client cannot
    /// tell (a reset after the server acted).
    ResetAfterServing,
}

pub(crate) struct Shared {
    store: Mutex<Store>,
    config: EmulatorConfig,
    requests: Mutex<Vec<RequestRecord>>,
    faults: Mutex<Vec<Fault>>,
    drop_tx: tokio_watch::Sender<u64>,
    shutdown_tx: tokio_watch::Sender<bool>,
    open_watches: AtomicUsize,
    changed: Notify,
    addr: SocketAddr,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn lock_store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub(crate) fn take_fault(&self, method: &str, path: &str) -> Option<FaultEffect> {
        let mut faults = lock(&self.faults);
        let i = faults
            .iter()
            .position(|f| (f.method == "*" || f.method.eq_ignore_ascii_case(method)) && path.starts_with(&f.prefix))?;
        if faults[i].sticky {
            return Some(faults[i].effect.clone());
        }
        Some(faults.remove(i).effect)
    }

    fn log_request(&self, r: RequestRecord) {
        lock(&self.requests).push(r);
    }
}

/// A running emulator. Dropping it stops the server (like [`shutdown`]).
///
/// [`shutdown`]: Emulator::shutdown
pub struct Emulator {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

fn unknown_resource(kind: &str) -> ApiError {
    ApiError::new(404, "NotFound", format!("the server doesn't have a resource type \"{kind}\""))
}

fn resolve(kind: &str) -> Result<&'static ResourceDef, ApiError> {
    resources::resolve(kind).ok_or_else(|| unknown_resource(kind))
}

impl Emulator {
    /// Start with the default configuration on `127.0.0.1:<random port>`.
    ///
    /// # Panics
    /// If no local port can be bound.
    pub async fn start() -> Emulator {
        Self::start_with(EmulatorConfig::default()).await
    }

    /// Start with a custom configuration.
    ///
    /// # Panics
    /// If no local port can be bound.
    pub async fn start_with(config: EmulatorConfig) -> Emulator {
        Self::try_start_with(config).await.expect("kube-emulator: bind 127.0.0.1:0")
    }

    /// Start with a custom configuration, reporting bind errors.
    pub async fn try_start_with(config: EmulatorConfig) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (drop_tx, _) = tokio_watch::channel(0u64);
        let (shutdown_tx, _) = tokio_watch::channel(false);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(config.history_limit)),
            config,
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            drop_tx,
            shutdown_tx,
            open_watches: AtomicUsize::new(0),
            changed: Notify::new(),
            addr,
        });
        if shared.config.default_namespaces {
            let mut store = shared.lock_store();
            for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
                let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                store.create(&RESOURCES[0], None, obj, WriteOpts::default()).expect("seed namespace");
            }
        }
        // Subscribe before spawning so a shutdown that happens before the
        // tasks first run is not missed.
        let server = tokio::spawn(serve(listener, shared.clone(), shared.shutdown_tx.subscribe()));
        let controller = tokio::spawn(namespace_controller(shared.clone(), shared.shutdown_tx.subscribe()));
        Ok(Emulator { shared, tasks: vec![server, controller] })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A kubeconfig (YAML) pointing at this emulator: cluster, user with a
    /// dummy bearer token, context `kube-emulator` (namespace `default`) and
    /// `current-context`.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: kube-emulator
  cluster:
    server: {url}
contexts:
- name: kube-emulator
  context:
    cluster: kube-emulator
    user: kube-emulator
    namespace: default
current-context: kube-emulator
users:
- name: kube-emulator
  user:
    token: kube-emulator-token
preferences: {{}}
",
            url = self.url()
        )
    }

    /// Write [`kubeconfig_yaml`](Self::kubeconfig_yaml) to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    fn after_write(&self) {
        self.shared.changed.notify_one();
    }

    /// Create an object (wire form, with `apiVersion`/`kind`), through the
    /// same store as the API (emits ADDED). Unlike an API create, `.status`
    /// is kept, so tests can seed objects in any state.
    pub fn create(&self, obj: Value) -> Result<Value, ApiError> {
        let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let def = resources::by_type(av, kind).ok_or_else(|| unknown_resource(&format!("{av}/{kind}")))?;
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string);
        let ns = if def.namespaced { Some(ns.unwrap_or_else(|| "default".to_string())) } else { None };
        let internal = def.to_internal(obj);
        let out = self.shared.lock_store().create(def, ns.as_deref(), internal, WriteOpts::default())?;
        self.after_write();
        Ok(def.to_external(&out))
    }

    /// Get an object in wire form. `kind` is a kind (`Job`), plural
    /// (`jobs`), short name (`ns`) or qualified plural
    /// (`events.events.k8s.io`). `ns` is ignored for cluster-scoped kinds.
    pub fn get(&self, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let def = resources::resolve(kind)?;
        let obj = self.shared.lock_store().get(def, ns, name).ok()?;
        Some(def.to_external(&obj))
    }

    /// List objects in wire form (`ns: None` = all namespaces).
    pub fn list(&self, kind: &str, ns: Option<&str>) -> Vec<Value> {
        let Some(def) = resources::resolve(kind) else {
            return Vec::new();
        };
        let ns = if def.namespaced { ns } else { None };
        self.shared.lock_store().list(def, ns).iter().map(|o| def.to_external(o)).collect()
    }

    /// Replace a whole object (including `.status`). A non-empty
    /// `metadata.resourceVersion` is checked like on the API (409 if stale).
    pub fn replace(&self, obj: Value) -> Result<Value, ApiError> {
        let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let def = resources::by_type(av, kind).ok_or_else(|| unknown_resource(&format!("{av}/{kind}")))?;
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string);
        let internal = def.to_internal(obj);
        let out = self.shared.lock_store().update(
            def,
            ns.as_deref(),
            &name,
            internal,
            Subresource::Main,
            WriteOpts::default(),
        )?;
        self.after_write();
        Ok(def.to_external(&out))
    }

    /// Apply a JSON merge patch (RFC 7386) to an object, `.status` included
    /// (emits MODIFIED, or DELETED when it removes the last finalizer of an
    /// object being deleted).
    pub fn patch(&self, kind: &str, ns: Option<&str>, name: &str, merge: Value) -> Result<Value, ApiError> {
        let def = resolve(kind)?;
        let mut store = self.shared.lock_store();
        let mut ext = def.to_external(&store.get(def, ns, name)?);
        merge_patch(&mut ext, &merge);
        let internal = def.to_internal(ext);
        let out = store.update(def, ns, name, internal, Subresource::Main, WriteOpts::default())?;
        drop(store);
        self.after_write();
        Ok(def.to_external(&out))
    }

    /// Replace `.status` of an object (like a controller's `/status` update).
    pub fn update_status(&self, kind: &str, ns: Option<&str>, name: &str, status: Value) -> Result<Value, ApiError> {
        let def = resolve(kind)?;
        let mut store = self.shared.lock_store();
        let mut obj = store.get(def, ns, name)?;
        obj["status"] = status;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        let out = store.update(def, ns, name, obj, Subresource::Status, WriteOpts::default())?;
        drop(store);
        self.after_write();
        Ok(def.to_external(&out))
    }

    /// Delete an object with the API's semantics (finalizers respected,
    /// namespaces go through Terminating). Returns the last state.
    pub fn delete(&self, kind: &str, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let def = resolve(kind)?;
        let out = self.shared.lock_store().delete(def, ns, name, &Preconditions::default(), false)?;
        self.after_write();
        Ok(match out {
            DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o) => def.to_external(&o),
        })
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock_store().resource_version()
    }

    /// Close every open watch stream (cleanly, as when the apiserver ends a
    /// watch). Clients are expected to re-watch from their last version.
    pub fn drop_watches(&self) {
        self.shared.drop_tx.send_modify(|g| *g += 1);
    }

    /// Forget the event history: a later watch from a resourceVersion older
    /// than the current one gets an `ERROR` event with a 410 `Expired`
    /// Status (a watch from the current version still works).
    pub fn compact(&self) {
        self.shared.lock_store().compact();
    }

    /// Force every client to relist: advance the resourceVersion, compact,
    /// and close all watches, so that any re-watch from a previously seen
    /// version gets 410 Expired.
    pub fn expire_watches(&self) {
        self.shared.lock_store().bump_and_compact();
        self.drop_watches();
    }

    /// Make the next request whose method matches (`"*"` = any) and whose
    /// path starts with `path_prefix` fail with `status_code` and a `Status`
    /// body. Calls queue up; each fault fires once.
    pub fn fail_next(&self, method: &str, path_prefix: &str, status_code: u16) {
        self.inject(method, path_prefix, FaultEffect::Error(status_code), false);
    }

    /// Inject `effect` for the next matching request (`sticky`: every
    /// matching request until [`clear_faults`](Emulator::clear_faults)).
    /// Watch requests match too; a sticky fault on a watch path also drops
    /// the open watches, so clients must re-list (and fail) at once.
    pub fn inject(&self, method: &str, path_prefix: &str, effect: FaultEffect, sticky: bool) {
        lock(&self.shared.faults).push(Fault {
            method: method.to_string(),
            prefix: path_prefix.to_string(),
            effect,
            sticky,
        });
        if sticky {
            self.drop_watches();
        }
    }

    /// Every matching request hangs (no answer) until [`clear_faults`](Emulator::clear_faults).
    pub fn hang_always(&self, method: &str, path_prefix: &str) {
        self.inject(method, path_prefix, FaultEffect::Hang, true);
    }

    /// Every matching request fails with `status_code` until [`clear_faults`](Emulator::clear_faults).
    pub fn fail_always(&self, method: &str, path_prefix: &str, status_code: u16) {
        self.inject(method, path_prefix, FaultEffect::Error(status_code), true);
    }

    /// Remove every injected fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// All requests served so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.requests).clone()
    }

    /// Clear the request log.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Number of watch streams currently open.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// Wait until `cond` holds (polled every 10 ms) or `timeout` passes;
    /// returns whether it held.
    pub async fn wait_until(&self, timeout: Duration, mut cond: impl FnMut(&Emulator) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if cond(self) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stop the server, all connections and watches.
    pub async fn shutdown(mut self) {
        self.stop();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    fn stop(&self) {
        self.shared.shutdown_tx.send_replace(true);
        self.shared.changed.notify_one();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: tokio_watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let mut shutdown = shared.shutdown_tx.subscribe();
                    if *shutdown.borrow_and_update() {
                        return;
                    }
                    let svc_shared = shared.clone();
                    let svc = service_fn(move |req| http::handle(svc_shared.clone(), req));
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = shutdown.changed() => {}
                    }
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// The emulated namespace controller: empties terminating namespaces after
/// the configured delay and removes the `kubernetes` finalizer.
async fn namespace_controller(shared: Arc<Shared>, mut shutdown: tokio_watch::Receiver<bool>) {
    let delay = shared.config.namespace_finalize_delay;
    loop {
        tokio::select! {
            _ = shared.changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow_and_update() {
            return;
        }
        let mut store = shared.lock_store();
        let due: Vec<String> =
            store.terminating.iter().filter(|(_, since)| since.elapsed() >= delay).map(|(n, _)| n.clone()).collect();
        for ns in due {
            store.namespace_controller_step(&ns);
        }
    }
}
