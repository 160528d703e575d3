//! Wire compatibility with the real `kube` client and `kube-runtime` watcher,
//! connected through a kubeconfig exactly as against a real cluster.

use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Namespace};
use k8s_openapi::api::events::v1::Event as EventV1;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Client, Config, Resource, ResourceExt};
use kube_emulator::{Emulator, EmulatorConfig};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::mpsc;

async fn client(emu: &Emulator) -> Client {
    let dir = std::env::temp_dir().join(format!("kube-emulator-kc-{}-{}", std::process::id(), emu.addr().port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config");
    emu.write_kubeconfig(&path).unwrap();
    let kc = Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
    assert_eq!(config.default_namespace, "default");
    std::fs::remove_dir_all(&dir).ok();
    Client::try_from(config).unwrap()
}

/// Run a watcher in the background and forward its events as strings
/// (`Init`, `InitApply:name`, `InitDone`, `Apply:name:phase`, `Delete:name`,
/// `Error:...`).
fn spawn_watcher<K>(api: Api<K>, cfg: watcher::Config) -> mpsc::UnboundedReceiver<String>
where
    K: Resource + ResourceExt + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = watcher(api, cfg).boxed();
        while let Some(item) = stream.next().await {
            let s = match item {
                Ok(watcher::Event::Init) => "Init".to_string(),
                Ok(watcher::Event::InitApply(o)) => format!("InitApply:{}", o.name_any()),
                Ok(watcher::Event::InitDone) => "InitDone".to_string(),
                Ok(watcher::Event::Apply(o)) => format!(
                    "Apply:{}:{}",
                    o.name_any(),
                    if o.meta().deletion_timestamp.is_some() { "deleting" } else { "live" }
                ),
                Ok(watcher::Event::Delete(o)) => format!("Delete:{}", o.name_any()),
                Err(e) => format!("Error:{e}"),
            };
            if tx.send(s).is_err() {
                return;
            }
        }
    });
    rx
}

