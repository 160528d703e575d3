//! Wire-level tests of the emulator over plain HTTP.

mod common;

use std::time::Duration;

use common::{name_of, rv_of, Api};
use kube_emulator::{Emulator, EmulatorConfig};
use serde_json::{json, Value};

const JOBS: &str = "/apis/batch/v1/namespaces/work/jobs";
const MERGE: &str = "application/merge-patch+json";

fn ns(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn job(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]}}}
    })
}

fn assert_status(v: &Value, code: u16, reason: &str) {
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["apiVersion"], "v1", "{v}");
    assert_eq!(v["status"], "Failure", "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["reason"], reason, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

async fn setup() -> (Emulator, Api) {
    let emu = Emulator::start().await;
    let api = Api::new(&emu);
    let (code, _) = api.post("/api/v1/namespaces", &ns("work")).await;
    assert_eq!(code, 201);
    (emu, api)
}

#[tokio::test]
async fn discovery_and_unknown_paths() {
    let emu = Emulator::start().await;
    let api = Api::new(&emu);
    let (code, v) = api.get("/version").await;
    assert_eq!(code, 200);
    assert_eq!(v["major"], "1");
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1."));
    let (_, v) = api.get("/api").await;
    assert_eq!(v["kind"], "APIVersions");
    assert_eq!(v["versions"], json!(["v1"]));
    let (_, v) = api.get("/apis").await;
    let groups: Vec<&str> = v["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    for g in ["batch", "coordination.k8s.io", "events.k8s.io"] {
        assert!(groups.contains(&g), "{groups:?}");
    }
    let (_, v) = api.get("/apis/batch/v1").await;
    assert_eq!(v["kind"], "APIResourceList");
    assert_eq!(v["groupVersion"], "batch/v1");
    assert!(v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "jobs" && r["namespaced"] == true && r["kind"] == "Job"));
    let (_, v) = api.get("/api/v1").await;
    assert!(v["resources"].as_array().unwrap().iter().any(|r| r["name"] == "namespaces" && r["namespaced"] == false));
    let (_, v) = api.get("/apis/batch").await;
    assert_eq!(v["preferredVersion"]["groupVersion"], "batch/v1");

    for path in [
        "/nope",
        "/apis/widgets.example.com/v1/widgets",
        "/apis/batch/v1/jobs/x",
        "/api/v1/namespaces/default/jobs",
        "/apis/batch/v2/jobs",
    ] {
        let (code, v) = api.get(path).await;
        assert_eq!(code, 404, "{path}");
        assert_status(&v, 404, "NotFound");
    }
    let (code, v) = api.call("POST", "/version", None, "application/json").await;
    assert_eq!(code, 405);
    assert_status(&v, 405, "MethodNotAllowed");
    let (code, body) = api.raw("GET", "/healthz", None, "text/plain").await;
    assert_eq!((code, body.as_str()), (200, "ok"));
    emu.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_400_status() {
    let (emu, api) = setup().await;
    let (code, v) = api.raw("POST", JOBS, Some("{not json"), "application/json").await;
    assert_eq!(code, 400);
    assert_status(&serde_json::from_str(&v).unwrap(), 400, "BadRequest");
    let (code, v) = api.post(JOBS, &json!([1, 2])).await;
    assert_eq!(code, 400);
    assert_status(&v, 400, "BadRequest");
    // kind mismatch
    let (code, v) = api.post(JOBS, &ns("x")).await;
    assert_eq!(code, 400);
    assert_status(&v, 400, "BadRequest");
    // namespace mismatch between body and URL
    let mut j = job("j", json!({}));
    j["metadata"]["namespace"] = json!("other");
    let (code, v) = api.post(JOBS, &j).await;
    assert_eq!(code, 400, "{v}");
    // invalid names are 422 Invalid
    let (code, v) = api.post(JOBS, &job("Bad_Name", json!({}))).await;
    assert_eq!(code, 422);
    assert_status(&v, 422, "Invalid");
    let (code, v) = api.post(JOBS, &json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {}})).await;
    assert_eq!(code, 422, "{v}");
    // bad selectors / params
    for q in [
        "?labelSelector=a%20in%20(x",
        "?labelSelector=%3D%3Dx",
        "?fieldSelector=spec.nope%3Dx",
        "?watch=true&timeoutSeconds=abc",
        "?watch=true&resourceVersion=abc",
    ] {
        let (code, v) = api.get(&format!("{JOBS}{q}")).await;
        assert_eq!(code, 400, "{q}: {v}");
        assert_status(&v, 400, "BadRequest");
    }
    // PATCH with an unknown content type: 415
    let (code, _) = api.post(JOBS, &job("j", json!({}))).await;
    assert_eq!(code, 201);
    let (code, v) = api.patch(&format!("{JOBS}/j"), &json!({}), "application/xml").await;
    assert_eq!(code, 415);
    assert_status(&v, 415, "UnsupportedMediaType");
    let (code, v) = api.raw("PATCH", &format!("{JOBS}/j"), Some("{"), MERGE).await;
    assert_eq!(code, 400, "{v}");
    emu.shutdown().await;
}

