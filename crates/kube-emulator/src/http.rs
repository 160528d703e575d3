//! HTTP layer: routing of the Kubernetes REST paths, query parsing, request
//! bodies, patch content types, responses and the request log.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::patch::{json_patch, merge_patch};
use crate::resources::{self, ResourceDef};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{name_of, DeleteOutcome, Preconditions, Subresource, WriteOpts};
use crate::watch::{self, WatchParams};
use crate::{RequestRecord, Shared};

pub type RespBody = UnsyncBoxBody<Bytes, Infallible>;

fn json_response(code: u16, v: &Value) -> Response<RespBody> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

fn error_response(e: &ApiError) -> Response<RespBody> {
    json_response(e.code, &e.to_status())
}

/// Decode `application/x-www-form-urlencoded`-style query strings
/// (`+` is a space, `%XX` escapes).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1") | Some("")) && self.0.iter().any(|(key, _)| key == k)
    }

    fn dry_run(&self) -> bool {
        self.get("dryRun").is_some_and(|v| v == "All")
    }
}

enum Target {
    Version,
    Health,
    ApiVersions,
    GroupList,
    Group(String),
    ResourceList(String, String),
    Collection { def: &'static ResourceDef, ns: Option<String>, watch_path: bool },
    Item { def: &'static ResourceDef, ns: Option<String>, name: String, sub: Option<String>, watch_path: bool },
}

fn route(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    if segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    match segs.as_slice() {
        ["version"] => Some(Target::Version),
        ["healthz"] | ["readyz"] | ["livez"] => Some(Target::Health),
        ["api"] => Some(Target::ApiVersions),
        ["api", v] => Some(Target::ResourceList(String::new(), (*v).to_string())),
        ["api", v, rest @ ..] => resource_route("", v, rest),
        ["apis"] => Some(Target::GroupList),
        ["apis", g] => Some(Target::Group((*g).to_string())),
        ["apis", g, v] => Some(Target::ResourceList((*g).to_string(), (*v).to_string())),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => None,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let (watch_path, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(def) = resources::find(group, version, plural).filter(|d| d.namespaced) {
            let ns = Some((*ns).to_string());
            return match tail {
                [] => Some(Target::Collection { def, ns, watch_path }),
                [name] => Some(Target::Item { def, ns, name: (*name).to_string(), sub: None, watch_path }),
                [name, sub] => {
                    Some(Target::Item { def, ns, name: (*name).to_string(), sub: Some((*sub).to_string()), watch_path })
                }
                _ => None,
            };
        }
    }
    let (plural, tail) = rest.split_first()?;
    let def = resources::find(group, version, plural)?;
    match tail {
        [] => Some(Target::Collection { def, ns: None, watch_path }),
        [name] if !def.namespaced => {
            Some(Target::Item { def, ns: None, name: (*name).to_string(), sub: None, watch_path })
        }
        [name, sub] if !def.namespaced => {
            Some(Target::Item { def, ns: None, name: (*name).to_string(), sub: Some((*sub).to_string()), watch_path })
        }
        _ => None,
    }
}

/// The connection was closed without an answer ([`crate::FaultEffect::Reset`]).
#[derive(Debug)]
pub struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection reset")
    }
}

impl std::error::Error for Reset {}

/// Entry point for every request; `Err` closes the connection unanswered.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<RespBody>, Reset> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let query = Query(parse_query(&raw_query));
    let mut record = RequestRecord {
        method: method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        params: query.0.clone(),
        content_type: content_type.clone(),
        status: 0,
        watch: false,
    };
    let fault = shared.take_fault(method.as_str(), &path);
    let reset_after = fault == Some(crate::FaultEffect::ResetAfterServing);
    let resp = if let Some(fault) = fault.filter(|_| !reset_after) {
        match fault {
            crate::FaultEffect::Error(code) => error_response(&ApiError::from_code(code)),
            crate::FaultEffect::RetryAfter(code, secs) => {
                // As the apiserver: the header, and `retryAfterSeconds` in the Status.
                let err = ApiError::from_code(code).with_retry_after(secs);
                let mut r = error_response(&err);
                r.headers_mut().insert("retry-after", secs.to_string().parse().expect("a number is a header value"));
                r
            }
            crate::FaultEffect::Reset | crate::FaultEffect::ResetAfterServing => {
                record.status = 0;
                shared.log_request(record);
                return Err(Reset);
            }
            crate::FaultEffect::Hang => {
                let mut stop = shared.shutdown_tx.subscribe();
                let _ = stop.wait_for(|s| *s).await;
                error_response(&ApiError::from_code(503))
            }
        }
    } else {
        match req.into_body().collect().await {
            Ok(b) => {
                let body = b.to_bytes();
                dispatch(&shared, &method, &path, &query, content_type.as_deref(), &body, &mut record)
            }
            Err(e) => error_response(&ApiError::bad_request(format!("failed to read request body: {e}"))),
        }
    };
    record.status = resp.status().as_u16();
    shared.log_request(record);
    if reset_after {
        return Err(Reset);
    }
    Ok(resp)
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded as JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the body of the request must be a JSON object"));
    }
    Ok(v)
}

