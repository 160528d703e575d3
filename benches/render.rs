//! In-process benchmarks of the rendering pipeline on the bundled example
//! (the repository root): `cargo bench --bench render`.
//!
//! * `render/1-target` and `render/100-targets`: `render::render_targets` of
//!   one and of 100 `ai` slots (templates, overlays, labels, policy), the
//!   inventory loaded and the engine compiled once outside the loop;
//! * `desired/100-targets`: the above plus `tree::desired` (file layout,
//!   kustomizations, target.json, Flux glue): everything a render computes
//!   before touching the disk;
//! * `load+compile`: `inventory::load` plus `template::Engine::new`, the fixed
//!   cost of every command;
//! * `diff/one-slot-of-100`: `diff::Snapshot::from_files` of two trees of 100
//!   slots that differ in one slot's image tag, and `diff::diff` of them;
//!   `diff/compare-only` times `diff::diff` alone.
//!
//! Whole-process figures (cold and no-change render, --check, --commit, diff
//! of git revisions, peers) come from `benches/run.py`.

use std::hint::black_box;
use std::path::PathBuf;

use codex_k8s::diff::{diff, Snapshot};
use codex_k8s::inventory::values::{self, Overrides};
use codex_k8s::inventory::{self, Inventory};
use codex_k8s::render::{render_targets, Request, Target};
use codex_k8s::template::Engine;
use codex_k8s::tree::{self, Desired};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn project() -> (Inventory, Engine) {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("services.yaml");
    let loaded = inventory::load(&file).unwrap_or_else(|e| panic!("load {}: {e:?}", file.display()));
    let engine = Engine::new(&loaded.inventory).unwrap_or_else(|e| panic!("compile: {e:?}"));
    (loaded.inventory, engine)
}

fn slot_requests(n: usize, sets: &[(&str, &str)], changed_slot: Option<usize>) -> Vec<Request> {
    (1..=n)
        .map(|i| Request {
            target: Target { env: "ai".into(), slot: Some(format!("s-{i:04}")) },
            run_id: Some("r1".into()),
            sets: if changed_slot == Some(i) { overrides(sets) } else { Overrides::default() },
            source: None,
        })
        .collect()
}

/// `--set K=V` for each pair, applied in order.
fn overrides(sets: &[(&str, &str)]) -> Overrides {
    let mut out = Overrides::default();
    for (k, v) in sets {
        for o in values::parse_set("--set", &format!("{k}={v}"), false).expect("a valid --set") {
            out.apply(&o).expect("an applicable --set");
        }
    }
    out
}

/// Every file of a desired tree as `(path, bytes)`, paths relative to the tree root.
fn files(d: &Desired) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (dir, fs) in &d.targets {
        for (name, text) in fs {
            out.push((format!("{dir}/{name}"), text.clone().into_bytes()));
        }
    }
    for (path, text) in &d.files {
        if let Some(text) = text {
            out.push((path.clone(), text.clone().into_bytes()));
        }
    }
    out
}

fn snapshot(files: &[(String, Vec<u8>)]) -> Snapshot {
    Snapshot::from_files(files.iter().map(|(p, b)| (p.as_str(), b.as_slice())))
}

fn benches(c: &mut Criterion) {
    let (inv, engine) = project();
    let digest = tree::inputs_digest(&inv).expect("inputs digest");
    let one = slot_requests(1, &[], None);
    let hundred = slot_requests(100, &[], None);

    let mut g = c.benchmark_group("render");
    g.throughput(Throughput::Elements(1));
    g.bench_function("1-target", |b| b.iter(|| black_box(render_targets(&inv, &engine, black_box(&one)).unwrap())));
    g.throughput(Throughput::Elements(100));
    g.sample_size(20);
    g.bench_function("100-targets", |b| {
        b.iter(|| black_box(render_targets(&inv, &engine, black_box(&hundred)).unwrap()))
    });
    g.finish();

    let mut g = c.benchmark_group("desired");
    g.throughput(Throughput::Elements(100));
    g.sample_size(20);
    g.bench_function("100-targets", |b| {
        b.iter(|| {
            let rendered = render_targets(&inv, &engine, black_box(&hundred)).unwrap();
            black_box(tree::desired(&inv, &rendered, &digest, "rendered"))
        })
    });
    g.finish();

    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("services.yaml");
    c.bench_function("load+compile", |b| {
        b.iter(|| {
            let loaded = inventory::load(black_box(&file)).unwrap();
            black_box(Engine::new(&loaded.inventory).unwrap())
        })
    });

    let base_tree = files(&tree::desired(&inv, &render_targets(&inv, &engine, &hundred).unwrap(), &digest, "rendered"));
    let changed = slot_requests(100, &[("versions.users", "9.9.9")], Some(1));
    let head_tree = files(&tree::desired(&inv, &render_targets(&inv, &engine, &changed).unwrap(), &digest, "rendered"));
    let (base, head) = (snapshot(&base_tree), snapshot(&head_tree));
    let report = diff(&base, &head);
    assert!(!report.changes.is_empty(), "the one-slot change must show in the diff");

    let mut g = c.benchmark_group("diff");
    g.sample_size(20);
    g.bench_function("one-slot-of-100", |b| {
        b.iter(|| {
            let (base, head) = (snapshot(black_box(&base_tree)), snapshot(black_box(&head_tree)));
            black_box(diff(&base, &head))
        })
    });
    g.bench_function("compare-only", |b| b.iter(|| black_box(diff(black_box(&base), black_box(&head)))));
    g.finish();
}

criterion_group!(render, benches);
criterion_main!(render);