#[tokio::test]
async fn create_get_list_namespaces() {
    let emu = Emulator::start().await;
    let api = Api::new(&emu);
    let rv0 = emu.resource_version();
    let (code, created) = api.post("/api/v1/namespaces", &ns("alpha")).await;
    assert_eq!(code, 201);
    assert_eq!(created["kind"], "Namespace");
    assert_eq!(created["apiVersion"], "v1");
    assert_eq!(created["status"]["phase"], "Active");
    assert_eq!(created["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(created["metadata"]["labels"]["kubernetes.io/metadata.name"], "alpha");
    assert_eq!(created["metadata"]["uid"].as_str().unwrap().len(), 36);
    let ts = created["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(ts.len() == 20 && ts.ends_with('Z'), "{ts}");
    assert!(rv_of(&created) > rv0);
    assert!(created["metadata"].get("namespace").is_none());

    let (code, got) = api.get("/api/v1/namespaces/alpha").await;
    assert_eq!(code, 200);
    assert_eq!(got, created);

    let (code, v) = api.post("/api/v1/namespaces", &ns("alpha")).await;
    assert_eq!(code, 409);
    assert_status(&v, 409, "AlreadyExists");
    assert_eq!(v["details"]["name"], "alpha");
    assert_eq!(v["details"]["kind"], "namespaces");
    assert_eq!(v["message"], "namespaces \"alpha\" already exists");

    let (code, v) = api.get("/api/v1/namespaces/missing").await;
    assert_eq!(code, 404);
    assert_status(&v, 404, "NotFound");
    assert_eq!(v["message"], "namespaces \"missing\" not found");

    let (code, list) = api.get("/api/v1/namespaces?limit=500&continue=").await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "NamespaceList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["metadata"]["resourceVersion"], emu.resource_version().to_string());
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(name_of).collect();
    assert_eq!(names, ["alpha", "default", "kube-node-lease", "kube-public", "kube-system"]);
    for item in list["items"].as_array().unwrap() {
        assert_eq!(item["kind"], "Namespace");
        assert_eq!(item["apiVersion"], "v1");
    }

    // generateName
    let (code, v) = api
        .post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"generateName": "gen-"}}),
        )
        .await;
    assert_eq!(code, 201);
    let name = name_of(&v);
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    emu.shutdown().await;
}

#[tokio::test]
async fn namespaced_create_requires_existing_namespace() {
    let emu = Emulator::start().await;
    let api = Api::new(&emu);
    let (code, v) = api.post("/apis/batch/v1/namespaces/ghost/jobs", &job("j", json!({}))).await;
    assert_eq!(code, 404);
    assert_status(&v, 404, "NotFound");
    assert_eq!(v["message"], "namespaces \"ghost\" not found");
    emu.shutdown().await;
}

