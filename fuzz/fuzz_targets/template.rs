//! Template rendering with a manifest (and a partial) from the fuzzer: a tiny
//! project is built once in a temp dir; each input is written as
//! `manifests/app.yaml.j2` (the text before the first NUL) and
//! `partials/p.j2` (the text after it), then `Engine::new` compiles the
//! project and `render::render_targets` renders a plain and a slot target,
//! and `tree::desired` lays them out. Errors are fine; panics, hangs
//! (libFuzzer -timeout) and memory blow-ups (-rss_limit_mb) are findings.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use codex_k8s::inventory::Inventory;
use codex_k8s::render::{Request, Target};
use libfuzzer_sys::fuzz_target;

const SERVICES: &str = r#"apiVersion: codex-k8s.io/v1alpha1
kind: ServiceStack
project: fz
templates: {env: ["FZ_*"]}
limits: {fuel: 200000, maxOutputBytes: 1048576, maxPartialDepth: 16}
versions: {app: "1.0.0"}
images:
  app: {repository: registry.example.com/fz/app, tag: "{{ versions.app }}"}
environments:
  dev:
    namespace: "{{ project }}-dev"
    domain: dev.fz.example.com
    vars: {replicas: 1, list: [a, b], map: {k: v}, text: "no"}
  ai:
    from: dev
    slots: true
    namespace: "{{ project }}-ai-{{ slot }}"
    domain: "{{ slot }}.ai.fz.example.com"
services:
  - name: app
    image: app
    manifests: [manifests/app.yaml.j2]
    overlays:
      ai:
        env: {LOG_LEVEL: debug}
"#;

struct Project {
    dir: PathBuf,
    inventory: Inventory,
}

fn project() -> &'static Project {
    static P: OnceLock<Project> = OnceLock::new();
    P.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("fuzz-template-").tempdir().expect("tempdir").keep();
        std::fs::create_dir_all(dir.join("manifests")).unwrap();
        std::fs::create_dir_all(dir.join("partials")).unwrap();
        std::fs::write(dir.join("services.yaml"), SERVICES).unwrap();
        std::fs::write(dir.join("manifests/app.yaml.j2"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
            .unwrap();
        std::fs::write(dir.join("partials/p.j2"), "{% macro meta(n) %}name: {{ n }}{% endmacro %}\n").unwrap();
        let inventory = match codex_k8s::inventory::load(&dir.join("services.yaml")) {
            Ok(l) => l.inventory,
            Err(ds) => panic!("fixture does not load:\n{ds}"),
        };
        Project { dir, inventory }
    })
}

fuzz_target!(|data: &[u8]| {
    let p = project();
    let (manifest, partial) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{% macro meta(n) %}name: {{ n }}{% endmacro %}\n"[..]),
    };
    std::fs::write(p.dir.join("manifests/app.yaml.j2"), manifest).unwrap();
    std::fs::write(p.dir.join("partials/p.j2"), partial).unwrap();
    let engine = match codex_k8s::template::Engine::new(&p.inventory) {
        Ok(e) => e,
        Err(ds) => {
            let _ = ds.to_string();
            return;
        }
    };
    let requests = [
        Request { target: Target { env: "dev".into(), slot: None }, run_id: None, sets: Default::default(), source: None },
        Request {
            target: Target { env: "ai".into(), slot: Some("pr-1".into()) },
            run_id: Some("r1".into()),
            sets: Default::default(),
            source: None,
        },
    ];
    match codex_k8s::render::render_targets(&p.inventory, &engine, &requests) {
        Ok(targets) => {
            let desired = codex_k8s::tree::desired(&p.inventory, &targets, "0", "rendered");
            for files in desired.targets.values() {
                for (path, text) in files {
                    assert!(!path.contains(".."), "path escapes: {path}");
                    if path.ends_with(".yaml") {
                        let _: serde_yaml::Value = serde_yaml::from_str(text)
                            .unwrap_or_else(|e| panic!("rendered file {path} does not parse: {e}\n{text}"));
                    }
                }
            }
        }
        Err(ds) => {
            let _ = ds.to_string();
        }
    }
});
