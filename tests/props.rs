//! Property tests (proptest) of the renderer's contracts:
//!
//! - render is deterministic: the same project gives byte-identical trees at
//!   1 and 4 render threads, whatever order its files were created in, and
//!   whatever order its components are listed in;
//! - render is idempotent: applying a render twice changes nothing the
//!   second time, and `changes` then reports nothing;
//! - `diff(a, a)` is empty, and `diff(a, b)` applied to a's objects (by
//!   identity) gives b's;
//! - YAML round trips: positioned load → `render::emit::to_yaml` → load gives
//!   the same value; durations: humantime format → `parse_duration`.
//!
//! Projects and object sets are generated at moderate size and case counts
//! are kept small, so the whole file runs in seconds.

use std::collections::BTreeMap;
use std::path::Path;

use codex_k8s::diff::{diff, Kind, Snapshot};
use codex_k8s::inventory::Inventory;
use codex_k8s::render::{render_targets, Request, Target};
use codex_k8s::template::Engine;
use proptest::prelude::*;
use serde_yaml::{Mapping, Value};

const STAGES: [&str; 5] = ["stateful", "migrations", "internal", "edge", "frontend"];

/// Strings that trip YAML emitters and readers.
fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("no".to_owned()),
        Just("on".to_owned()),
        Just("0755".to_owned()),
        Just("1e3".to_owned()),
        Just("a: b".to_owned()),
        Just("#x".to_owned()),
        Just("- x".to_owned()),
        Just("".to_owned()),
        Just("null".to_owned()),
        Just("~".to_owned()),
        Just("line1\nline2\n".to_owned()),
        Just("  lead\ntrail  ".to_owned()),
        Just("tab\there".to_owned()),
        Just("it's \"quoted\"".to_owned()),
        Just("ünï ☃".to_owned()),
        "[a-z][a-z0-9 ./:-]{0,12}",
    ]
}

#[derive(Debug, Clone)]
struct Comp {
    name: String,
    stage: usize,
    deps: Vec<usize>,
    /// (kind, data) per manifest file.
    objects: Vec<(&'static str, Vec<String>)>,
}

#[derive(Debug, Clone)]
struct Project {
    comps: Vec<Comp>,
    vars: Vec<String>,
    replicas: u32,
}

fn project() -> impl Strategy<Value = Project> {
    let comp = (
        0..STAGES.len(),
        proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
        proptest::collection::vec(
            (
                prop::sample::select(vec!["ConfigMap", "Deployment", "Service", "Job"]),
                proptest::collection::vec(tricky_string(), 0..4),
            ),
            1..4,
        ),
    );
    (proptest::collection::vec(comp, 1..6), proptest::collection::vec(tricky_string(), 1..4), 1u32..5).prop_map(
        |(raw, vars, replicas)| {
            let mut raw = raw;
            raw.sort_by_key(|c| c.0);
            let mut comps: Vec<Comp> = Vec::new();
            for (i, (stage, deps, objects)) in raw.into_iter().enumerate() {
                // Depend only on earlier components (same or earlier stage): no cycles.
                let mut d: Vec<usize> = if i == 0 { Vec::new() } else { deps.iter().map(|x| x.index(i)).collect() };
                d.sort();
                d.dedup();
                comps.push(Comp { name: format!("c{i}"), stage, deps: d, objects });
            }
            Project { comps, vars, replicas }
        },
    )
}

fn manifest(comp: &Comp, j: usize, kind: &str, data: &[String]) -> String {
    let name = format!("{}-{j}", comp.name);
    let data_lines: String =
        data.iter().enumerate().map(|(k, s)| format!("  k{k}: {}\n", serde_json::to_string(s).unwrap())).collect();
    match kind {
        "ConfigMap" => format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  env: {{{{ env | tojson }}}}\n  first: {{{{ vars.v0 | tojson }}}}\n{data_lines}"
        ),
        "Deployment" => format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {{{{ vars.replicas }}}}\n  template:\n    spec:\n      containers:\n      - name: app\n        image: {{{{ images.app }}}}\n        env:\n{}",
            if data.is_empty() {
                "        - {name: X, value: \"1\"}\n".to_owned()
            } else {
                data.iter()
                    .enumerate()
                    .map(|(k, s)| format!("        - name: K{k}\n          value: {}\n", serde_json::to_string(s).unwrap()))
                    .collect::<String>()
            }
        ),
        "Service" => format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  annotations:\n{}  {{%- if slot %}}\n    slot: {{{{ slot }}}}\n  {{%- endif %}}\nspec:\n  ports: [{{port: 80}}]\n",
            if data_lines.is_empty() { "    a: b\n".to_owned() } else { data_lines.replace("  k", "    k") }
        ),
        _ => format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: job\n        image: {{{{ images.app }}}}\n        args: {}\n",
            serde_json::to_string(data).unwrap()
        ),
    }
}