#[tokio::test]
async fn job_defaults_generation_and_status_subresource() {
    let (emu, api) = setup().await;
    let mut j = job("build", json!({"app": "web"}));
    j["status"] = json!({"succeeded": 5});
    let (code, created) = api.post(JOBS, &j).await;
    assert_eq!(code, 201);
    assert_eq!(created["metadata"]["namespace"], "work");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["status"], json!({}), "status is reset on create");
    assert_eq!(created["spec"]["backoffLimit"], 6);
    let uid = created["metadata"]["uid"].as_str().unwrap();
    assert_eq!(created["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"], uid);
    assert_eq!(created["spec"]["template"]["metadata"]["labels"]["job-name"], "build");

    // status via /status subresource
    let (code, v) = api
        .patch(&format!("{JOBS}/build/status"), &json!({"status": {"active": 1}, "spec": {"parallelism": 9}}), MERGE)
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"]["active"], 1);
    assert_eq!(v["spec"]["parallelism"], 1, "spec ignored on /status");
    assert_eq!(v["metadata"]["generation"], 1);

    // status ignored on the main resource; spec change bumps generation
    let (code, v) =
        api.patch(&format!("{JOBS}/build"), &json!({"status": {"active": 7}, "spec": {"suspend": true}}), MERGE).await;
    assert_eq!(code, 200);
    assert_eq!(v["status"]["active"], 1);
    assert_eq!(v["spec"]["suspend"], true);
    assert_eq!(v["metadata"]["generation"], 2);

    // metadata-only change does not bump generation
    let (_, v) = api.patch(&format!("{JOBS}/build"), &json!({"metadata": {"annotations": {"a": "b"}}}), MERGE).await;
    assert_eq!(v["metadata"]["generation"], 2);

    // no-op patch: same resourceVersion, no write
    let rv = rv_of(&v);
    let (_, v2) = api.patch(&format!("{JOBS}/build"), &json!({"metadata": {"annotations": {"a": "b"}}}), MERGE).await;
    assert_eq!(rv_of(&v2), rv);
    assert_eq!(emu.resource_version(), rv);

    // control API update_status
    let v = emu.update_status("Job", Some("work"), "build", json!({"succeeded": 1})).unwrap();
    assert_eq!(v["status"], json!({"succeeded": 1}));
    let (_, got) = api.get(&format!("{JOBS}/build/status")).await;
    assert_eq!(got["status"]["succeeded"], 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn label_and_field_selectors() {
    let (emu, api) = setup().await;
    api.post("/api/v1/namespaces", &ns("other")).await;
    for (n, labels) in
        [("a", json!({"app": "web", "tier": "fe"})), ("b", json!({"app": "db"})), ("c", json!({"tier": "be"}))]
    {
        let (code, _) = api.post(JOBS, &job(n, labels)).await;
        assert_eq!(code, 201);
    }
    let (code, _) = api.post("/apis/batch/v1/namespaces/other/jobs", &job("d", json!({"app": "web"}))).await;
    assert_eq!(code, 201);

    async fn names(api: &Api, path: &str, sel: &str) -> Vec<String> {
        let (code, v) = api.get(&format!("{path}?{sel}")).await;
        assert_eq!(code, 200, "{sel}: {v}");
        assert_eq!(v["kind"], "JobList");
        assert_eq!(v["apiVersion"], "batch/v1");
        v["items"].as_array().unwrap().iter().map(|i| name_of(i).to_string()).collect()
    }
    let cases: &[(&str, &[&str])] = &[
        ("labelSelector=app%3Dweb", &["a"]),
        ("labelSelector=app%3D%3Dweb", &["a"]),
        ("labelSelector=app!%3Dweb", &["b", "c"]),
        ("labelSelector=app", &["a", "b"]),
        ("labelSelector=!app", &["c"]),
        ("labelSelector=app+in+(web,db)", &["a", "b"]),
        ("labelSelector=app%20notin%20(web)", &["b", "c"]),
        ("labelSelector=app%3Dweb,tier%3Dfe", &["a"]),
        ("labelSelector=app%3Dweb,tier%3Dbe", &[]),
        ("fieldSelector=metadata.name%3Db", &["b"]),
        ("fieldSelector=metadata.name!%3Db", &["a", "c"]),
        ("fieldSelector=metadata.namespace%3Dwork", &["a", "b", "c"]),
        ("labelSelector=app&fieldSelector=metadata.name%3Da", &["a"]),
        ("limit=1&continue=abc&resourceVersion=0&resourceVersionMatch=NotOlderThan", &["a", "b", "c"]),
    ];
    for (sel, want) in cases {
        assert_eq!(names(&api, JOBS, sel).await, *want, "{sel}");
    }
    // cluster-wide list
    assert_eq!(
        names(&api, "/apis/batch/v1/jobs", "labelSelector=app%3Dweb").await,
        ["d", "a"],
        "ordered by namespace, then name (etcd key order)"
    );
    assert_eq!(names(&api, "/apis/batch/v1/jobs", "fieldSelector=metadata.namespace%3Dother").await, ["d"]);
    // namespaces by field
    let (_, v) = api.get("/api/v1/namespaces?fieldSelector=metadata.name%3Dother").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn watch_initial_state_then_live_events() {
    let (emu, api) = setup().await;
    api.post(JOBS, &job("pre", json!({"app": "web"}))).await;
    let mut w = api.watch(&format!("{JOBS}?watch=true")).await;
    let e = w.next().await;
    assert_eq!(e["type"], "ADDED");
    assert_eq!(e["object"]["kind"], "Job");
    assert_eq!(e["object"]["apiVersion"], "batch/v1");
    assert_eq!(name_of(&e["object"]), "pre");
    assert_eq!(emu.open_watches(), 1);

    let (_, created) = api.post(JOBS, &job("live", json!({}))).await;
    let e = w.next().await;
    assert_eq!(e["type"], "ADDED");
    assert_eq!(e["object"], created);

    let (_, patched) = api.patch(&format!("{JOBS}/live"), &json!({"metadata": {"labels": {"x": "y"}}}), MERGE).await;
    let e = w.next().await;
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"], patched);
    assert!(rv_of(&patched) > rv_of(&created));

    let (code, v) = api.delete(&format!("{JOBS}/live")).await;
    assert_eq!(code, 200);
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["status"], "Success");
    assert_eq!(v["details"]["name"], "live");
    assert_eq!(v["details"]["group"], "batch");
    let e = w.next().await;
    assert_eq!(e["type"], "DELETED");
    assert_eq!(name_of(&e["object"]), "live");
    assert!(rv_of(&e["object"]) > rv_of(&patched));
    assert_eq!(rv_of(&e["object"]), emu.resource_version());

    // other namespaces are not visible on a namespaced watch
    api.post("/api/v1/namespaces", &ns("other")).await;
    api.post("/apis/batch/v1/namespaces/other/jobs", &job("x", json!({}))).await;
    assert!(w.next_timeout(Duration::from_millis(200)).await.is_none());

    let (code, _) = api.delete(&format!("{JOBS}/live")).await;
    assert_eq!(code, 404);
    drop(w);
    assert!(emu.wait_until(Duration::from_secs(5), |e| e.open_watches() == 0).await);
    emu.shutdown().await;
}

#[tokio::test]
async fn watch_resume_from_resource_version_and_cluster_wide() {
    let (emu, api) = setup().await;
    let (_, a) = api.post(JOBS, &job("a", json!({}))).await;
    let (_, _b) = api.post(JOBS, &job("b", json!({}))).await;
    api.delete(&format!("{JOBS}/a")).await;
    // Resume after "a" was created: sees b ADDED and a DELETED, nothing else.
    let mut w = api.watch(&format!("/apis/batch/v1/jobs?watch=1&resourceVersion={}", rv_of(&a))).await;
    let e1 = w.next().await;
    let e2 = w.next().await;
    assert_eq!((e1["type"].as_str(), name_of(&e1["object"])), (Some("ADDED"), "b"));
    assert_eq!((e2["type"].as_str(), name_of(&e2["object"])), (Some("DELETED"), "a"));
    assert!(w.next_timeout(Duration::from_millis(200)).await.is_none());
    // Legacy /watch/ path prefix
    let mut w2 = api.watch("/apis/batch/v1/watch/namespaces/work/jobs").await;
    assert_eq!(name_of(&w2.next().await["object"]), "b");
    emu.shutdown().await;
}

#[tokio::test]
async fn watch_selector_transitions() {
    let (emu, api) = setup().await;
    let mut w = api.watch(&format!("{JOBS}?watch=true&labelSelector=app%3Dweb")).await;
    api.post(JOBS, &job("j", json!({"app": "db"}))).await;
    api.patch(&format!("{JOBS}/j"), &json!({"metadata": {"labels": {"app": "web"}}}), MERGE).await;
    let e = w.next().await;
    assert_eq!(e["type"], "ADDED", "starts matching -> ADDED");
    api.patch(&format!("{JOBS}/j"), &json!({"metadata": {"labels": {"app": "db"}}}), MERGE).await;
    let e = w.next().await;
    assert_eq!(e["type"], "DELETED", "stops matching -> DELETED");
    emu.shutdown().await;
}

#[tokio::test]
async fn watch_bookmarks_and_timeout() {
    let emu =
        Emulator::start_with(EmulatorConfig { bookmark_interval: Duration::from_millis(100), ..Default::default() })
            .await;
    let api = Api::new(&emu);
    let rv = emu.resource_version();
    let mut w =
        api.watch(&format!("/api/v1/namespaces?watch=true&allowWatchBookmarks=true&resourceVersion={rv}")).await;
    let e = w.next().await;
    assert_eq!(e["type"], "BOOKMARK");
    assert_eq!(e["object"]["kind"], "Namespace");
    assert_eq!(e["object"]["apiVersion"], "v1");
    assert_eq!(e["object"]["metadata"]["resourceVersion"], rv.to_string());
    assert!(e["object"].get("spec").is_none());

    // timeoutSeconds ends the stream
    let mut w = api.watch("/api/v1/namespaces?watch=true&timeoutSeconds=1&resourceVersion=0").await;
    for _ in 0..4 {
        assert_eq!(w.next().await["type"], "ADDED");
    }
    let start = std::time::Instant::now();
    assert!(w.wait_end(Duration::from_secs(5)).await);
    assert!(start.elapsed() < Duration::from_secs(3));

    // sendInitialEvents: ADDED..., then a BOOKMARK marked initial-events-end
    let mut w = api
        .watch("/api/v1/namespaces?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")
        .await;
    for _ in 0..4 {
        assert_eq!(w.next().await["type"], "ADDED");
    }
    let e = w.next().await;
    assert_eq!(e["type"], "BOOKMARK");
    assert_eq!(e["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    emu.shutdown().await;
}

#[tokio::test]
async fn watch_gets_410_after_compaction() {
    let (emu, api) = setup().await;
    let (_, a) = api.post(JOBS, &job("a", json!({}))).await;
    api.post(JOBS, &job("b", json!({}))).await;
    emu.compact();
    let mut w = api.watch(&format!("{JOBS}?watch=true&resourceVersion={}", rv_of(&a))).await;
    let e = w.next().await;
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["kind"], "Status");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert!(e["object"]["message"].as_str().unwrap().starts_with("too old resource version"));
    assert!(w.wait_end(Duration::from_secs(2)).await);

    // from the current version it still works
    let cur = emu.resource_version();
    let mut w = api.watch(&format!("{JOBS}?watch=true&resourceVersion={cur}")).await;
    api.post(JOBS, &job("c", json!({}))).await;
    assert_eq!(w.next().await["type"], "ADDED");

    // expire_watches closes watches and invalidates every seen version
    emu.expire_watches();
    assert!(w.wait_end(Duration::from_secs(2)).await);
    let (_, list) = api.get(JOBS).await;
    let list_rv = list["metadata"]["resourceVersion"].as_str().unwrap();
    let mut w = api.watch(&format!("{JOBS}?watch=true&resourceVersion={}", emu.resource_version() - 1)).await;
    assert_eq!(w.next().await["object"]["code"], 410);
    let mut w = api.watch(&format!("{JOBS}?watch=true&resourceVersion={list_rv}")).await;
    assert!(w.next_timeout(Duration::from_millis(200)).await.is_none());
    assert!(!w.ended);
    emu.shutdown().await;
}

#[tokio::test]
async fn history_limit_expires_old_versions() {
    let emu = Emulator::start_with(EmulatorConfig { history_limit: 3, ..Default::default() }).await;
    let api = Api::new(&emu);
    let start = emu.resource_version();
    for i in 0..6 {
        api.post("/api/v1/namespaces", &ns(&format!("n{i}"))).await;
    }
    let mut w = api.watch(&format!("/api/v1/namespaces?watch=true&resourceVersion={start}")).await;
    assert_eq!(w.next().await["object"]["code"], 410);
    let recent = emu.resource_version() - 2;
    let mut w = api.watch(&format!("/api/v1/namespaces?watch=true&resourceVersion={recent}")).await;
    assert_eq!(name_of(&w.next().await["object"]), "n4");
    assert_eq!(name_of(&w.next().await["object"]), "n5");
    emu.shutdown().await;
}

#[tokio::test]
async fn drop_watches_closes_streams() {
    let (emu, api) = setup().await;
    let mut w1 = api.watch("/api/v1/namespaces?watch=true").await;
    let mut w2 = api.watch(&format!("{JOBS}?watch=true")).await;
    assert!(emu.wait_until(Duration::from_secs(2), |e| e.open_watches() == 2).await);
    emu.drop_watches();
    assert!(w1.wait_end(Duration::from_secs(2)).await);
    assert!(w2.wait_end(Duration::from_secs(2)).await);
    assert!(emu.wait_until(Duration::from_secs(2), |e| e.open_watches() == 0).await);
    emu.shutdown().await;
}

#[tokio::test]
async fn lease_put_optimistic_concurrency() {
    let (emu, api) = setup().await;
    let leases = "/apis/coordination.k8s.io/v1/namespaces/work/leases";
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}
    });
    let (code, created) = api.post(leases, &lease).await;
    assert_eq!(code, 201);

    let mut upd = created.clone();
    upd["spec"]["holderIdentity"] = json!("b");
    let (code, v1) = api.put(&format!("{leases}/leader"), &upd).await;
    assert_eq!(code, 200);
    assert_eq!(v1["spec"]["holderIdentity"], "b");
    assert!(rv_of(&v1) > rv_of(&created));
    assert_eq!(v1["metadata"]["uid"], created["metadata"]["uid"]);

    // stale resourceVersion -> 409 Conflict
    let mut stale = created.clone();
    stale["spec"]["holderIdentity"] = json!("c");
    let (code, v) = api.put(&format!("{leases}/leader"), &stale).await;
    assert_eq!(code, 409);
    assert_status(&v, 409, "Conflict");
    assert_eq!(v["details"]["kind"], "leases");
    assert_eq!(v["details"]["group"], "coordination.k8s.io");
    assert!(v["message"].as_str().unwrap().contains("the object has been modified"));

    // no resourceVersion: unconditional update
    let mut uncond = stale.clone();
    uncond["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    let (code, v) = api.put(&format!("{leases}/leader"), &uncond).await;
    assert_eq!(code, 200);
    assert_eq!(v["spec"]["holderIdentity"], "c");

    // name mismatch -> 400, missing -> 404
    let (code, _) = api.put(&format!("{leases}/other"), &uncond).await;
    assert_eq!(code, 400);
    let mut missing = uncond.clone();
    missing["metadata"]["name"] = json!("missing");
    let (code, v) = api.put(&format!("{leases}/missing"), &missing).await;
    assert_eq!(code, 404);
    assert_status(&v, 404, "NotFound");
    assert_eq!(v["message"], "leases.coordination.k8s.io \"missing\" not found");
    emu.shutdown().await;
}