fn check_type_meta(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !av.is_empty() && av != def.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            def.api_version()
        )));
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != def.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            def.kind
        )));
    }
    Ok(())
}

fn selectors(def: &ResourceDef, q: &Query) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), def.field_selectors)
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

fn dispatch(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    q: &Query,
    content_type: Option<&str>,
    body: &[u8],
    record: &mut RequestRecord,
) -> Response<RespBody> {
    let Some(target) = route(path) else {
        return error_response(&ApiError::not_found_path());
    };
    let get_only = |v: Value| {
        if method == Method::GET {
            json_response(200, &v)
        } else {
            error_response(&ApiError::method_not_allowed(method.as_str()))
        }
    };
    let result = match target {
        Target::Version => return get_only(resources::version_info()),
        Target::Health => {
            return Response::builder()
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from_static(b"ok")).boxed_unsync())
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()));
        }
        Target::ApiVersions => return get_only(resources::api_versions(&shared.addr.to_string())),
        Target::GroupList => return get_only(resources::api_group_list()),
        Target::Group(g) => match resources::api_group(&g) {
            Some(v) => return get_only(v),
            None => Err(ApiError::not_found_path()),
        },
        Target::ResourceList(g, v) => match resources::api_resource_list(&g, &v) {
            Some(v) => return get_only(v),
            None => Err(ApiError::not_found_path()),
        },
        Target::Collection { def, ns, watch_path } => {
            let watching = watch_path || q.flag("watch");
            if method == Method::GET && watching {
                record.watch = true;
                return watch_response(shared, def, ns, q);
            }
            collection(shared, method, def, ns.as_deref(), q, body)
        }
        Target::Item { def, ns, name, sub, watch_path } => {
            if watch_path {
                // Legacy /watch/.../{name}: a watch with a name field selector.
                if method != Method::GET {
                    return error_response(&ApiError::method_not_allowed(method.as_str()));
                }
                record.watch = true;
                let mut params = q.0.clone();
                params.push(("fieldSelector".into(), format!("metadata.name={name}")));
                return watch_response(shared, def, ns, &Query(params));
            }
            item(shared, method, def, ns.as_deref(), &name, sub.as_deref(), q, content_type, body)
        }
    };
    shared.changed.notify_one();
    match result {
        Ok((code, v)) => json_response(code, &v),
        Err(e) => error_response(&e),
    }
}

fn watch_response(
    shared: &Arc<Shared>,
    def: &'static ResourceDef,
    ns: Option<String>,
    q: &Query,
) -> Response<RespBody> {
    let (labels, fields) = match selectors(def, q) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let timeout = match q.get("timeoutSeconds") {
        None | Some("") => None,
        Some(t) => match t.parse::<u64>() {
            Ok(s) => Some(Duration::from_secs(s)),
            Err(_) => {
                return error_response(&ApiError::bad_request(format!(
                    "timeoutSeconds: Invalid value: \"{t}\": must be a non-negative integer"
                )))
            }
        },
    };
    let params = WatchParams {
        def,
        namespace: ns,
        labels,
        fields,
        resource_version: q.get("resourceVersion").map(str::to_string),
        allow_bookmarks: q.flag("allowWatchBookmarks"),
        send_initial_events: q.flag("sendInitialEvents"),
        timeout,
    };
    match watch::start(shared.clone(), params) {
        Ok(body) => Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("cache-control", "no-cache, private")
            .body(body.boxed_unsync())
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync())),
        Err(e) => error_response(&e),
    }
}

type Outcome = Result<(u16, Value), ApiError>;

fn list_doc(def: &ResourceDef, rv: u64, items: Vec<Value>) -> Value {
    json!({
        "kind": def.list_kind(),
        "apiVersion": def.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })
}

