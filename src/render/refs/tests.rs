//! Unit tests of the reference checks, one per reference class.

use super::*;
use crate::render::object::ObjectId;

fn objects(yaml: &str) -> Vec<RenderedObject> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| {
            let value = <serde_yaml::Value as serde::Deserialize>::deserialize(d).unwrap();
            RenderedObject {
                id: ObjectId::of(&value).unwrap(),
                component: "c".into(),
                stage: "internal".into(),
                stage_index: 2,
                wave: 20,
                template: None,
                value,
            }
        })
        .collect()
}

fn misses(yaml: &str) -> Vec<String> {
    check(&objects(yaml), &prereqs(), &Provided::default()).into_iter().map(|m| m.message).collect()
}

fn prereqs() -> Prerequisites {
    Prerequisites {
        ingress_classes: vec!["nginx".into()],
        cluster_issuers: vec!["letsencrypt".into()],
        storage_classes: vec!["fast".into()],
        priority_classes: vec!["high".into()],
        crds: vec!["external-secrets.io/ExternalSecret".into()],
    }
}

fn deployment(spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: api}}\nspec:\n  selector: {{matchLabels: {{app: api}}}}\n  template:\n    metadata: {{labels: {{app: api}}}}\n    spec:\n{spec}"
    )
}

fn one(yaml: &str) -> String {
    let m = misses(yaml);
    assert_eq!(m.len(), 1, "{m:#?}");
    m[0].clone()
}

#[test]
fn a_secret_key_ref_resolves_to_a_rendered_secret_and_its_keys() {
    let env = "      containers:\n      - name: app\n        env:\n        - name: P\n          valueFrom: {secretKeyRef: {name: db, key: password}}\n";
    let m = one(&deployment(env));
    assert!(
        m.contains(
            "Deployment `api` reads key `password` of Secret `db` (env `P` of container `app`), which nothing creates"
        ),
        "{m}"
    );
    let with = format!(
        "{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\ndata: {{password: eA==}}\n",
        deployment(env)
    );
    assert!(misses(&with).is_empty());
    let wrong_key = with.replace("{password: eA==}", "{pass: eA==}");
    assert!(
        one(&wrong_key).contains("reads key `password` of Secret `db` (env `P` of container `app`), but it has `pass`")
    );
    assert!(misses(&deployment(&env.replace("key: password}", "key: password, optional: true}"))).is_empty());
}

#[test]
fn a_config_map_key_ref_and_env_from_resolve_to_rendered_config_maps() {
    let env = "      containers:\n      - name: app\n        env:\n        - name: A\n          valueFrom: {configMapKeyRef: {name: cfg, key: a}}\n        envFrom:\n        - configMapRef: {name: other}\n        - secretRef: {name: creds}\n        - secretRef: {name: maybe, optional: true}\n";
    let m = misses(&deployment(env));
    assert_eq!(m.len(), 3, "{m:#?}");
    assert!(m[0].contains("reads key `a` of ConfigMap `cfg`"));
    assert!(m[1].contains("reads ConfigMap `other` (envFrom of container `app`)"));
    assert!(m[2].contains("reads Secret `creds` (envFrom of container `app`)"));
    let cms = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: creds}\n";
    assert!(misses(&format!("{}{cms}", deployment(env))).is_empty());
}

#[test]
fn volumes_resolve_with_their_items_keys_and_the_root_ca_config_map() {
    let vols = "      containers: [{name: app}]\n      volumes:\n      - name: s\n        secret: {secretName: certs, items: [{key: ca, path: ca}]}\n      - name: c\n        configMap: {name: kube-root-ca.crt, items: [{key: ca.crt, path: ca.crt}]}\n      - name: p\n        projected:\n          sources:\n          - configMap: {name: kube-root-ca.crt, items: [{key: nope, path: x}]}\n          - secret: {name: gone, optional: true}\n      - name: d\n        persistentVolumeClaim: {claimName: data}\n";
    let m = misses(&deployment(vols));
    assert_eq!(m.len(), 3, "{m:#?}");
    assert!(m[0].contains("reads key `ca` of Secret `certs` (volume `s`)"));
    assert!(
        m[1].contains("reads key `nope` of ConfigMap `kube-root-ca.crt` (projected volume `p`), but it has `ca.crt`")
    );
    assert!(m[2].contains("mounts PersistentVolumeClaim `data` (volume `d`)"));
}

#[test]
fn pull_secrets_and_service_accounts_resolve_and_default_is_always_there() {
    let spec =
        "      serviceAccountName: robot\n      imagePullSecrets: [{name: pull}]\n      containers: [{name: app}]\n";
    let m = misses(&deployment(spec));
    assert_eq!(m.len(), 2, "{m:#?}");
    assert!(m[0].contains("runs as ServiceAccount `robot` (serviceAccountName)"));
    assert!(m[1].contains("reads Secret `pull` (imagePullSecrets)"));
    assert!(misses(&deployment("      serviceAccountName: default\n      containers: [{name: app}]\n")).is_empty());
}