#[tokio::test]
async fn patch_types() {
    let (emu, api) = setup().await;
    let cms = "/api/v1/namespaces/work/configmaps";
    let (code, _) = api
        .post(
            cms,
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cm", "labels": {"keep": "1", "drop": "1"}},
                "data": {"a": "1", "b": "2"}}),
        )
        .await;
    assert_eq!(code, 201);
    let (code, v) = api
        .patch(
            &format!("{cms}/cm"),
            &json!({"metadata": {"labels": {"drop": null}}, "data": {"a": "9", "c": "3"}}),
            MERGE,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["metadata"]["labels"], json!({"keep": "1"}));
    assert_eq!(v["data"], json!({"a": "9", "b": "2", "c": "3"}));

    let (code, v) =
        api.patch(&format!("{cms}/cm"), &json!({"data": {"b": null}}), "application/strategic-merge-patch+json").await;
    assert_eq!(code, 200);
    assert_eq!(v["data"], json!({"a": "9", "c": "3"}));

    let (code, v) = api
        .patch(
            &format!("{cms}/cm"),
            &json!([
                {"op": "test", "path": "/data/a", "value": "9"},
                {"op": "replace", "path": "/data/a", "value": "10"},
                {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]}
            ]),
            "application/json-patch+json",
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["a"], "10");
    assert_eq!(v["metadata"]["finalizers"], json!(["x/y"]));

    let (code, v) = api
        .patch(
            &format!("{cms}/cm"),
            &json!([{"op": "test", "path": "/data/a", "value": "nope"}]),
            "application/json-patch+json",
        )
        .await;
    assert_eq!(code, 422);
    assert_status(&v, 422, "Invalid");

    // resourceVersion precondition inside a patch
    let (code, v) = api
        .patch(&format!("{cms}/cm"), &json!({"metadata": {"resourceVersion": "1"}, "data": {"z": "1"}}), MERGE)
        .await;
    assert_eq!(code, 409);
    assert_status(&v, 409, "Conflict");

    let (code, v) = api.patch(&format!("{cms}/none"), &json!({}), MERGE).await;
    assert_eq!(code, 404);
    assert_status(&v, 404, "NotFound");

    // server-side apply (approximation): fieldManager required; creates
    let apply = "application/apply-patch+yaml";
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "applied"}, "data": {"k": "v"}});
    let (code, _) = api.patch(&format!("{cms}/applied"), &body, apply).await;
    assert_eq!(code, 422);
    let (code, v) = api.patch(&format!("{cms}/applied?fieldManager=test&force=true"), &body, apply).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["data"]["k"], "v");
    let (code, _) = api.raw("PATCH", &format!("{cms}/applied?fieldManager=test"), Some("data:\n  k: v\n"), apply).await;
    assert_eq!(code, 415);

    // dryRun does not persist
    let rv = emu.resource_version();
    let (code, _) = api.patch(&format!("{cms}/cm?dryRun=All"), &json!({"data": {"q": "1"}}), MERGE).await;
    assert_eq!(code, 200);
    assert_eq!(emu.resource_version(), rv);
    assert!(emu.get("configmaps", Some("work"), "cm").unwrap()["data"].get("q").is_none());
    emu.shutdown().await;
}