fn collection(
    shared: &Arc<Shared>,
    method: &Method,
    def: &'static ResourceDef,
    ns: Option<&str>,
    q: &Query,
    body: &[u8],
) -> Outcome {
    match *method {
        Method::GET => {
            let (labels, fields) = selectors(def, q)?;
            let store = shared.lock_store();
            let items: Vec<Value> = store
                .list(def, ns)
                .iter()
                .map(|o| def.to_external(o))
                .filter(|o| labels.matches(o) && fields.matches(o))
                .collect();
            Ok((200, list_doc(def, store.resource_version(), items)))
        }
        Method::POST => {
            if !def.namespaced && ns.is_some() {
                return Err(ApiError::method_not_allowed("POST"));
            }
            if def.namespaced && ns.is_none() {
                return Err(ApiError::method_not_allowed("POST"));
            }
            let obj = parse_body(body)?;
            check_type_meta(def, &obj)?;
            let internal = def.to_internal(obj);
            let created =
                shared.lock_store().create(def, ns, internal, WriteOpts { from_api: true, dry_run: q.dry_run() })?;
            Ok((201, def.to_external(&created)))
        }
        Method::DELETE => {
            if def.plural == "namespaces" {
                return Err(ApiError::method_not_allowed("DELETE"));
            }
            let (labels, fields) = selectors(def, q)?;
            let mut store = shared.lock_store();
            let mut deleted = Vec::new();
            for obj in store.list(def, ns) {
                let ext = def.to_external(&obj);
                if !(labels.matches(&ext) && fields.matches(&ext)) {
                    continue;
                }
                let name = name_of(&obj).to_string();
                let ons = crate::store::namespace_of(&obj).to_string();
                let ons = (!ons.is_empty()).then_some(ons);
                match store.delete(def, ons.as_deref(), &name, &Preconditions::default(), q.dry_run())? {
                    DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o) => deleted.push(def.to_external(&o)),
                }
            }
            let rv = store.resource_version();
            Ok((200, list_doc(def, rv, deleted)))
        }
        _ => Err(ApiError::method_not_allowed(method.as_str())),
    }
}

fn subresource(def: &ResourceDef, sub: Option<&str>) -> Result<Subresource, ApiError> {
    match sub {
        None => Ok(Subresource::Main),
        Some("status") if def.status_subresource => Ok(Subresource::Status),
        Some("finalize") if def.plural == "namespaces" => Ok(Subresource::Finalize),
        Some(_) => Err(ApiError::not_found_path()),
    }
}

fn delete_options(q: &Query, body: &[u8]) -> Result<(Preconditions, bool), ApiError> {
    let mut pre = Preconditions::default();
    let mut dry_run = q.dry_run();
    if !body.iter().all(u8::is_ascii_whitespace) {
        let opts = parse_body(body)?;
        if let Some(p) = opts.get("preconditions") {
            pre.uid = p.get("uid").and_then(Value::as_str).map(str::to_string);
            pre.resource_version = p.get("resourceVersion").and_then(Value::as_str).map(str::to_string);
        }
        if let Some(d) = opts.get("dryRun").and_then(Value::as_array) {
            dry_run |= d.iter().any(|x| x == "All");
        }
    }
    Ok((pre, dry_run))
}

#[allow(clippy::too_many_arguments)]
fn item(
    shared: &Arc<Shared>,
    method: &Method,
    def: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    q: &Query,
    content_type: Option<&str>,
    body: &[u8],
) -> Outcome {
    let sub = subresource(def, sub)?;
    match *method {
        Method::GET => {
            if sub == Subresource::Finalize {
                return Err(ApiError::method_not_allowed("GET"));
            }
            let obj = shared.lock_store().get(def, ns, name)?;
            Ok((200, def.to_external(&obj)))
        }
        Method::PUT => {
            let obj = parse_body(body)?;
            check_type_meta(def, &obj)?;
            let internal = def.to_internal(obj);
            let mut store = shared.lock_store();
            let existed = store.get(def, ns, name).is_ok();
            let out = store.update(def, ns, name, internal, sub, WriteOpts { from_api: true, dry_run: q.dry_run() })?;
            Ok((if existed { 200 } else { 201 }, def.to_external(&out)))
        }
        Method::PATCH => {
            if sub == Subresource::Finalize {
                return Err(ApiError::method_not_allowed("PATCH"));
            }
            patch(shared, def, ns, name, sub, q, content_type, body)
        }
        Method::DELETE => {
            if sub != Subresource::Main {
                return Err(ApiError::method_not_allowed("DELETE"));
            }
            let (pre, dry_run) = delete_options(q, body)?;
            match shared.lock_store().delete(def, ns, name, &pre, dry_run)? {
                DeleteOutcome::Pending(o) => Ok((200, def.to_external(&o))),
                DeleteOutcome::Deleted(o) => {
                    if def.plural == "namespaces" {
                        return Ok((200, def.to_external(&o)));
                    }
                    let mut details = json!({
                        "name": name,
                        "kind": def.plural,
                        "uid": o.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                    });
                    if !def.group.is_empty() {
                        details["group"] = json!(def.group);
                    }
                    Ok((
                        200,
                        json!({
                            "kind": "Status",
                            "apiVersion": "v1",
                            "metadata": {},
                            "status": "Success",
                            "details": details,
                        }),
                    ))
                }
            }
        }
        _ => Err(ApiError::method_not_allowed(method.as_str())),
    }
}

