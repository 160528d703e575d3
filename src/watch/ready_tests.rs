use super::*;

fn w(kind: Kind, name: &str, image: &str) -> Workload {
    let images = if image.is_empty() { BTreeMap::new() } else { [("main".to_string(), image.to_string())].into() };
    Workload { kind, name: name.into(), agent: false, images }
}

fn tree(stages: Vec<(&str, Vec<Workload>)>) -> SlotTree {
    SlotTree {
        env: "ai".into(),
        slot: "pr-1".into(),
        namespace: "shop-pr-1".into(),
        host: None,
        rendering: rendering(Some("r1"), "0123456789abcdef0123"),
        stages: stages.into_iter().map(|(dir, workloads)| Stage { dir: dir.into(), workloads }).collect(),
    }
}

fn template(image: &str) -> Value {
    json!({"spec": {"containers": [{"name": "main", "image": image}]}})
}

fn deploy(name: &str, image: &str, generation: i64, status: Value) -> Value {
    json!({"metadata": {"name": name, "generation": generation},
        "spec": {"replicas": 2, "selector": {}, "template": template(image)}, "status": status})
}

fn job(name: &str, status: Value) -> Job {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"backoffLimit": 0, "template": template("m")},
        "status": status}))
    .unwrap()
}

fn why(s: &State) -> String {
    match s {
        State::Waiting { object, why } | State::Failed { object, why } => format!("{object}: {why}"),
        State::Ready => "ready".into(),
    }
}