#[tokio::test]
async fn finalizers_block_deletion_until_removed() {
    let (emu, api) = setup().await;
    let mut j = job("fin", json!({}));
    j["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.post(JOBS, &j).await;
    let mut w = api.watch(&format!("{JOBS}?watch=true")).await;
    assert_eq!(w.next().await["type"], "ADDED");

    let (code, v) = api.delete(&format!("{JOBS}/fin")).await;
    assert_eq!(code, 200);
    assert_eq!(v["kind"], "Job");
    assert!(v["metadata"]["deletionTimestamp"].is_string());
    let e = w.next().await;
    assert_eq!(e["type"], "MODIFIED");
    assert!(e["object"]["metadata"]["deletionTimestamp"].is_string());
    // still there
    let (code, _) = api.get(&format!("{JOBS}/fin")).await;
    assert_eq!(code, 200);
    // deleting again is a no-op
    let rv = emu.resource_version();
    api.delete(&format!("{JOBS}/fin")).await;
    assert_eq!(emu.resource_version(), rv);

    let (code, _) = api.patch(&format!("{JOBS}/fin"), &json!({"metadata": {"finalizers": null}}), MERGE).await;
    assert_eq!(code, 200);
    let e = w.next().await;
    assert_eq!(e["type"], "DELETED");
    let (code, _) = api.get(&format!("{JOBS}/fin")).await;
    assert_eq!(code, 404);

    // delete preconditions
    api.post(JOBS, &job("pc", json!({}))).await;
    let (code, v) = api
        .call(
            "DELETE",
            &format!("{JOBS}/pc"),
            Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1",
                "preconditions": {"uid": "not-the-uid"}, "propagationPolicy": "Background"})),
            "application/json",
        )
        .await;
    assert_eq!(code, 409);
    assert_status(&v, 409, "Conflict");
    emu.shutdown().await;
}