#[test]
fn a_statefulset_claim_resolves_by_the_template_naming_rule() {
    let sts = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: db}]}\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {storageClassName: fast}\n---\n";
    let reader = |claim: &str| {
        format!("{sts}{}", deployment(&format!("      containers: [{{name: app}}]\n      volumes: [{{name: d, persistentVolumeClaim: {{claimName: {claim}}}}}]\n")))
    };
    assert!(misses(&reader("data-db-0")).is_empty());
    assert_eq!(misses(&reader("data-db-x")).len(), 1);
    assert_eq!(misses(&reader("data-other-0")).len(), 1);
}

#[test]
fn a_service_selects_some_pod_and_its_named_target_port_exists() {
    let app = deployment("      containers: [{name: app, ports: [{name: http, containerPort: 8080}]}]\n");
    let svc = |sel: &str, port: &str| {
        format!("{app}---\napiVersion: v1\nkind: Service\nmetadata: {{name: api}}\nspec:\n  selector: {{{sel}}}\n  ports: [{{port: 80, targetPort: {port}}}]\n")
    };
    assert!(misses(&svc("app: api", "http")).is_empty());
    assert!(misses(&svc("app: api", "8080")).is_empty());
    assert!(one(&svc("app: apj", "http")).contains("Service `api` selects no pod of the target ({\"app\":\"apj\"})"));
    assert!(one(&svc("app: api", "grpc")).contains("targets port `grpc`, but no container of the pods it selects"));
}

#[test]
fn a_named_probe_port_is_a_port_of_the_container() {
    let spec = "      containers:\n      - name: app\n        ports: [{name: http, containerPort: 80}]\n        readinessProbe: {httpGet: {path: /, port: http}}\n        livenessProbe: {tcpSocket: {port: htp}}\n        startupProbe: {httpGet: {path: /, port: 80}}\n";
    assert!(one(&deployment(spec)).contains("probes port `htp` (livenessProbe of container `app`), but the container has no port of that name (it has `http`)"));
}

#[test]
fn an_ingress_routes_to_a_service_port_and_its_tls_secret_comes_from_cert_manager() {
    let app = deployment("      containers: [{name: app, ports: [{name: http, containerPort: 8080}]}]\n");
    let svc = "---\napiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec: {selector: {app: api}, ports: [{name: http, port: 80, targetPort: http}]}\n";
    let ingress = |annotations: &str, port: &str| {
        format!("{app}{svc}---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: web, annotations: {{{annotations}}}}}\nspec:\n  ingressClassName: nginx\n  tls: [{{hosts: [a.example], secretName: web-tls}}]\n  rules:\n  - host: a.example\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: api, port: {port}}}}}}}, {{path: /x, pathType: Prefix, backend: {{service: {{name: gone, port: {{number: 80}}}}}}}}]}}\n")
    };
    let check_with = |yaml: &str| -> Vec<String> {
        check(&objects(yaml), &prereqs(), &Provided::default()).into_iter().map(|m| m.message).collect()
    };
    let m = check_with(&ingress("cert-manager.io/cluster-issuer: letsencrypt", "{name: http}"));
    assert_eq!(m, vec!["Ingress `web` routes to Service `gone`, which nothing creates".to_owned()]);
    let m = check_with(&ingress("", "{number: 81}"));
    assert_eq!(m.len(), 3, "{m:#?}");
    assert!(m[0].contains("reads Secret `web-tls` (TLS)"));
    assert!(m[1].contains("routes to port 81 of Service `api`, which has no such port (it has `http`)"));
    let m = check_with(&ingress("cert-manager.io/issuer: local", "{name: http}"));
    assert!(m[0].contains("names cert-manager Issuer `local`, which nothing creates"), "{m:#?}");
}

#[test]
fn hpa_and_pdb_targets_are_objects_and_pods_of_the_target() {
    let app = deployment("      containers: [{name: app}]\n");
    let hpa = |name: &str| {
        format!("{app}---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: api}}\nspec: {{scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}, maxReplicas: 3}}\n")
    };
    assert!(misses(&hpa("api")).is_empty());
    assert!(one(&hpa("apu")).contains("HorizontalPodAutoscaler `api` scales Deployment `apu` (scaleTargetRef)"));
    let pdb = |sel: &str| {
        format!("{app}---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: api}}\nspec: {{minAvailable: 1, selector: {sel}}}\n")
    };
    assert!(misses(&pdb("{matchLabels: {app: api}}")).is_empty());
    assert!(misses(&pdb("{matchExpressions: [{key: app, operator: In, values: [api, web]}]}")).is_empty());
    assert!(one(&pdb("{matchExpressions: [{key: app, operator: NotIn, values: [api]}]}")).contains("selects no pod"));
}