/// Every file of the project: (relative path, content). `order` permutes
/// the components in services.yaml.
fn project_files(p: &Project, order: &[usize]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut vars = Mapping::new();
    for (i, v) in p.vars.iter().enumerate() {
        vars.insert(format!("v{i}").into(), v.clone().into());
    }
    vars.insert("replicas".into(), p.replicas.into());
    let mut services = Vec::new();
    for &i in order {
        let c = &p.comps[i];
        let mut m = Mapping::new();
        m.insert("name".into(), c.name.clone().into());
        m.insert("stage".into(), STAGES[c.stage].into());
        if !c.deps.is_empty() {
            m.insert(
                "dependsOn".into(),
                Value::Sequence(c.deps.iter().map(|d| Value::from(p.comps[*d].name.clone())).collect()),
            );
        }
        m.insert("manifests".into(), Value::Sequence(vec![format!("manifests/{}/*.yaml.j2", c.name).into()]));
        services.push(Value::Mapping(m));
        for (j, (kind, data)) in c.objects.iter().enumerate() {
            files.push((
                format!("manifests/{}/{j}-{}.yaml.j2", c.name, kind.to_lowercase()),
                manifest(c, j, kind, data),
            ));
        }
    }
    let inventory = format!(
        "apiVersion: codex-k8s.io/v1alpha1\nkind: ServiceStack\nproject: pp\nversions: {{app: \"1.0\"}}\n\
         images:\n  app: {{repository: registry.example.com/pp/app, tag: \"{{{{ env }}}}-{{{{ versions.app }}}}\"}}\n\
         environments:\n  staging:\n    namespace: \"{{{{ project }}}}-staging\"\n    vars: {}\n\
         \x20 dev:\n    from: staging\n    namespace: \"{{{{ project }}}}-dev\"\n    vars: {{replicas: 1}}\n\
         \x20 ai:\n    from: dev\n    slots: true\n    namespace: \"{{{{ project }}}}-ai-{{{{ slot }}}}\"\n\
         services: {}\n",
        serde_json::to_string(&vars).unwrap(),
        serde_json::to_string(&services).unwrap()
    );
    files.push(("services.yaml".into(), inventory));
    files
}