#[tokio::test]
async fn namespace_deletion_terminating_cascade_and_403() {
    let emu = Emulator::start_with(EmulatorConfig {
        namespace_finalize_delay: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let api = Api::new(&emu);
    api.post("/api/v1/namespaces", &ns("doomed")).await;
    let doomed_jobs = "/apis/batch/v1/namespaces/doomed/jobs";
    api.post(doomed_jobs, &job("plain", json!({}))).await;
    let mut held = job("held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.post(doomed_jobs, &held).await;
    api.post(
        "/apis/coordination.k8s.io/v1/namespaces/doomed/leases",
        &json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "l"}, "spec": {}}),
    )
    .await;
    let rv = emu.resource_version();
    let mut nsw = api
        .watch(&format!("/api/v1/namespaces?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Ddoomed"))
        .await;
    let mut jw = api.watch(&format!("/apis/batch/v1/jobs?watch=true&resourceVersion={rv}")).await;

    let (code, v) = api.delete("/api/v1/namespaces/doomed").await;
    assert_eq!(code, 200);
    assert_eq!(v["status"]["phase"], "Terminating");
    assert!(v["metadata"]["deletionTimestamp"].is_string());
    let e = nsw.next().await;
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"]["status"]["phase"], "Terminating");

    // 403 while terminating
    let (code, v) = api.post(doomed_jobs, &job("late", json!({}))).await;
    assert_eq!(code, 403);
    assert_status(&v, 403, "Forbidden");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("unable to create new content in namespace doomed because it is being terminated"));
    assert_eq!(v["details"]["causes"][0]["reason"], "NamespaceTerminating");
    assert!(emu
        .create(
            job("late2", json!({}))
                .as_object()
                .cloned()
                .map(|mut m| {
                    m.get_mut("metadata").unwrap()["namespace"] = json!("doomed");
                    Value::Object(m)
                })
                .unwrap()
        )
        .is_err_and(|e| e.code == 403));

    // cascade: the plain job is DELETED, the held one gets a deletionTimestamp
    let mut plain_deleted = false;
    let mut held_marked = false;
    while !(plain_deleted && held_marked) {
        let e = jw.next().await;
        match (e["type"].as_str().unwrap(), name_of(&e["object"])) {
            ("DELETED", "plain") => plain_deleted = true,
            ("MODIFIED", "held") => {
                assert!(e["object"]["metadata"]["deletionTimestamp"].is_string());
                held_marked = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(emu.get("leases", Some("doomed"), "l").is_none());
    // namespace still terminating while the held job exists
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(emu.get("ns", None, "doomed").unwrap()["status"]["phase"], "Terminating");
    emu.patch("Job", Some("doomed"), "held", json!({"metadata": {"finalizers": []}})).unwrap();
    let e = jw.next().await;
    assert_eq!((e["type"].as_str(), name_of(&e["object"])), (Some("DELETED"), "held"));

    // finalizer removed (MODIFIED), then DELETED
    let e = nsw.next().await;
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"]["spec"]["finalizers"], json!([]));
    let e = nsw.next().await;
    assert_eq!(e["type"], "DELETED");
    assert_eq!(name_of(&e["object"]), "doomed");
    let (code, _) = api.get("/api/v1/namespaces/doomed").await;
    assert_eq!(code, 404);
    // the name can be reused
    let (code, v) = api.post("/api/v1/namespaces", &ns("doomed")).await;
    assert_eq!(code, 201);
    assert_eq!(v["status"]["phase"], "Active");
    emu.shutdown().await;
}

#[tokio::test]
async fn events_are_shared_between_groups() {
    let (emu, api) = setup().await;
    let (code, v) = api
        .post(
            "/apis/events.k8s.io/v1/namespaces/work/events",
            &json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "e1"},
                "eventTime": "2025-01-01T00:00:00.000000Z",
                "regarding": {"kind": "Job", "name": "j", "namespace": "work"},
                "reason": "Started", "note": "job started", "type": "Normal",
                "action": "Run", "reportingController": "ctl", "reportingInstance": "ctl-1"}),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["apiVersion"], "events.k8s.io/v1");
    assert_eq!(v["note"], "job started");
    api.post(
        "/api/v1/namespaces/work/events",
        &json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e2"},
            "involvedObject": {"kind": "Job", "name": "k"}, "reason": "Other",
            "message": "core event", "type": "Warning"}),
    )
    .await;
    let (_, list) = api.get("/api/v1/namespaces/work/events").await;
    assert_eq!(list["kind"], "EventList");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["message"], "job started");
    assert_eq!(items[0]["involvedObject"]["name"], "j");
    let (_, list) = api.get("/apis/events.k8s.io/v1/namespaces/work/events?fieldSelector=regarding.name%3Dk").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["note"], "core event");
    assert_eq!(items[0]["apiVersion"], "events.k8s.io/v1");
    let (_, list) = api.get("/api/v1/events?fieldSelector=involvedObject.kind%3DJob,type%3DWarning").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn fault_injection_and_request_log() {
    let (emu, api) = setup().await;
    emu.clear_requests();
    emu.fail_next("GET", "/apis/batch/v1", 500);
    let (code, v) = api.get(JOBS).await;
    assert_eq!(code, 500);
    assert_status(&v, 500, "InternalError");
    let (code, _) = api.get(JOBS).await;
    assert_eq!(code, 200, "fault fires once");
    emu.fail_next("*", "/api/v1/namespaces", 503);
    let (code, _) = api.post("/api/v1/namespaces", &ns("x")).await;
    assert_eq!(code, 503);
    api.patch("/api/v1/namespaces/work", &json!({"metadata": {"labels": {"a": "b"}}}), MERGE).await;
    let _w = api.watch("/api/v1/namespaces?watch=true&labelSelector=a+in+(b)").await;

    let log = emu.requests();
    assert_eq!(log.len(), 5, "{log:#?}");
    assert_eq!((log[0].method.as_str(), log[0].status), ("GET", 500));
    assert_eq!(log[0].path, JOBS);
    assert_eq!(log[1].status, 200);
    assert_eq!(log[2].status, 503);
    assert_eq!(log[3].method, "PATCH");
    assert_eq!(log[3].content_type.as_deref(), Some(MERGE));
    assert!(log[4].watch);
    assert_eq!(log[4].param("labelSelector"), Some("a in (b)"));
    assert_eq!(log[4].query, "watch=true&labelSelector=a+in+(b)");
    emu.shutdown().await;
}