#[test]
fn an_external_secret_creates_its_target_secret_with_its_keys() {
    let reader = deployment("      containers:\n      - name: app\n        env:\n        - name: P\n          valueFrom: {secretKeyRef: {name: db, key: password}}\n");
    let es = |spec: &str| {
        format!("{reader}---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: db-es}}\nspec: {spec}\n")
    };
    let run = |yaml: &str| -> Vec<String> {
        check(&objects(yaml), &prereqs(), &Provided::default()).into_iter().map(|m| m.message).collect()
    };
    assert!(run(&es("{target: {name: db}, data: [{secretKey: password, remoteRef: {key: x}}]}")).is_empty());
    assert!(run(&es("{target: {name: db}, data: [{secretKey: user, remoteRef: {key: x}}]}"))[0]
        .contains("but it has `user`"));
    assert!(run(&es("{target: {name: db}, dataFrom: [{extract: {key: x}}]}")).is_empty());
    assert!(run(&es("{target: {name: db, template: {type: Opaque}}, data: []}")).is_empty());
    assert!(
        run(&es("{data: [{secretKey: password, remoteRef: {key: x}}]}"))[0].contains("Secret `db`"),
        "defaults to its own name"
    );
}

#[test]
fn a_secret_provided_out_of_band_resolves_with_its_keys_when_declared() {
    let reader = deployment("      containers:\n      - name: app\n        env:\n        - name: P\n          valueFrom: {secretKeyRef: {name: db, key: password}}\n");
    let run = |keys: Keys| {
        let provided = Provided { secrets: [("db".to_owned(), keys)].into() };
        check(&objects(&reader), &Prerequisites::default(), &provided).len()
    };
    assert_eq!(run(Keys::Any), 0);
    assert_eq!(run(Keys::of(["password"])), 0);
    assert_eq!(run(Keys::of(["user"])), 1);
}

#[test]
fn cluster_names_resolve_to_declared_prerequisites_or_rendered_objects() {
    let yaml = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: w}\nspec: {storageClassName: nfs}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: v}\nspec: {storageClassName: ''}\n---\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m}\n---\n"
        .to_owned()
        + &deployment("      priorityClassName: low\n      containers: [{name: app}]\n")
        + "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: e}\nspec: {dataFrom: [{extract: {key: k}}]}\n";
    let m: Vec<String> =
        check(&objects(&yaml), &prereqs(), &Provided::default()).into_iter().map(|m| m.message).collect();
    assert_eq!(m.len(), 3, "{m:#?}");
    assert!(m[0].contains("PersistentVolumeClaim `w` needs StorageClass `nfs` (storageClassName), which is not a declared cluster prerequisite"));
    assert!(m[1].contains("ServiceMonitor `m` needs the CRD of `monitoring.coreos.com/ServiceMonitor` (kind)"));
    assert!(m[2].contains("needs PriorityClass `low` (priorityClassName)"));
    let used = needs(&objects(&yaml));
    assert_eq!(used.storage_classes.iter().collect::<Vec<_>>(), ["nfs"]);
    assert_eq!(
        used.crds.iter().collect::<Vec<_>>(),
        ["external-secrets.io/ExternalSecret", "monitoring.coreos.com/ServiceMonitor"]
    );
    let own = yaml + "---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: nfs}\nprovisioner: x\n";
    assert!(needs(&objects(&own)).storage_classes.is_empty(), "a class the target renders is no prerequisite");
}

#[test]
fn a_reference_is_located_at_the_template_line_that_writes_it() {
    let source = "{#- name: db in a comment\n  still comment -#}\napiVersion: v1\n  env:\n    - name: db\n";
    assert_eq!(locate(source, "Secret", &["name: db".into()]), Some((5, 7)));
    assert_eq!(locate(source, "Secret", &["nothing".into()]), Some((3, 1)), "the first line of template text");
    let two = "kind: Deployment\nmetadata: {name: api}\n---\nkind: HorizontalPodAutoscaler\nmetadata: {name: api}\n";
    assert_eq!(locate(two, "HorizontalPodAutoscaler", &["name: api".into()]), Some((5, 12)), "searched from its kind");
    assert_eq!(locate(two, "Service", &["name: api".into()]), Some((2, 12)), "then in the whole file");
    assert_eq!(locate(two, "HorizontalPodAutoscaler", &[]), Some((4, 1)), "else at its kind");
}
