//! The memo of rendered manifests (`render/memo.rs`) never changes output:
//! every target rendered with one engine (later targets reuse what earlier
//! ones rendered) equals every target rendered with an engine of its own
//! (nothing reused), at one and two threads. The templates reach the
//! per-slot variables every way a template can: directly, through a
//! partial, through a shadowed variable handed to a partial, in a call
//! block's body, in a test (`is defined`), by iterating a map, and through
//! per-slot `--set` values.

use std::path::Path;

use codex_k8s::inventory::values::{parse_set, Overrides};
use codex_k8s::render::{render_targets, RenderedTarget, Request, Target};
use codex_k8s::template::Engine;

const SERVICES: &str = r#"apiVersion: codex-k8s.io/v1alpha1
kind: ServiceStack
project: pp
versions: {app: "1.0"}
images:
  app: {repository: registry.example.com/pp/app, tag: "{{ versions.app }}"}
environments:
  dev:
    namespace: pp-dev
    vars: {x: dev, n: 1}
  ai:
    from: dev
    slots: true
    namespace: "pp-ai-{{ slot }}"
    vars: {x: ai}
services:
  - name: app
    stage: internal
    image: app
    manifests: [manifests/app/*.yaml.j2]
agent:
  envs: [ai]
  manifests: [manifests/agent/*.yaml.j2]
"#;

const PARTIALS: &str = r#"{%- macro plain(name) -%}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ name }}
{%- endmacro %}
{%- macro with_vars(name) -%}
{{ plain(name) }}
data:
  x: "{{ vars.x }}"
{%- endmacro %}
{%- macro with_namespace(name) -%}
{{ plain(name) }}
data:
  ns: "{{ namespace }}"
{%- endmacro %}
{%- macro boxed(name) -%}
{{ plain(name) }}
data:
  body: "{{ caller() }}"
{%- endmacro %}
"#;

fn manifests() -> Vec<(&'static str, &'static str)> {
    vec![
        ("manifests/app/a-static.yaml.j2", "{{ plain(\"static\") }}\n"),
        ("manifests/app/b-vars.yaml.j2", "{{ with_vars(\"vars\") }}\n"),
        ("manifests/app/c-slot.yaml.j2", "{{ plain(\"slot\") }}\ndata:\n  slot: \"{{ slot }}\"\n"),
        ("manifests/app/d-partial-namespace.yaml.j2", "{{ with_namespace(\"partial-ns\") }}\n"),
        (
            "manifests/app/e-shadowed.yaml.j2",
            "{% set vars = {\"x\": slot ~ \"-shadow\"} %}{{ with_vars(\"shadowed\") }}\n",
        ),
        (
            "manifests/app/f-call-block.yaml.j2",
            "{% call boxed(\"call\") %}{{ host if host is not none else namespace }}{% endcall %}\n",
        ),
        (
            "manifests/app/g-defined.yaml.j2",
            "{{ plain(\"defined\") }}\ndata:\n  has: \"{{ slot is defined and slot is not none }}\"\n",
        ),
        (
            "manifests/app/i-loop.yaml.j2",
            "{{ plain(\"loop\") }}\ndata:\n{%- for k, v in vars | items %}\n  {{ k }}: \"{{ v }}\"\n{%- endfor %}\n",
        ),
        (
            "manifests/agent/job.yaml.j2",
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: agent-{{ run.id }}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: a\n          image: busybox\n",
        ),
    ]
}

fn project(dir: &Path) {
    let mut files = manifests();
    files.push(("services.yaml", SERVICES));
    files.push(("partials/p.j2", PARTIALS));
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn requests() -> Vec<Request> {
    let slot = |name: &str, run: &str, set: Option<&str>| {
        let mut sets = Overrides::default();
        for o in set.map(|s| parse_set("--set", s, false).unwrap()).unwrap_or_default() {
            sets.apply(&o).unwrap();
        }
        Request {
            target: Target { env: "ai".into(), slot: Some(name.into()) },
            run_id: Some(run.into()),
            sets,
            source: None,
        }
    };
    vec![
        Request {
            target: Target { env: "dev".into(), slot: None },
            run_id: None,
            sets: Overrides::default(),
            source: None,
        },
        slot("s1", "r1", None),
        slot("s2", "r2", None),
        slot("s3", "r3", Some("vars.x=three")),
        slot("s4", "r4", Some("vars.n=4")),
        slot("s5", "r1", None),
    ]
}

/// Every object of every target, as (target, path, emitted YAML).
fn objects(targets: &[RenderedTarget]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for t in targets {
        for o in &t.objects {
            out.push((t.target.to_string(), o.path(), codex_k8s::render::emit::to_yaml(&o.value)));
        }
    }
    out
}

#[test]
fn the_memo_never_changes_what_a_target_renders() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let inventory = codex_k8s::inventory::load(&dir.path().join("services.yaml")).unwrap().inventory;
    let reqs = requests();
    // Nothing reused: each target with an engine of its own.
    let alone: Vec<RenderedTarget> = reqs
        .iter()
        .flat_map(|r| render_targets(&inventory, &Engine::new(&inventory).unwrap(), std::slice::from_ref(r)).unwrap())
        .collect();
    let alone = objects(&alone);
    assert!(alone.len() >= 5 * 8, "{} objects", alone.len());
    for threads in [1, 2] {
        let engine = Engine::new(&inventory).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        // Twice with one engine: the second pass renders from a warm memo.
        for pass in 0..2 {
            let shared = pool.install(|| render_targets(&inventory, &engine, &reqs)).unwrap();
            let shared = objects(&shared);
            assert_eq!(shared.len(), alone.len());
            for (a, b) in alone.iter().zip(&shared) {
                assert_eq!(a, b, "{threads} thread(s), pass {pass}");
            }
        }
    }
    // The per-slot values did reach the output (the test sees what it tests).
    let text: String = alone.iter().map(|(t, p, y)| format!("{t} {p}\n{y}")).collect();
    for needle in ["slot: s3", "x: three", "x: s2-shadow", "ns: pp-ai-s4", "'n': '4'", "agent-r2"] {
        assert!(text.contains(needle), "`{needle}` not rendered:\n{text}");
    }
}