async fn expect(rx: &mut mpsc::UnboundedReceiver<String>, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(s)) => {
                let hit = s == want || (want.ends_with('*') && s.starts_with(&want[..want.len() - 1]));
                seen.push(s);
                if hit {
                    return seen;
                }
            }
            other => panic!("waiting for {want}: got {other:?} after {seen:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_watcher_lists_watches_and_relists_after_410() {
    let emu = Emulator::start().await;
    let client = client(&emu).await;
    let info = client.apiserver_version().await.unwrap();
    assert_eq!(info.major, "1");

    let nss: Api<Namespace> = Api::all(client.clone());
    let mut rx = spawn_watcher(nss.clone(), watcher::Config::default());
    let init = expect(&mut rx, "InitDone").await;
    assert_eq!(
        init,
        [
            "Init",
            "InitApply:default",
            "InitApply:kube-node-lease",
            "InitApply:kube-public",
            "InitApply:kube-system",
            "InitDone"
        ]
    );
    // The watcher lists, then watches from the list's resourceVersion.
    assert!(emu.wait_until(Duration::from_secs(5), |e| e.open_watches() == 1).await);
    let log = emu.requests();
    let list = log.iter().find(|r| r.path == "/api/v1/namespaces" && !r.watch).unwrap();
    assert_eq!(list.status, 200);
    let watch = log.iter().find(|r| r.path == "/api/v1/namespaces" && r.watch).unwrap();
    assert_eq!(watch.param("allowWatchBookmarks"), Some("true"));
    assert!(watch.param("resourceVersion").is_some());

    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "kw"}})).unwrap();
    let created = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    expect(&mut rx, "Apply:kw:live").await;

    // Deleting a namespace: Terminating, then gone.
    let deleted = nss.delete("kw", &DeleteParams::default()).await.unwrap();
    let terminating = deleted.left().expect("namespace delete returns the object");
    assert_eq!(terminating.status.unwrap().phase.as_deref(), Some("Terminating"));
    expect(&mut rx, "Apply:kw:deleting").await;
    expect(&mut rx, "Delete:kw").await;

    // A clean close of the watch: the watcher resumes without relisting.
    emu.drop_watches();
    assert!(
        emu.wait_until(Duration::from_secs(5), |e| e.open_watches() == 1
            && e.requests().iter().filter(|r| r.watch).count() == 2)
            .await
    );
    nss.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "after-drop"}})).unwrap())
        .await
        .unwrap();
    let seen = expect(&mut rx, "Apply:after-drop:live").await;
    assert!(!seen.contains(&"Init".to_string()), "{seen:?}");

    // 410 Expired on re-watch forces a relist.
    emu.clear_requests();
    emu.expire_watches();
    let seen = expect(&mut rx, "InitDone").await;
    assert!(seen.iter().any(|s| s.starts_with("Error:")), "{seen:?}");
    assert!(seen.contains(&"Init".to_string()), "{seen:?}");
    assert!(seen.contains(&"InitApply:after-drop".to_string()), "{seen:?}");
    let log = emu.requests();
    assert!(log.iter().any(|r| !r.watch && r.path == "/api/v1/namespaces"), "{log:#?}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_watcher_streaming_list() {
    let emu =
        Emulator::start_with(EmulatorConfig { bookmark_interval: Duration::from_millis(200), ..Default::default() })
            .await;
    let client = client(&emu).await;
    let nss: Api<Namespace> = Api::all(client);
    let mut rx = spawn_watcher(
        nss,
        watcher::Config::default().streaming_lists().labels("kubernetes.io/metadata.name in (default,kube-system)"),
    );
    let seen = expect(&mut rx, "InitDone").await;
    assert_eq!(seen, ["Init", "InitApply:default", "InitApply:kube-system", "InitDone"]);
    let r = emu.requests();
    assert!(r.iter().all(|r| r.watch), "streaming list never lists: {r:#?}");
    assert_eq!(r[0].param("sendInitialEvents"), Some("true"));
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_lease_replace_conflict() {
    let emu = Emulator::start().await;
    let client = client(&emu).await;
    let leases: Api<Lease> = Api::default_namespaced(client);
    assert!(leases.get_opt("leader").await.unwrap().is_none());
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                 "renewTime": "2025-01-01T00:00:00.000000Z"}
    }))
    .unwrap();
    let v1 = leases.create(&PostParams::default(), &lease).await.unwrap();
    let err = leases.create(&PostParams::default(), &lease).await.unwrap_err();
    match err {
        kube::Error::Api(s) => assert!(s.is_already_exists(), "{s:?}"),
        other => panic!("{other:?}"),
    }

    let mut mine = v1.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let v2 = leases.replace("leader", &PostParams::default(), &mine).await.unwrap();
    assert_ne!(v2.resource_version(), v1.resource_version());

    // Another candidate still holding v1's resourceVersion loses.
    let mut theirs = v1.clone();
    theirs.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let err = leases.replace("leader", &PostParams::default(), &theirs).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert!(s.is_conflict(), "{s:?}");
        }
        other => panic!("{other:?}"),
    }
    let cur = leases.get("leader").await.unwrap();
    assert_eq!(cur.spec.unwrap().holder_identity.as_deref(), Some("b"));
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_jobs_events_patch_and_reflector() {
    let emu = Emulator::start().await;
    let client = client(&emu).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "ci"}})).unwrap())
        .await
        .unwrap();

    let jobs: Api<Job> = Api::namespaced(client.clone(), "ci");
    let (reader, writer) = reflector::store::<Job>();
    let refl = reflector(writer, watcher(Api::<Job>::all(client.clone()), watcher::Config::default().labels("app=x")))
        .applied_objects();
    let refl_task = tokio::spawn(async move {
        futures::pin_mut!(refl);
        while refl.next().await.is_some() {}
    });
    reader.wait_until_ready().await.unwrap();

    for (name, app) in [("one", "x"), ("two", "y")] {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}
        }))
        .unwrap();
        let j = jobs.create(&PostParams::default(), &job).await.unwrap();
        assert_eq!(j.spec.unwrap().backoff_limit, Some(6));
    }
    let listed = jobs.list(&ListParams::default().labels("app=x")).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].name_any(), "one");

    let patched = jobs
        .patch_status("one", &PatchParams::default(), &Patch::Merge(json!({"status": {"succeeded": 1}})))
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().succeeded, Some(1));
    emu.update_status("Job", Some("ci"), "one", json!({"succeeded": 1, "failed": 2})).unwrap();
    let ok = emu
        .wait_until(Duration::from_secs(5), |_| {
            reader.state().len() == 1 && reader.state()[0].status.as_ref().and_then(|s| s.failed) == Some(2)
        })
        .await;
    assert!(ok, "reflector sees the status update: {:?}", reader.state());

    // Server-side apply (approximated as create-or-merge).
    let applied = jobs
        .patch(
            "three",
            &PatchParams::apply("test").force(),
            &Patch::Apply(json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "three", "labels": {"app": "x"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}]}}}
            })),
        )
        .await
        .unwrap();
    assert_eq!(applied.name_any(), "three");
    assert!(emu.wait_until(Duration::from_secs(5), |_| reader.state().len() == 2).await);

    // Job delete returns a Status; the reflector drops it.
    let res = jobs.delete("three", &DeleteParams::background()).await.unwrap();
    assert!(res.is_right());
    assert!(emu.wait_until(Duration::from_secs(5), |_| reader.state().len() == 1).await);

    // events.k8s.io/v1 and core/v1 views of the same events.
    let ev: Api<EventV1> = Api::namespaced(client.clone(), "ci");
    ev.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "one.1"},
            "eventTime": "2025-01-01T00:00:00.000000Z",
            "regarding": {"apiVersion": "batch/v1", "kind": "Job", "name": "one", "namespace": "ci"},
            "reason": "Completed", "note": "done", "type": "Normal", "action": "Finish",
            "reportingController": "ctl", "reportingInstance": "ctl-0"
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let core: Api<CoreEvent> = Api::all(client.clone());
    let list = core.list(&ListParams::default().fields("involvedObject.name=one")).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].message.as_deref(), Some("done"));
    assert_eq!(list.items[0].involved_object.kind.as_deref(), Some("Job"));

    refl_task.abort();
    emu.shutdown().await;
}
