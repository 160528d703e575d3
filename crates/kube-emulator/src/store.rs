//! The object store: storage-form objects per bucket, the global resource
//! version counter, a bounded event history for watch resumption, and the
//! write semantics of the apiserver registry (create / update / delete /
//! finalizers / namespace lifecycle).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::resources::{set_type_meta, ResourceDef, RESOURCES};

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One committed write, as kept in the history and broadcast to watchers.
#[derive(Debug)]
pub struct StoredEvent {
    pub rv: u64,
    pub bucket: &'static str,
    pub namespace: String,
    pub etype: EventType,
    /// Storage form of the object after the write (for DELETED: the last
    /// state, with the deletion's resourceVersion).
    pub object: Value,
    /// Storage form before the write (MODIFIED / DELETED).
    pub prev: Option<Value>,
}

/// Which part of an object an update targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Main,
    Status,
    /// `namespaces/{name}/finalize`: only `spec.finalizers` changes.
    Finalize,
}

/// Result of a delete.
#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    /// Removed from storage; carries the last state.
    Deleted(Value),
    /// Marked with `deletionTimestamp`, waiting for finalizers.
    Pending(Value),
}

/// How a write was issued.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOpts {
    /// Through the REST API: registry strategies apply (e.g. `.status` is
    /// reset on create / ignored on main-resource updates for resources with
    /// a status subresource). The test-control API writes everything as is.
    pub from_api: bool,
    /// `dryRun=All`: validate and compute the result, do not persist.
    pub dry_run: bool,
}

/// Preconditions of a delete (`DeleteOptions.preconditions`).
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

type Key = (String, String);

pub struct Store {
    rv: u64,
    buckets: BTreeMap<&'static str, BTreeMap<Key, Value>>,
    history: VecDeque<Arc<StoredEvent>>,
    history_limit: usize,
    /// Watches must start at a resourceVersion >= this.
    compacted_rv: u64,
    pub tx: broadcast::Sender<Arc<StoredEvent>>,
    rng: u64,
    /// Namespaces marked for deletion, with the time they were marked.
    pub terminating: BTreeMap<String, Instant>,
}

/// RFC 3339 timestamp, second precision, UTC (`metav1.Time`).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil_from_days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

/// Name of an object (`metadata.name`), or "".
pub fn name_of(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

/// Namespace of an object (`metadata.namespace`), or "".
pub fn namespace_of(obj: &Value) -> &str {
    meta_str(obj, "namespace").unwrap_or("")
}

fn has_finalizers(obj: &Value) -> bool {
    meta(obj).and_then(|m| m.get("finalizers")).and_then(Value::as_array).is_some_and(|a| !a.is_empty())
}

fn ns_spec_finalizers_empty(obj: &Value) -> bool {
    obj.pointer("/spec/finalizers").and_then(Value::as_array).is_none_or(|a| a.is_empty())
}

fn is_deleting(obj: &Value) -> bool {
    meta_str(obj, "deletionTimestamp").is_some()
}

/// Marked for deletion and nothing holds it any more.
fn deletable(def: &ResourceDef, obj: &Value) -> bool {
    is_deleting(obj) && !has_finalizers(obj) && (def.bucket != "namespaces" || ns_spec_finalizers_empty(obj))
}

fn valid_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn valid_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(valid_dns_label)
}

/// Object without `metadata.resourceVersion`, for no-op detection.
fn without_rv(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    o
}

