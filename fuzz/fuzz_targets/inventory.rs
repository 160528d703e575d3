//! `services.yaml` from the fuzzer, loaded from disk by `inventory::load`
//! inside a small project (a manifest, a partial, an environment file), then
//! compiled with `Engine::new` when it validates. Diagnostics are formatted
//! too: a panic while printing an error is still a panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn project() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("fuzz-inventory-").tempdir().expect("tempdir").keep();
        for (rel, text) in [
            ("manifests/app.yaml.j2", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ component.name }}}\n"),
            ("manifests/job.yaml.j2", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate}\nspec: {}\n"),
            ("partials/meta.j2", "{% macro meta(n) %}name: {{ n }}{% endmacro %}\n"),
            ("environments/extra.yaml", "namespace: \"{{ project }}-extra\"\n"),
        ] {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let file = project().join("services.yaml");
    std::fs::write(&file, data).expect("write services.yaml");
    match codex_k8s::inventory::load(&file) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                let _ = w.to_string();
            }
            match codex_k8s::template::Engine::new(&loaded.inventory) {
                Ok(_) => {}
                Err(ds) => {
                    let _ = ds.to_string();
                }
            }
        }
        Err(ds) => {
            let _ = ds.to_string();
        }
    }
});