#[allow(clippy::too_many_arguments)]
fn patch(
    shared: &Arc<Shared>,
    def: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    sub: Subresource,
    q: &Query,
    content_type: Option<&str>,
    body: &[u8],
) -> Outcome {
    let ct = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let dry_run = q.dry_run();
    let patch_doc: Value = match ct.as_str() {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" | "application/json-patch+json" => {
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
        }
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            if q.get("fieldManager").unwrap_or("").is_empty() {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            // Only the JSON subset of YAML is understood.
            let v: Value = serde_json::from_slice(body).map_err(|_| ApiError::unsupported_media_type(&ct))?;
            if !v.is_object() {
                return Err(ApiError::bad_request("apply patch must be an object"));
            }
            check_type_meta(def, &v)?;
            v
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    let mut store = shared.lock_store();
    let cur = match store.get(def, ns, name) {
        Ok(c) => c,
        Err(e) => {
            if ct == "application/apply-patch+yaml" && sub == Subresource::Main {
                let mut obj = patch_doc;
                if !obj.get("metadata").is_some_and(Value::is_object) {
                    obj["metadata"] = json!({});
                }
                obj["metadata"]["name"] = json!(name);
                let internal = def.to_internal(obj);
                let created = store.create(def, ns, internal, WriteOpts { from_api: true, dry_run })?;
                return Ok((201, def.to_external(&created)));
            }
            return Err(e);
        }
    };
    let mut ext = def.to_external(&cur);
    match ct.as_str() {
        "application/json-patch+json" => json_patch(&mut ext, &patch_doc).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        })?,
        _ => {
            if !patch_doc.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            merge_patch(&mut ext, &patch_doc)
        }
    }
    check_type_meta(def, &ext)?;
    let internal = def.to_internal(ext);
    let out = store.update(def, ns, name, internal, sub, WriteOpts { from_api: true, dry_run })?;
    Ok((200, def.to_external(&out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query("labelSelector=a+in+%28x%2Cy%29&watch=true&x&bad=%zz&end=%4");
        assert_eq!(q[0], ("labelSelector".into(), "a in (x,y)".into()));
        assert_eq!(q[1], ("watch".into(), "true".into()));
        assert_eq!(q[2], ("x".into(), "".into()));
        assert_eq!(q[3], ("bad".into(), "%zz".into()));
        assert_eq!(q[4], ("end".into(), "%4".into()));
    }

    #[test]
    fn routes() {
        assert!(matches!(route("/api/v1/namespaces"), Some(Target::Collection { .. })));
        assert!(matches!(route("/api/v1/namespaces/foo"), Some(Target::Item { sub: None, .. })));
        assert!(matches!(route("/api/v1/namespaces/foo/status"), Some(Target::Item { sub: Some(_), .. })));
        assert!(matches!(route("/apis/batch/v1/namespaces/foo/jobs"), Some(Target::Collection { ns: Some(_), .. })));
        assert!(matches!(route("/apis/batch/v1/jobs"), Some(Target::Collection { ns: None, .. })));
        assert!(matches!(route("/apis/batch/v1/namespaces/foo/jobs/j/status"), Some(Target::Item { .. })));
        assert!(matches!(route("/api/v1/watch/namespaces"), Some(Target::Collection { watch_path: true, .. })));
        assert!(route("/apis/batch/v1/jobs/x").is_none());
        assert!(route("/apis/foo/v1/bars").is_none());
        assert!(route("/nope").is_none());
        assert!(route("/api//v1").is_none());
    }
}