/// Everything except metadata and status (what bumps `generation`).
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Value::Object(m) = &mut o {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let seed =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0x9e37_79b9_7f4a_7c15);
        let mut buckets = BTreeMap::new();
        for d in RESOURCES {
            buckets.entry(d.bucket).or_insert_with(BTreeMap::new);
        }
        Self {
            rv: 1,
            buckets,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted_rv: 1,
            tx,
            rng: seed | 1,
            terminating: BTreeMap::new(),
        }
    }

    /// Current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch may still start from.
    pub fn compacted_rv(&self) -> u64 {
        self.compacted_rv
    }

    /// Forget the history: watches from an older resourceVersion get 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_rv = self.rv;
    }

    /// Advance the resourceVersion without writing an object (like writes to
    /// other resources in etcd), then compact.
    pub fn bump_and_compact(&mut self) {
        self.rv += 1;
        self.compact();
    }

    /// History events with rv > `after`, oldest first.
    pub fn history_after(&self, after: u64) -> Vec<Arc<StoredEvent>> {
        self.history.iter().filter(|e| e.rv > after).cloned().collect()
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn new_uid(&mut self) -> String {
        let a = self.next_random();
        let b = self.next_random();
        let hex = format!("{a:016x}{b:016x}");
        format!("{}-{}-4{}-a{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
    }

    fn random_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..5).map(|_| ALPHABET[(self.next_random() % ALPHABET.len() as u64) as usize] as char).collect()
    }

    fn bucket(&self, def: &ResourceDef) -> &BTreeMap<Key, Value> {
        &self.buckets[def.bucket]
    }

    fn bucket_mut(&mut self, def: &ResourceDef) -> &mut BTreeMap<Key, Value> {
        self.buckets.get_mut(def.bucket).expect("bucket exists")
    }

    fn key(def: &ResourceDef, ns: Option<&str>, name: &str) -> Key {
        let ns = if def.namespaced { ns.unwrap_or("") } else { "" };
        (ns.to_string(), name.to_string())
    }

    fn record(&mut self, def: &ResourceDef, etype: EventType, object: Value, prev: Option<Value>) {
        let ev = Arc::new(StoredEvent {
            rv: self.rv,
            bucket: def.bucket,
            namespace: namespace_of(&object).to_string(),
            etype,
            object,
            prev,
        });
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted_rv = old.rv;
            }
        }
        // No receivers is fine.
        let _ = self.tx.send(ev);
    }

    /// Get one object (storage form).
    pub fn get(&self, def: &ResourceDef, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        self.bucket(def).get(&Self::key(def, ns, name)).cloned().ok_or_else(|| ApiError::not_found(def, name))
    }

    /// All objects of a bucket, optionally restricted to a namespace,
    /// ordered by (namespace, name) like etcd keys.
    pub fn list(&self, def: &ResourceDef, ns: Option<&str>) -> Vec<Value> {
        self.bucket(def).iter().filter(|((ons, _), _)| ns.is_none_or(|n| n == ons)).map(|(_, v)| v.clone()).collect()
    }

    fn check_namespace_for_create(&self, def: &ResourceDef, ns: &str, name: &str) -> Result<(), ApiError> {
        let nsdef = &RESOURCES[0];
        match self.bucket(nsdef).get(&(String::new(), ns.to_string())) {
            None => Err(ApiError::namespace_not_found(ns)),
            Some(n) if is_deleting(n) => Err(ApiError::namespace_terminating(def, name, ns)),
            Some(_) => Ok(()),
        }
    }

    /// Create an object. `obj` is in storage form (apiVersion/kind already set).
    /// With `opts.from_api` the registry strategy resets `.status` for resources
    /// with a status subresource, like the apiserver.
    pub fn create(
        &mut self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        mut obj: Value,
        opts: WriteOpts,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        let storage = def.storage();
        set_type_meta(&mut obj, &storage.api_version(), storage.kind);
        let body_ns = meta_str(&obj, "namespace").unwrap_or("").to_string();
        let ns = if def.namespaced {
            let ns = match ns {
                Some(n) => n.to_string(),
                None if !body_ns.is_empty() => body_ns.clone(),
                None => return Err(ApiError::bad_request("a namespace is required")),
            };
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            Some(ns)
        } else {
            None
        };
        let m = meta_mut(&mut obj);
        let mut name = m.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let generate = m.get("generateName").and_then(Value::as_str).unwrap_or("").to_string();
        if name.is_empty() {
            if generate.is_empty() {
                return Err(ApiError::invalid(def, "", "metadata.name", "", "name or generateName is required"));
            }
            // A (very unlikely) collision surfaces as AlreadyExists, as on
            // the apiserver.
            name = format!("{generate}{}", self.random_suffix());
        }
        let name_ok = if def.bucket == "namespaces" { valid_dns_label(&name) } else { valid_dns_subdomain(&name) };
        if !name_ok {
            return Err(ApiError::invalid(
                def,
                &name,
                "metadata.name",
                &name,
                "a lowercase RFC 1123 name must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            ));
        }
        if let Some(ns) = &ns {
            self.check_namespace_for_create(def, ns, &name)?;
        }
        let key = Self::key(def, ns.as_deref(), &name);
        if self.bucket(def).contains_key(&key) {
            return Err(ApiError::already_exists(def, &name));
        }
        let uid = self.new_uid();
        let rv = self.rv + 1;
        let m = meta_mut(&mut obj);
        m.insert("name".into(), json!(name));
        match &ns {
            Some(ns) => {
                m.insert("namespace".into(), json!(ns));
            }
            None => {
                m.remove("namespace");
            }
        }
        m.insert("uid".into(), json!(uid));
        m.insert("resourceVersion".into(), json!(rv.to_string()));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("selfLink");
        if def.has_generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        if opts.from_api && def.status_subresource {
            if let Value::Object(o) = &mut obj {
                o.remove("status");
            }
        }
        apply_defaults(storage, &mut obj, &uid, &name);
        if opts.dry_run {
            return Ok(obj);
        }
        self.rv = rv;
        self.bucket_mut(def).insert(key, obj.clone());
        self.record(def, EventType::Added, obj.clone(), None);
        Ok(obj)
    }

    /// Replace an object (or its status / finalizers). `new` is storage form.
    /// A non-empty `metadata.resourceVersion` in `new` is an optimistic
    /// concurrency precondition (409 Conflict when stale).
    pub fn update(
        &mut self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        mut new: Value,
        sub: Subresource,
        opts: WriteOpts,
    ) -> Result<Value, ApiError> {
        if !new.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        let body_name = meta_str(&new, "name").unwrap_or("");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let key = Self::key(def, ns, name);
        let Some(cur) = self.bucket(def).get(&key).cloned() else {
            if def.create_on_update && sub == Subresource::Main {
                if let Some(rv) = meta_str(&new, "resourceVersion") {
                    if !rv.is_empty() {
                        return Err(ApiError::not_found(def, name));
                    }
                }
                return self.create(def, ns, new, opts);
            }
            return Err(ApiError::not_found(def, name));
        };
        if def.namespaced {
            let body_ns = meta_str(&new, "namespace").unwrap_or("");
            if !body_ns.is_empty() && Some(body_ns) != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let cur_rv = meta_str(&cur, "resourceVersion").unwrap_or("").to_string();
        if let Some(rv) = meta_str(&new, "resourceVersion") {
            if !rv.is_empty() && rv != cur_rv {
                return Err(ApiError::stale(def, name));
            }
        }
        if let (Some(want), Some(have)) = (meta_str(&new, "uid"), meta_str(&cur, "uid")) {
            if !want.is_empty() && want != have {
                return Err(ApiError::conflict(
                    def,
                    name,
                    &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {have}"),
                ));
            }
        }
        let storage = def.storage();
        set_type_meta(&mut new, &storage.api_version(), storage.kind);

        let mut result = match sub {
            Subresource::Status => {
                let mut r = cur.clone();
                match new.get("status") {
                    Some(s) => r["status"] = s.clone(),
                    None => {
                        if let Value::Object(o) = &mut r {
                            o.remove("status");
                        }
                    }
                }
                r
            }
            Subresource::Finalize => {
                let mut r = cur.clone();
                let fins = new.pointer("/spec/finalizers").cloned().unwrap_or_else(|| json!([]));
                if !r.get("spec").is_some_and(Value::is_object) {
                    r["spec"] = json!({});
                }
                r["spec"]["finalizers"] = fins;
                r
            }
            Subresource::Main => {
                let mut r = new;
                if opts.from_api && def.status_subresource {
                    match cur.get("status") {
                        Some(s) => r["status"] = s.clone(),
                        None => {
                            if let Value::Object(o) = &mut r {
                                o.remove("status");
                            }
                        }
                    }
                }
                if def.bucket == "namespaces" {
                    // spec.finalizers only change through /finalize.
                    if let Some(f) = cur.pointer("/spec/finalizers") {
                        if !r.get("spec").is_some_and(Value::is_object) {
                            r["spec"] = json!({});
                        }
                        r["spec"]["finalizers"] = f.clone();
                    }
                    let labels = meta_mut(&mut r).entry("labels").or_insert_with(|| json!({}));
                    if labels.is_object() {
                        labels["kubernetes.io/metadata.name"] = json!(name);
                    }
                }
                r
            }
        };
        // System-owned metadata is preserved from the stored object.
        {
            let cm = meta(&cur).cloned().unwrap_or_default();
            let m = meta_mut(&mut result);
            for f in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
            ] {
                match cm.get(f) {
                    Some(v) => {
                        m.insert(f.into(), v.clone());
                    }
                    None => {
                        m.remove(f);
                    }
                }
            }
            m.remove("selfLink");
        }
        if without_rv(&result) == without_rv(&cur) {
            // No-op update: no new resourceVersion, no watch event.
            return Ok(cur);
        }
        if def.has_generation && spec_part(&result) != spec_part(&cur) {
            let g = meta(&cur).and_then(|m| m.get("generation")).and_then(Value::as_i64).unwrap_or(0);
            meta_mut(&mut result).insert("generation".into(), json!(g + 1));
        }
        if opts.dry_run {
            return Ok(result);
        }
        self.rv += 1;
        meta_mut(&mut result).insert("resourceVersion".into(), json!(self.rv.to_string()));
        if deletable(def, &result) {
            if def.bucket == "namespaces" {
                self.bucket_mut(def).insert(key, result.clone());
                self.record(def, EventType::Modified, result.clone(), Some(cur));
                let last = result.clone();
                return self.remove(def, ns, name, last).map(|_| result);
            }
            self.bucket_mut(def).remove(&key);
            self.record(def, EventType::Deleted, result.clone(), Some(cur));
            return Ok(result);
        }
        self.bucket_mut(def).insert(key, result.clone());
        self.record(def, EventType::Modified, result.clone(), Some(cur));
        Ok(result)
    }

    /// Remove from storage (DELETED event with a fresh resourceVersion).
    fn remove(&mut self, def: &ResourceDef, ns: Option<&str>, name: &str, prev: Value) -> Result<Value, ApiError> {
        let key = Self::key(def, ns, name);
        self.bucket_mut(def).remove(&key);
        self.rv += 1;
        let mut last = prev.clone();
        meta_mut(&mut last).insert("resourceVersion".into(), json!(self.rv.to_string()));
        if def.bucket == "namespaces" {
            self.terminating.remove(name);
        }
        self.record(def, EventType::Deleted, last.clone(), Some(prev));
        Ok(last)
    }

    /// Delete an object: immediate removal, or `deletionTimestamp` when
    /// finalizers are present (namespaces always go through Terminating).
    pub fn delete(
        &mut self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        pre: &Preconditions,
        dry_run: bool,
    ) -> Result<DeleteOutcome, ApiError> {
        let cur = self.get(def, ns, name)?;
        if let Some(uid) = &pre.uid {
            let have = meta_str(&cur, "uid").unwrap_or("");
            if uid != have {
                return Err(ApiError::conflict(
                    def,
                    name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
                ));
            }
        }
        if let Some(rv) = &pre.resource_version {
            let have = meta_str(&cur, "resourceVersion").unwrap_or("");
            if rv != have {
                return Err(ApiError::conflict(
                    def,
                    name,
                    &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"),
                ));
            }
        }
        let is_ns = def.bucket == "namespaces";
        if is_deleting(&cur) {
            return Ok(DeleteOutcome::Pending(cur));
        }
        if !is_ns && !has_finalizers(&cur) {
            if dry_run {
                return Ok(DeleteOutcome::Deleted(cur));
            }
            return self.remove(def, ns, name, cur).map(DeleteOutcome::Deleted);
        }
        let mut obj = cur.clone();
        let m = meta_mut(&mut obj);
        m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        if def.has_generation {
            let g = m.get("generation").and_then(Value::as_i64).unwrap_or(0);
            m.insert("generation".into(), json!(g + 1));
        }
        if is_ns {
            if !obj.get("status").is_some_and(Value::is_object) {
                obj["status"] = json!({});
            }
            obj["status"]["phase"] = json!("Terminating");
        }
        if dry_run {
            return Ok(DeleteOutcome::Pending(obj));
        }
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.bucket_mut(def).insert(Self::key(def, ns, name), obj.clone());
        self.record(def, EventType::Modified, obj.clone(), Some(cur));
        if is_ns {
            self.terminating.insert(name.to_string(), Instant::now());
        }
        Ok(DeleteOutcome::Pending(obj))
    }

    /// One pass of the namespace controller for a terminating namespace:
    /// delete everything in it; once empty, remove the `kubernetes`
    /// finalizer (which removes the namespace if nothing else holds it).
    /// Returns true when the namespace needs no more work.
    pub fn namespace_controller_step(&mut self, ns: &str) -> bool {
        let nsdef = &RESOURCES[0];
        let Ok(nsobj) = self.get(nsdef, None, ns) else {
            self.terminating.remove(ns);
            return true;
        };
        if !is_deleting(&nsobj) {
            self.terminating.remove(ns);
            return true;
        }
        let mut remaining = 0usize;
        let mut seen = Vec::new();
        for def in RESOURCES.iter().filter(|d| d.namespaced) {
            if seen.contains(&def.bucket) {
                continue;
            }
            seen.push(def.bucket);
            let def = def.storage();
            for obj in self.list(def, Some(ns)) {
                remaining += 1;
                if !is_deleting(&obj) {
                    let name = name_of(&obj).to_string();
                    let _ = self.delete(def, Some(ns), &name, &Preconditions::default(), false);
                }
            }
        }
        // Re-count: objects without finalizers are gone now.
        if remaining > 0 {
            remaining = seen.iter().map(|b| self.buckets[b].keys().filter(|(ons, _)| ons == ns).count()).sum();
        }
        if remaining > 0 {
            return false;
        }
        let fins: Vec<Value> = nsobj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter(|f| f.as_str() != Some("kubernetes")).cloned().collect())
            .unwrap_or_default();
        let mut new = nsobj.clone();
        new["spec"] = json!({"finalizers": fins});
        let _ = self.update(nsdef, None, ns, new, Subresource::Finalize, WriteOpts::default());
        if self.get(nsdef, None, ns).is_err() {
            self.terminating.remove(ns);
            return true;
        }
        // Still held by other finalizers; keep polling.
        false
    }
}