fn write_project(dir: &Path, files: &[(String, String)]) {
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn requests() -> Vec<Request> {
    let t = |env: &str, slot: Option<&str>| Request {
        target: Target { env: env.into(), slot: slot.map(Into::into) },
        run_id: slot.map(|_| "r1".to_owned()),
        sets: Default::default(),
        source: None,
    };
    vec![t("staging", None), t("dev", None), t("ai", Some("s1")), t("ai", Some("s2"))]
}

fn load(dir: &Path) -> (Inventory, Engine) {
    let inventory = match codex_k8s::inventory::load(&dir.join("services.yaml")) {
        Ok(l) => l.inventory,
        Err(ds) => panic!("generated project does not load:\n{ds}"),
    };
    let engine = match Engine::new(&inventory) {
        Ok(e) => e,
        Err(ds) => panic!("generated project does not compile:\n{ds}"),
    };
    (inventory, engine)
}

/// The whole desired tree of a render (target files and glue files), at `threads` render threads.
fn render_tree(dir: &Path, threads: usize) -> BTreeMap<String, String> {
    let (inventory, engine) = load(dir);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let rendered = pool.install(|| render_targets(&inventory, &engine, &requests()));
    let rendered = match rendered {
        Ok(r) => r,
        Err(ds) => panic!("generated project does not render:\n{ds}"),
    };
    let digest = codex_k8s::tree::inputs_digest(&inventory).unwrap();
    let desired = codex_k8s::tree::desired(&inventory, &rendered, &digest, "rendered");
    let mut all = BTreeMap::new();
    for (dir, files) in desired.targets {
        for (rel, text) in files {
            all.insert(format!("{dir}/{rel}"), text);
        }
    }
    for (rel, text) in desired.files {
        all.insert(rel, text.unwrap_or_default());
    }
    all
}

/// `target.json` without its inputs digest (which covers the inventory's text).
fn without_inputs_digest(mut tree: BTreeMap<String, String>) -> BTreeMap<String, String> {
    for (path, text) in tree.iter_mut() {
        if path.ends_with(codex_k8s::tree::TARGET_JSON) {
            let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
            v.as_object_mut().unwrap().remove("inputsDigest");
            *text = v.to_string();
        }
    }
    tree
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 64, ..ProptestConfig::default() })]

    /// Same inputs, different thread counts and file creation orders: same bytes.
    #[test]
    fn render_is_deterministic(p in project(), seed in any::<u64>()) {
        let order: Vec<usize> = (0..p.comps.len()).collect();
        let files = project_files(&p, &order);
        let mut shuffled = files.clone();
        // A cheap deterministic shuffle driven by the generated seed.
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write_project(a.path(), &files);
        write_project(b.path(), &shuffled);
        let one = render_tree(a.path(), 1);
        prop_assert!(!one.is_empty());
        let four = render_tree(b.path(), 4);
        prop_assert_eq!(&one, &four);
        // Reversed component order in services.yaml: the same tree, except
        // that target.json's inputs digest covers the inventory's new text.
        let reversed: Vec<usize> = (0..p.comps.len()).rev().collect();
        let c = tempfile::tempdir().unwrap();
        write_project(c.path(), &project_files(&p, &reversed));
        let again = render_tree(c.path(), 2);
        prop_assert_eq!(without_inputs_digest(one), without_inputs_digest(again));
    }

    /// Writing a render twice: the second apply changes nothing.
    #[test]
    fn render_is_idempotent(p in project()) {
        let order: Vec<usize> = (0..p.comps.len()).collect();
        let dir = tempfile::tempdir().unwrap();
        write_project(dir.path(), &project_files(&p, &order));
        let out = dir.path().join("rendered");
        let run = || {
            let (inventory, engine) = load(dir.path());
            let rendered = render_targets(&inventory, &engine, &requests()).expect("renders");
            let digest = codex_k8s::tree::inputs_digest(&inventory).unwrap();
            codex_k8s::tree::desired(&inventory, &rendered, &digest, "rendered")
        };
        let first = codex_k8s::tree::apply(&out, &run()).unwrap();
        prop_assert!(!first.is_empty());
        let before = codex_k8s::tree::read_dir_files(&out).unwrap();
        let desired = run();
        prop_assert!(codex_k8s::tree::changes(&out, &desired).unwrap().is_empty());
        prop_assert!(codex_k8s::tree::apply(&out, &desired).unwrap().is_empty());
        prop_assert_eq!(before, codex_k8s::tree::read_dir_files(&out).unwrap());
        for r in requests() {
            prop_assert!(codex_k8s::tree::is_current(&out, &r, &codex_k8s::tree::inputs_digest(&load(dir.path()).0).unwrap()));
        }
    }
}

// ---------------------------------------------------------------- diff

/// One generated object: where it lives and what it is.
#[derive(Debug, Clone)]
struct Obj {
    target: &'static str,
    stage: &'static str,
    api_version: &'static str,
    kind: &'static str,
    namespace: Option<&'static str>,
    name: String,
    data: Vec<String>,
}

impl Obj {
    fn path(&self) -> String {
        format!("{}/{}/comp/{}-{}.yaml", self.target, self.stage, self.kind.to_lowercase(), self.name)
    }