#[tokio::test]
async fn resets_and_retry_after_faults() {
    let (emu, api) = setup().await;
    let client = common::client();
    let send = |method: &str, path: &str, body: &str| {
        hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", emu.url()))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body.to_owned())))
            .unwrap()
    };
    // A reset before serving: no answer, nothing written.
    emu.inject("POST", "/api/v1/namespaces", kube_emulator::FaultEffect::Reset, false);
    assert!(client.request(send("POST", "/api/v1/namespaces", &ns("a").to_string())).await.is_err());
    assert!(emu.get("Namespace", None, "a").is_none(), "not served");
    // A reset after serving: no answer, but the write landed.
    emu.inject("POST", "/api/v1/namespaces", kube_emulator::FaultEffect::ResetAfterServing, false);
    assert!(client.request(send("POST", "/api/v1/namespaces", &ns("b").to_string())).await.is_err());
    assert!(emu.get("Namespace", None, "b").is_some(), "served");
    // Retry-After: the header and the Status's retryAfterSeconds, as the apiserver.
    emu.inject("GET", JOBS, kube_emulator::FaultEffect::RetryAfter(429, 3), false);
    let resp = client.request(send("GET", JOBS, "")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    let (code, v) = api.get(JOBS).await;
    assert_eq!(code, 200, "one-shot: {v}");
    emu.inject("GET", JOBS, kube_emulator::FaultEffect::RetryAfter(429, 3), false);
    let (code, v) = api.get(JOBS).await;
    assert_eq!(code, 429);
    assert_eq!(v["details"]["retryAfterSeconds"], 3, "{v}");
    let log = emu.requests();
    assert!(log.iter().any(|r| r.method == "POST" && r.status == 0), "a reset is logged with status 0: {log:#?}");
    emu.shutdown().await;
}

#[tokio::test]
async fn control_api_round_trip_and_kubeconfig() {
    let emu = Emulator::start().await;
    let created = emu.create(job("ctl", json!({"a": "b"}))).unwrap();
    assert_eq!(created["metadata"]["namespace"], "default");
    assert_eq!(emu.get("jobs.batch", Some("default"), "ctl").unwrap(), created);
    assert_eq!(emu.list("Job", None).len(), 1);
    assert_eq!(emu.list("ns", None).len(), 4);
    let err = emu.create(job("ctl", json!({}))).unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    let mut stale = created.clone();
    emu.patch("job", Some("default"), "ctl", json!({"spec": {"suspend": true}})).unwrap();
    stale["spec"]["suspend"] = json!(false);
    assert_eq!(emu.replace(stale).unwrap_err().code, 409);
    emu.delete("Job", Some("default"), "ctl").unwrap();
    assert!(emu.get("Job", Some("default"), "ctl").is_none());
    assert!(emu.get("widgets", None, "x").is_none());

    let dir = std::env::temp_dir().join(format!("kube-emulator-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kubeconfig");
    emu.write_kubeconfig(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("server: {}", emu.url())));
    assert!(text.contains("current-context: kube-emulator"));
    assert!(text.contains("token: kube-emulator-token"));
    std::fs::remove_dir_all(&dir).ok();
    emu.shutdown().await;
}

#[tokio::test]
async fn delete_collection() {
    let (emu, api) = setup().await;
    for n in ["a", "b", "c"] {
        api.post(JOBS, &job(n, json!({"grp": if n == "c" { "2" } else { "1" }}))).await;
    }
    let (code, v) = api.delete(&format!("{JOBS}?labelSelector=grp%3D1")).await;
    assert_eq!(code, 200);
    assert_eq!(v["kind"], "JobList");
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    assert_eq!(emu.list("jobs", Some("work")).len(), 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn malformed_bodies_never_crash_the_server() {
    let (emu, api) = setup().await;
    api.post(JOBS, &job("j", json!({}))).await;
    let bodies = [
        json!({"metadata": "x"}),
        json!({"metadata": {"name": 5, "labels": "x", "finalizers": "y"}}),
        json!({"metadata": {"name": "j", "namespace": 7}, "spec": "s", "status": 3}),
        json!({"apiVersion": 1, "kind": [], "metadata": null}),
        json!({"metadata": {"name": "k", "resourceVersion": 12}}),
        json!(null),
        json!("str"),
        json!([{"op": "add", "path": "", "value": 1}]),
        json!([{"op": "add", "path": "/metadata", "value": "x"}]),
        json!([{"op": "bogus", "path": "/a"}]),
        json!([{"op": "replace", "path": "/spec/template/spec/containers/9", "value": 1}]),
    ];
    let cts = [
        "application/json",
        MERGE,
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
        "application/apply-patch+yaml",
    ];
    for body in &bodies {
        for (method, path) in [
            ("POST", JOBS.to_string()),
            ("PUT", format!("{JOBS}/j")),
            ("PUT", format!("{JOBS}/j/status")),
            ("PATCH", format!("{JOBS}/j")),
            ("PATCH", format!("{JOBS}/j/status")),
            ("PATCH", format!("{JOBS}/new?fieldManager=m")),
            ("DELETE", format!("{JOBS}/zz")),
            ("PUT", "/api/v1/namespaces/work/finalize".to_string()),
            ("POST", "/apis/events.k8s.io/v1/namespaces/work/events".to_string()),
        ] {
            for ct in cts {
                let (code, v) = api.call(method, &path, Some(body), ct).await;
                assert!(code < 500, "{method} {path} {ct} {body}: {code} {v}");
                if code >= 400 {
                    assert_eq!(v["kind"], "Status", "{method} {path} {ct} {body}: {v}");
                }
            }
        }
    }
    // The server is still healthy and the namespace still exists.
    let (code, _) = api.get("/api/v1/namespaces/work").await;
    assert_eq!(code, 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn workloads_and_ingresses_are_served_with_generation_and_status() {
    let (emu, api) = setup().await;
    let (_, v) = api.get("/apis").await;
    let groups: Vec<&str> = v["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert!(groups.contains(&"apps") && groups.contains(&"networking.k8s.io"), "{groups:?}");
    let (_, v) = api.get("/apis/apps/v1").await;
    let names: Vec<&str> = v["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    for n in ["deployments", "deployments/status", "statefulsets", "daemonsets"] {
        assert!(names.contains(&n), "{names:?}");
    }
    const DEPLOYS: &str = "/apis/apps/v1/namespaces/work/deployments";
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web:1"}]}}},
        "status": {"availableReplicas": 3}});
    let (code, created) = api.post(DEPLOYS, &d).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["replicas"], 1, "defaulted as the apiserver does");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["status"], json!({}), "status is reset on create");
    // A new image bumps the generation; the controller's status comes through /status.
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    let (_, v) = api.patch(&format!("{DEPLOYS}/web"), &image, MERGE).await;
    assert_eq!(v["metadata"]["generation"], 2);
    let v = emu
        .update_status("deploy", Some("work"), "web", json!({"observedGeneration": 2, "availableReplicas": 1}))
        .unwrap();
    assert_eq!(v["status"]["observedGeneration"], 2);
    let (code, list) = api.get("/apis/apps/v1/namespaces/work/deployments").await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "DeploymentList");
    assert_eq!(list["items"][0]["status"]["availableReplicas"], 1);
    let ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
        "spec": {"rules": [{"host": "web.example.com"}], "tls": [{"hosts": ["web.example.com"]}]}});
    let (code, _) = api.post("/apis/networking.k8s.io/v1/namespaces/work/ingresses", &ing).await;
    assert_eq!(code, 201);
    let (_, list) = api.get("/apis/networking.k8s.io/v1/ingresses").await;
    assert_eq!(list["items"][0]["spec"]["rules"][0]["host"], "web.example.com");
    emu.shutdown().await;
}