/// Registry defaulting applied on create (a subset of what the apiserver does).
fn apply_defaults(def: &ResourceDef, obj: &mut Value, uid: &str, name: &str) {
    match def.bucket {
        "namespaces" => {
            let labels = meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
            if labels.is_object() {
                labels["kubernetes.io/metadata.name"] = json!(name);
            }
            if !obj.get("spec").is_some_and(Value::is_object) {
                obj["spec"] = json!({});
            }
            obj["spec"]["finalizers"] = json!(["kubernetes"]);
            obj["status"] = json!({"phase": "Active"});
        }
        "jobs" => {
            if !obj.get("spec").is_some_and(Value::is_object) {
                obj["spec"] = json!({});
            }
            let spec = obj["spec"].as_object_mut().expect("spec object");
            for (k, v) in [
                ("parallelism", json!(1)),
                ("completions", json!(1)),
                ("backoffLimit", json!(6)),
                ("completionMode", json!("NonIndexed")),
                ("suspend", json!(false)),
                ("podReplacementPolicy", json!("TerminatingOrFailed")),
                ("manualSelector", Value::Null),
            ] {
                if !v.is_null() && !spec.contains_key(k) {
                    spec.insert(k.into(), v);
                }
            }
            let manual = spec.get("manualSelector").and_then(Value::as_bool).unwrap_or(false);
            if !manual {
                spec.insert("selector".into(), json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}));
                let tmpl = spec.entry("template").or_insert_with(|| json!({}));
                if !tmpl.is_object() {
                    *tmpl = json!({});
                }
                let tm = meta_mut(tmpl);
                let labels = tm.entry("labels").or_insert_with(|| json!({}));
                if let Value::Object(l) = labels {
                    for (k, v) in [
                        ("batch.kubernetes.io/controller-uid", uid),
                        ("batch.kubernetes.io/job-name", name),
                        ("controller-uid", uid),
                        ("job-name", name),
                    ] {
                        l.insert(k.into(), json!(v));
                    }
                }
            }
            if obj.get("status").is_none() {
                obj["status"] = json!({});
            }
        }
        "deployments" | "statefulsets" => {
            if !obj.get("spec").is_some_and(Value::is_object) {
                obj["spec"] = json!({});
            }
            let spec = obj["spec"].as_object_mut().expect("spec object");
            spec.entry("replicas").or_insert(json!(1));
            if obj.get("status").is_none() {
                obj["status"] = json!({});
            }
        }
        "pods" if obj.get("status").is_none() => {
            obj["status"] = json!({"phase": "Pending"});
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.as_str() > "2024-01-01T00:00:00Z");
    }

    #[test]
    fn names() {
        assert!(valid_dns_label("a-b1"));
        assert!(!valid_dns_label("A"));
        assert!(!valid_dns_label("-a"));
        assert!(valid_dns_subdomain("a.b-c"));
        assert!(!valid_dns_subdomain("a..b"));
    }
}