    fn yaml(&self) -> String {
        let mut meta = Mapping::new();
        meta.insert("name".into(), self.name.clone().into());
        if let Some(ns) = self.namespace {
            meta.insert("namespace".into(), ns.into());
        }
        let mut m = Mapping::new();
        m.insert("apiVersion".into(), self.api_version.into());
        m.insert("kind".into(), self.kind.into());
        m.insert("metadata".into(), Value::Mapping(meta));
        m.insert("data".into(), Value::Sequence(self.data.iter().cloned().map(Value::from).collect()));
        codex_k8s::render::emit::to_yaml(&Value::Mapping(m))
    }
}

fn obj() -> impl Strategy<Value = Obj> {
    (
        prop::sample::select(vec!["staging", "dev", "ai/s1", "argocd"]),
        prop::sample::select(vec!["00-stateful", "20-internal"]),
        prop::sample::select(vec![
            ("v1", "ConfigMap"),
            ("apps/v1", "Deployment"),
            ("batch/v1", "Job"),
            ("batch/v1beta1", "Job"),
        ]),
        prop::sample::select(vec![Some("ns"), Some("other"), None]),
        prop_oneof!["[a-c]{1,2}", "m-[0-9a-f]{8}", "[a-c]-[ab]{8}"],
        proptest::collection::vec(tricky_string(), 0..3),
    )
        .prop_map(|(target, stage, (api_version, kind), namespace, name, data)| Obj {
            target,
            stage,
            api_version,
            kind,
            namespace,
            name,
            data,
        })
}

/// A tree: one object per file, unique paths.
fn tree(objs: &[Obj]) -> BTreeMap<String, String> {
    objs.iter().map(|o| (o.path(), o.yaml())).collect()
}

fn snapshot(files: &BTreeMap<String, String>) -> Snapshot {
    Snapshot::from_files(files.iter().map(|(p, c)| (p.as_str(), c.as_bytes())))
}

/// Applies a diff report to `base`'s objects by identity.
fn apply_report(
    base: &Snapshot,
    head: &Snapshot,
    report: &codex_k8s::diff::Report,
) -> BTreeMap<(String, codex_k8s::render::ObjectId), Value> {
    let mut objects: BTreeMap<_, Value> = base.objects.iter().map(|(k, e)| (k.clone(), e.value.clone())).collect();
    for c in &report.changes {
        let key = (c.target.clone(), c.id.clone());
        match c.kind {
            Kind::Removed => {
                objects.remove(&key);
            }
            Kind::Added | Kind::Changed => {
                if let Some(old) = &c.renamed_from {
                    let mut old_id = c.id.clone();
                    old_id.name = old.clone();
                    assert!(objects.remove(&(c.target.clone(), old_id)).is_some(), "renamed object missing from base");
                }
                let new = head.objects.get(&key).expect("added/changed object is in head");
                objects.insert(key, new.value.clone());
            }
        }
    }
    objects
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn diff_of_a_tree_with_itself_is_empty(objs in proptest::collection::vec(obj(), 0..12)) {
        let a = snapshot(&tree(&objs));
        prop_assert!(diff(&a, &a).changes.is_empty());
    }

    /// diff(a, b) applied to a's objects gives b's objects.
    #[test]
    fn diff_applied_to_base_gives_head(
        base in proptest::collection::vec(obj(), 0..10),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, tricky_string()), 0..8),
        extra in proptest::collection::vec(obj(), 0..4),
    ) {
        let mut head = base.clone();
        for (i, op, text) in edits {
            if head.is_empty() {
                break;
            }
            let i = i.index(head.len());
            match op {
                0 => { head.remove(i); }
                1 => head[i].data.push(text),
                // Rename (a rehashed Job keeps its base name).
                2 => head[i].name = format!("m-{:08x}", text.len() * 7919 + i),
                _ => head[i].stage = if head[i].stage == "00-stateful" { "20-internal" } else { "00-stateful" },
            }
        }
        head.extend(extra);
        let (a, b) = (snapshot(&tree(&base)), snapshot(&tree(&head)));
        let report = diff(&a, &b);
        let applied = apply_report(&a, &b, &report);
        let expected: BTreeMap<_, Value> = b.objects.iter().map(|(k, e)| (k.clone(), e.value.clone())).collect();
        prop_assert_eq!(applied, expected);
    }
}