#[test]
fn a_deployment_is_ready_once_its_rollout_completed_with_the_trees_image() {
    let wl = w(Kind::Deployment, "api", "api:2");
    let cases = [
        (
            deploy(
                "api",
                "api:1",
                1,
                json!({"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 2, "replicas": 2}),
            ),
            "Deployment/api: container main runs api:1, the tree has api:2: not applied yet",
        ),
        (
            deploy("api", "api:2", 2, json!({"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 2})),
            "Deployment/api: generation 2 not observed yet (observed 1)",
        ),
        (
            deploy("api", "api:2", 2, json!({"observedGeneration": 2, "updatedReplicas": 1, "availableReplicas": 2})),
            "Deployment/api: 1 of 2 replicas updated",
        ),
        (
            deploy(
                "api",
                "api:2",
                2,
                json!({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 3, "availableReplicas": 2}),
            ),
            "Deployment/api: 1 old replicas pending termination",
        ),
        (
            deploy(
                "api",
                "api:2",
                2,
                json!({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 1}),
            ),
            "Deployment/api: 1 of 2 replicas available",
        ),
        (
            deploy(
                "api",
                "api:2",
                2,
                json!({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2}),
            ),
            "ready",
        ),
    ];
    for (d, want) in cases {
        let observed = Observed { deployments: [("api".to_string(), d)].into(), ..Default::default() };
        assert_eq!(why(&check(&wl, &observed)), want);
    }
    assert_eq!(why(&check(&wl, &Observed::default())), "Deployment/api: not in the cluster yet");
}

#[test]
fn a_deployment_past_its_progress_deadline_has_failed() {
    let d = deploy(
        "api",
        "api:2",
        1,
        json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"api-1\" has timed out progressing."}]}),
    );
    let observed = Observed { deployments: [("api".to_string(), d)].into(), ..Default::default() };
    let s = check(&w(Kind::Deployment, "api", "api:2"), &observed);
    assert!(matches!(s, State::Failed { .. }), "{s:?}");
    assert!(why(&s).contains("progress deadline exceeded: ReplicaSet \"api-1\" has timed out"), "{}", why(&s));
}

#[test]
fn statefulsets_and_daemonsets_wait_for_ready_updated_replicas() {
    let sts = json!({"metadata": {"name": "db", "generation": 1},
        "spec": {"selector": {}, "serviceName": "db", "template": template("pg")},
        "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                   "currentRevision": "db-1", "updateRevision": "db-2"}});
    let mut observed = Observed { statefulsets: [("db".to_string(), sts.clone())].into(), ..Default::default() };
    let wl = w(Kind::StatefulSet, "db", "pg");
    assert_eq!(why(&check(&wl, &observed)), "StatefulSet/db: revision db-2 rolling out (current db-1)");
    let mut done = sts;
    done["status"]["currentRevision"] = json!("db-2");
    observed.statefulsets.insert("db".into(), done);
    assert_eq!(check(&wl, &observed), State::Ready);

    let ds = json!({"metadata": {"name": "agent", "generation": 1},
        "spec": {"selector": {}, "template": template("x")},
        "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                   "numberMisscheduled": 0, "numberReady": 3, "updatedNumberScheduled": 3, "numberAvailable": 2}});
    let observed = Observed { daemonsets: [("agent".to_string(), ds)].into(), ..Default::default() };
    assert_eq!(why(&check(&w(Kind::DaemonSet, "agent", "x"), &observed)), "DaemonSet/agent: 2 of 3 pods available");
}

#[test]
fn jobs_must_complete_and_the_agent_job_must_start() {
    let mut agent = w(Kind::Job, "agent-r1", "");
    agent.agent = true;
    let migrate = w(Kind::Job, "migrate-1a2b3c4d", "");
    let obs = |name: &str, status: Value| Observed {
        jobs: [(name.to_string(), job(name, status))].into(),
        ..Default::default()
    };
    assert_eq!(
        why(&check(&migrate, &obs("migrate-1a2b3c4d", json!({"active": 1})))),
        "Job/migrate-1a2b3c4d: not complete yet (1 active)"
    );
    assert_eq!(check(&migrate, &obs("migrate-1a2b3c4d", json!({"succeeded": 1}))), State::Ready);
    let failed = check(
        &migrate,
        &obs(
            "migrate-1a2b3c4d",
            json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
        ),
    );
    assert_eq!(
        failed,
        State::Failed {
            object: "Job/migrate-1a2b3c4d".into(),
            why: "failed: BackoffLimitExceeded (Job has reached the specified backoff limit)".into()
        }
    );
    assert_eq!(why(&check(&agent, &obs("agent-r1", json!({})))), "Job/agent-r1: not started yet");
    assert_eq!(check(&agent, &obs("agent-r1", json!({"active": 1}))), State::Ready, "started is enough");
    assert!(matches!(check(&agent, &obs("agent-r1", json!({"failed": 1}))), State::Failed { .. }));
}

#[test]
fn a_stage_without_workloads_is_ready_and_stages_count_in_order() {
    let t =
        tree(vec![("00-stateful", vec![]), ("10-migrations", vec![w(Kind::Job, "m", "")]), ("20-internal", vec![])]);
    let states = evaluate(&t, &Observed::default());
    assert_eq!(states[0].state, State::Ready);
    assert!(matches!(states[1].state, State::Waiting { .. }));
    assert_eq!(states[2].state, State::Ready, "its own state");
    let prefix: Vec<&str> = ready_prefix(&states).map(|s| s.stage.as_str()).collect();
    assert_eq!(prefix, ["00-stateful"], "20-internal waits for 10-migrations");
}

#[test]
fn a_failed_workload_decides_its_stage_over_a_waiting_one() {
    let t = tree(vec![("10-migrations", vec![w(Kind::Job, "a", ""), w(Kind::Job, "b", "")])]);
    let observed = Observed { jobs: [("b".to_string(), job("b", json!({"failed": 1})))].into(), ..Default::default() };
    assert!(matches!(&evaluate(&t, &observed)[0].state, State::Failed { object, .. } if object == "Job/b"));
}

#[test]
fn each_stage_is_recorded_once_per_rendering() {
    let t = tree(vec![("00-stateful", vec![]), ("10-migrations", vec![w(Kind::Job, "m", "")])]);
    let t0: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    let t1: Timestamp = "2030-01-01T00:05:00Z".parse().unwrap();
    let mut ann: BTreeMap<String, String> = BTreeMap::new();
    let states = evaluate(&t, &Observed::default());
    let r = decide(&ann, &t, &states, t0).unwrap();
    assert!(r.reset);
    assert_eq!(r.ready, ["00-stateful"]);
    assert_eq!(
        r.patch,
        json!({"metadata": {"annotations": {RENDERING: "r1/0123456789abcdef", "codex-k8s.io/ready.00-stateful": "2030-01-01T00:00:00Z"}}})
    );
    ann.insert(RENDERING.into(), t.rendering.clone());
    ann.insert("codex-k8s.io/ready.00-stateful".into(), t0.to_string());
    assert_eq!(decide(&ann, &t, &states, t1), None, "already recorded: nothing to write");

    let done = Observed { jobs: [("m".to_string(), job("m", json!({"succeeded": 1})))].into(), ..Default::default() };
    let r = decide(&ann, &t, &evaluate(&t, &done), t1).unwrap();
    assert!(!r.reset);
    assert_eq!(
        r.patch,
        json!({"metadata": {"annotations": {"codex-k8s.io/ready.10-migrations": "2030-01-01T00:05:00Z"}}})
    );

    // A new rendering (another run id) clears what the old one recorded.
    ann.insert("codex-k8s.io/ready.10-migrations".into(), t1.to_string());
    let mut t2 = t.clone();
    t2.rendering = rendering(Some("r2"), "0123456789abcdef0123");
    let r = decide(&ann, &t2, &evaluate(&t2, &Observed::default()), t1).unwrap();
    assert!(r.reset);
    assert_eq!(
        r.patch,
        json!({"metadata": {"annotations": {
            "codex-k8s.io/ready.00-stateful": "2030-01-01T00:05:00Z",
            "codex-k8s.io/ready.10-migrations": null,
            RENDERING: "r2/0123456789abcdef",
        }}})
    );
}

#[test]
fn stage_keys_stay_valid_annotation_names() {
    assert_eq!(stage_key("10-migrations"), "codex-k8s.io/ready.10-migrations");
    let long = format!("20-{}", "a-".repeat(40));
    let key = stage_key(&long);
    let name = key.strip_prefix("codex-k8s.io/").unwrap();
    assert!(name.len() <= 63 && name.ends_with('a') && name.starts_with("ready.20-a"), "{key}");
}
