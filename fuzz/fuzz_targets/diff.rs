//! `diff::diff` on two trees built from the input: the input is split at the
//! first NUL into the base and head texts, each cut into files at lines of
//! the form `#> path/of/file.yaml`. Checked: no panic, diff(a, a) is empty,
//! and the change set is exactly the identity difference of the snapshots.
#![no_main]

use std::collections::BTreeSet;

use codex_k8s::diff::format::{self, Extra, Format};
use codex_k8s::diff::{diff, Kind, Snapshot};
use libfuzzer_sys::fuzz_target;

fn files(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut path = "staging/20-internal/app/configmap-app.yaml".to_owned();
    let mut body = String::new();
    for line in text.split_inclusive('\n') {
        if let Some(p) = line.strip_prefix("#> ") {
            out.push((std::mem::take(&mut path), std::mem::take(&mut body)));
            path = p.trim().to_owned();
        } else {
            body.push_str(line);
        }
    }
    out.push((path, body));
    out
}

fn snapshot(text: &str) -> Snapshot {
    let files = files(text);
    Snapshot::from_files(files.iter().map(|(p, c)| (p.as_str(), c.as_bytes())))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b) = text.split_once('\0').unwrap_or((text, ""));
    let (a, b) = (snapshot(a), snapshot(b));
    assert!(diff(&a, &a).changes.is_empty(), "diff(a, a) is not empty");
    let report = diff(&a, &b);
    let _ = report.summary();
    for format in [Format::Text, Format::Markdown, Format::Json] {
        let _ = format::print(&report, format, &Extra::default());
    }
    // Every key only in a is removed (or renamed), every key only in b is
    // added (or the head side of a rename), every key in both with a
    // different value is changed; nothing else is reported.
    let mut expect_changed = BTreeSet::new();
    for (k, e) in &a.objects {
        if let Some(f) = b.objects.get(k) {
            if f.value != e.value {
                expect_changed.insert(k.clone());
            }
        }
    }
    let mut removed = BTreeSet::new();
    let mut added = BTreeSet::new();
    let mut changed = BTreeSet::new();
    for c in &report.changes {
        let key = (c.target.clone(), c.id.clone());
        match (c.kind, &c.renamed_from) {
            (Kind::Added, _) => assert!(added.insert(key), "added twice"),
            (Kind::Removed, _) => assert!(removed.insert(key), "removed twice"),
            (Kind::Changed, None) => assert!(changed.insert(key), "changed twice"),
            (Kind::Changed, Some(old)) => {
                let mut old_id = c.id.clone();
                old_id.name = old.clone();
                assert!(added.insert(key), "rename target twice");
                assert!(removed.insert((c.target.clone(), old_id)), "rename source twice");
            }
        }
    }
    let only_a: BTreeSet<_> = a.objects.keys().filter(|k| !b.objects.contains_key(*k)).cloned().collect();
    let only_b: BTreeSet<_> = b.objects.keys().filter(|k| !a.objects.contains_key(*k)).cloned().collect();
    assert_eq!(removed, only_a, "removed set");
    assert_eq!(added, only_b, "added set");
    assert_eq!(changed, expect_changed, "changed set");
});