// ---------------------------------------------------------------- YAML and durations

fn yaml_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1.0e12f64..1.0e12).prop_map(Value::from),
        tricky_string().prop_map(Value::String),
        "\\PC{0,20}".prop_map(Value::String),
        // YAML's special characters and whitespace, densely.
        "[ \n\t\r#:!&*|>'\"%@`,\\[\\]{}?~=<.ab01-]{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Sequence),
            proptest::collection::btree_map("[a-zA-Z][a-zA-Z0-9_.-]{0,10}|\\PC{1,8}", inner, 0..6)
                .prop_map(|m| Value::Mapping(m.into_iter().map(|(k, v)| (Value::String(k), v)).collect())),
        ]
    })
}

/// An inventory-shaped document: the keys services.yaml uses, with generated values inside.
fn inventory_value() -> impl Strategy<Value = Value> {
    (
        "[a-z][a-z0-9-]{0,10}",
        proptest::collection::btree_map("[a-z]{1,8}", tricky_string(), 0..5),
        proptest::collection::btree_map("[a-z]{1,8}", yaml_value(), 0..4),
        proptest::collection::vec(
            ("[a-z]{1,8}", proptest::collection::vec("manifests/[a-z]{1,6}/\\*.yaml.j2", 1..3)),
            0..5,
        ),
    )
        .prop_map(|(project, versions, vars, services)| {
            let mut doc = Mapping::new();
            doc.insert("apiVersion".into(), "codex-k8s.io/v1alpha1".into());
            doc.insert("kind".into(), "ServiceStack".into());
            doc.insert("project".into(), project.into());
            doc.insert(
                "versions".into(),
                Value::Mapping(versions.into_iter().map(|(k, v)| (k.into(), v.into())).collect()),
            );
            let mut dev = Mapping::new();
            dev.insert("namespace".into(), "{{ project }}-dev".into());
            dev.insert("vars".into(), Value::Mapping(vars.into_iter().map(|(k, v)| (k.into(), v)).collect()));
            let mut envs = Mapping::new();
            envs.insert("dev".into(), Value::Mapping(dev));
            doc.insert("environments".into(), Value::Mapping(envs));
            let services = services
                .into_iter()
                .map(|(n, m)| {
                    let mut c = Mapping::new();
                    c.insert("name".into(), n.into());
                    c.insert("manifests".into(), Value::Sequence(m.into_iter().map(Value::from).collect()));
                    Value::Mapping(c)
                })
                .collect();
            doc.insert("services".into(), Value::Sequence(services));
            Value::Mapping(doc)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// parse (positioned loader) → emit → parse gives the same value.
    #[test]
    fn inventory_yaml_round_trips(v in prop_oneof![inventory_value(), yaml_value()]) {
        let text = codex_k8s::render::emit::to_yaml(&v);
        let first = codex_k8s::inventory::yaml::load(&text).map_err(|e| TestCaseError::fail(format!("{e:?}\n{text}")))?;
        let again = codex_k8s::render::emit::to_yaml(&first.value);
        let second = codex_k8s::inventory::yaml::load(&again).map_err(|e| TestCaseError::fail(format!("{e:?}\n{again}")))?;
        prop_assert_eq!(&first.value, &second.value, "{}", again);
        // And serde_yaml reads the emitted text as the generated value.
        let serde: Value = serde_yaml::from_str(&text).unwrap();
        prop_assert_eq!(&serde, &v, "{}", text);
        prop_assert_eq!(&first.value, &v, "{}", text);
    }

    /// humantime's format of a duration parses back to it.
    #[test]
    fn durations_round_trip(secs in 0u64..10_000_000_000, nanos in 0u32..1_000_000_000) {
        let d = std::time::Duration::new(secs, nanos);
        prop_assume!(!d.is_zero());
        let text = humantime::format_duration(d).to_string();
        prop_assert_eq!(codex_k8s::inventory::names::parse_duration(&text), Ok(d), "{}", text);
    }
}

// ---------------------------------------------------------------- fuzz regressions

/// The inputs of fixed fuzz findings (`fuzz/regressions/<target>/`) and the
/// emitter's fuzz corpus, replayed through the emitter round trip on every
/// `cargo test` (the fuzzers themselves need cargo-fuzz; this needs nothing).
#[test]
fn fuzz_regressions_round_trip_through_the_emitter() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for dir in ["regressions/emit", "regressions/template", "corpus/emit"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir)) else { continue };
        for e in entries.flatten() {
            let bytes = std::fs::read(e.path()).unwrap();
            let Ok(text) = std::str::from_utf8(&bytes) else { continue };
            // Template inputs are `manifest NUL partial`.
            let text = text.split('\0').next().unwrap_or_default();
            let Ok(value) = serde_yaml::from_str::<Value>(text) else { continue };
            let emitted = codex_k8s::render::emit::to_yaml(&value);
            let back: Value = serde_yaml::from_str(&emitted)
                .unwrap_or_else(|err| panic!("{}: emitted YAML does not parse: {err}\n{emitted}", e.path().display()));
            assert_eq!(back, value, "{}: round trip changed the value\n{emitted}", e.path().display());
            replayed += 1;
        }
    }
    assert!(replayed >= 3, "no fuzz inputs found under {}", fuzz.display());
    // Diff inputs (`base NUL head`) must read in bounded time (one looped forever).
    for e in std::fs::read_dir(fuzz.join("regressions/diff")).into_iter().flatten().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        for part in bytes.split(|b| *b == 0) {
            let a = Snapshot::from_files([("argocd/staging.yaml", part)]);
            assert!(diff(&a, &a).changes.is_empty());
        }
    }
}

// ---------------------------------------------------------------- the fast reader

/// Characters that change how YAML reads a line.
const YAML_SPECIAL: &[char] = &[
    ' ', ' ', '\n', '\n', '-', ':', '#', '"', '\'', '|', '>', '[', ']', '{', '}', ',', '&', '*', '!', '?', '%', '@',
    '`', '~', '\\', '.', '0', '1', 'x', '+', 'é', '\t', '\r', '\u{85}', '\u{2028}',
];

/// `text` with `edits` inserted (positions taken modulo the char boundaries).
fn mutate(text: &str, edits: &[(usize, char)]) -> String {
    let mut out = text.to_owned();
    for (at, c) in edits {
        let bounds: Vec<usize> = (0..=out.len()).filter(|i| out.is_char_boundary(*i)).collect();
        out.insert(bounds[at % bounds.len()], *c);
    }
    out
}

/// Whenever the fast reader gives a value, serde_yaml reads the same value
/// from the same text, in the same key order (the emitter writes both alike).
fn fast_reader_agrees(text: &str) -> Result<bool, TestCaseError> {
    let Some(ours) = codex_k8s::render::read::fast(text) else { return Ok(false) };
    let theirs: Value = serde_yaml::from_str(text)
        .map_err(|e| TestCaseError::fail(format!("fast reader accepted what serde_yaml refuses ({e}):\n{text}")))?;
    prop_assert_eq!(&ours, &theirs, "{}", text);
    let (a, b) = (codex_k8s::render::emit::to_yaml(&ours), codex_k8s::render::emit::to_yaml(&theirs));
    prop_assert_eq!(a, b, "key order differs:\n{}", text);
    Ok(true)
}

/// `v` in flow style on one line, the way templates write `[a, "b"]` and
/// `{path: /x, port: http}`: strings plain where `[a-zA-Z/_][a-zA-Z0-9 ./_-]*`
/// allows, else JSON-quoted (a YAML double-quoted string). `quoted_key` is
/// set when a key needed quotes (the fast reader leaves those to serde_yaml).
fn flow_text(v: &Value, quoted_key: &mut bool) -> String {
    match v {
        Value::Sequence(s) => {
            format!("[{}]", s.iter().map(|v| flow_text(v, quoted_key)).collect::<Vec<_>>().join(", "))
        }
        Value::Mapping(m) => {
            let entries: Vec<String> = m
                .iter()
                .map(|(k, v)| {
                    let key = flow_text(k, quoted_key);
                    *quoted_key |= key.starts_with('"');
                    format!("{key}: {}", flow_text(v, quoted_key))
                })
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::String(s) => {
            let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || "/_".contains(c))
                && s.chars().all(|c| c.is_ascii_alphanumeric() || " ./_-".contains(c))
                && !s.ends_with(' ')
                && codex_k8s::render::emit::is_plain_safe(s);
            if plain {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap()
            }
        }
        other => codex_k8s::render::emit::to_yaml(other).trim_end().to_owned(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Flow collections on one line, as values, as entries, then mutated.
    #[test]
    fn fast_reader_agrees_with_serde_yaml_on_flow_yaml(
        v in yaml_value(),
        edits in proptest::collection::vec((any::<usize>(), proptest::sample::select(YAML_SPECIAL)), 0..3),
    ) {
        let mut quoted_key = false;
        let flow = flow_text(&v, &mut quoted_key);
        let text = mutate(&format!("a: {flow}\nb:\n- {flow}\n- k: {flow} # c\n"), &edits);
        let read = fast_reader_agrees(&text)?;
        if edits.is_empty() && !quoted_key && !flow.contains('\n') {
            prop_assert!(read || !matches!(v, Value::Sequence(_) | Value::Mapping(_)), "declined:\n{}", text);
        }
    }

    /// The emitter's output (what overlays and `to_yaml` produce) reads the
    /// same with the fast reader as with serde_yaml.
    #[test]
    fn fast_reader_agrees_with_serde_yaml_on_emitted_yaml(v in yaml_value()) {
        let text = codex_k8s::render::emit::to_yaml(&v);
        if fast_reader_agrees(&text)? {
            prop_assert_eq!(codex_k8s::render::read::fast(&text).unwrap(), v);
        }
    }

    /// Emitted YAML with YAML's special characters inserted anywhere: the
    /// fast reader either declines or reads what serde_yaml reads.
    #[test]
    fn fast_reader_agrees_with_serde_yaml_on_mutated_yaml(
        v in yaml_value(),
        edits in proptest::collection::vec((any::<usize>(), proptest::sample::select(YAML_SPECIAL)), 1..5),
    ) {
        let text = mutate(&codex_k8s::render::emit::to_yaml(&v), &edits);
        fast_reader_agrees(&text)?;
    }
}

/// Every object the bundled example renders is read by the fast path: a
/// construct that falls back to serde_yaml costs a render several times its
/// CPU (docs/performance.md), so a template change that causes one shows here.
#[test]
fn fast_reader_reads_every_rendered_file_of_the_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rendered");
    let mut read = 0;
    for e in walkdir::WalkDir::new(&root).into_iter().flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "yaml")
            || path.components().any(|c| c.as_os_str() == "flux" || c.as_os_str() == "argocd")
        {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let ours = codex_k8s::render::read::fast(&text)
            .unwrap_or_else(|| panic!("{}: the fast reader declined it", path.display()));
        assert_eq!(ours, serde_yaml::from_str::<Value>(&text).unwrap(), "{}", path.display());
        read += 1;
    }
    assert!(read > 20, "only {read} rendered files under {}", root.display());
}

/// The fast reader's fuzz findings and corpus (`fuzz/regressions/read`,
/// `fuzz/corpus/read`), replayed on every `cargo test`.
#[test]
fn fuzz_inputs_of_the_fast_reader_agree_with_serde_yaml() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for dir in ["regressions/read", "corpus/read"] {
        for e in std::fs::read_dir(fuzz.join(dir)).into_iter().flatten().flatten() {
            let bytes = std::fs::read(e.path()).unwrap();
            let Ok(text) = std::str::from_utf8(&bytes) else { continue };
            if let Err(e) = fast_reader_agrees(text) {
                panic!("{e}");
            }
            replayed += 1;
        }
    }
    assert!(replayed >= 2, "no fuzz inputs found under {}", fuzz.display());
}
