//! Engine tests on real projects written to a temporary directory: how
//! values print, the Helm-compatible filters, partial calls, and every
//! example of the "from Helm" guide in docs/templates.md.

use std::fs;
use std::path::Path;

use minijinja::Value;

use super::Engine;
use crate::inventory;

/// A project with `partials/p.j2` = `partial` and `manifests/t.yaml.j2` =
/// `template`, loaded and compiled.
struct Fixture {
    _tmp: tempfile::TempDir,
    engine: Engine,
}

fn fixture(template: &str, partial: &str) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    fs::create_dir_all(root.join("manifests")).unwrap();
    fs::create_dir_all(root.join("partials")).unwrap();
    fs::write(
        root.join("services.yaml"),
        "apiVersion: codex-k8s.io/v1alpha1\nkind: ServiceStack\nproject: shop\ntemplates:\n  partials: [\"partials/*.j2\"]\nenvironments:\n  dev:\n    namespace: shop-dev\nservices:\n  - name: api\n    manifests: [manifests/t.yaml.j2]\n",
    )
    .unwrap();
    fs::write(root.join("manifests/t.yaml.j2"), template).unwrap();
    fs::write(root.join("partials/p.j2"), partial).unwrap();
    let loaded = inventory::load(&root.join("services.yaml")).unwrap_or_else(|d| panic!("load: {d:?}"));
    let engine = Engine::new(&loaded.inventory).unwrap_or_else(|d| panic!("compile: {d:?}"));
    Fixture { _tmp: tmp, engine }
}

/// The context: `vars` from YAML, `namespace` as a target has it.
fn ctx(vars: &str) -> Value {
    let vars: serde_yaml::Value = serde_yaml::from_str(vars).unwrap();
    minijinja::context! { vars => vars, namespace => "shop-dev", env => "dev" }
}

fn render_with(template: &str, partial: &str, vars: &str) -> Result<String, String> {
    let f = fixture(template, partial);
    f.engine.render_file(Path::new("manifests/t.yaml.j2"), &ctx(vars)).map_err(|d| d.message)
}

fn render(template: &str, vars: &str) -> String {
    render_with(template, "", vars).unwrap_or_else(|e| panic!("render {template:?}: {e}"))
}

// ------------------------------------------------------------ printing values

#[test]
fn booleans_print_as_yaml_writes_them() {
    let vars = "{on: true, off: false}";
    assert_eq!(render("{{ vars.on }} {{ vars.off }}", vars), "true false");
    assert_eq!(render("flag: \"{{ vars.off }}\"", vars), "flag: \"false\"");
    assert_eq!(render("{{ true }}/{{ 1 == 1 }}", vars), "true/true");
}

/// `none` prints nothing, as Helm prints a nil value; `key: {{ x }}` reads back as null.
#[test]
fn none_prints_nothing() {
    assert_eq!(render("a: {{ vars.x }}|{{ none }}|", "{x: null}"), "a: ||");
}

#[test]
fn lists_and_maps_print_as_flow_yaml() {
    let out = render("{{ vars.l }} {{ vars.m }}", "{l: [a, 1, true, null], m: {k: false}}");
    assert_eq!(out, "[\"a\", 1, true, null] {\"k\": false}");
    let parsed: serde_yaml::Value = serde_yaml::from_str(&render("l: {{ vars.l }}", "{l: [a, 1, true]}")).unwrap();
    assert_eq!(parsed["l"][2], serde_yaml::Value::Bool(true));
}

#[test]
fn strings_and_numbers_print_unchanged() {
    assert_eq!(render("{{ vars.s }} {{ vars.i }} {{ vars.f }}", "{s: 'a: b', i: 3, f: 1.5}"), "a: b 3 1.5");
}

#[test]
fn undefined_is_still_an_error() {
    let err = render_with("{{ vars.missing }}", "", "{}").unwrap_err();
    assert!(err.contains("undefined"), "{err}");
}

// ------------------------------------------------------------ quote, squote

#[test]
fn quote_and_squote_have_helms_meaning() {
    let vars = "{t: true, f: 1.5, i: 7, s: \"say \\\"hi\\\"\\n\", n: null, q: \"it's\"}";
    assert_eq!(render("{{ vars.t | quote }}", vars), "\"true\"");
    assert_eq!(render("{{ true | quote }}", vars), "\"true\"");
    assert_eq!(render("{{ vars.f | quote }}", vars), "\"1.5\"");
    assert_eq!(render("{{ 1.5 | quote }}", vars), "\"1.5\"");
    assert_eq!(render("{{ vars.i | quote }}", vars), "\"7\"");
    assert_eq!(render("{{ vars.s | quote }}", vars), r#""say \"hi\"\n""#);
    assert_eq!(render("{{ vars.n | quote }}", vars), "");
    assert_eq!(render("{{ vars.t | squote }}", vars), "'true'");
    assert_eq!(render("{{ vars.q | squote }}", vars), "'it''s'");
    assert_eq!(render("{{ vars.n | squote }}", vars), "");
    let err = render_with("{{ vars.missing | quote }}", "", vars).unwrap_err();
    assert!(err.contains("undefined"), "{err}");
}

/// Every quoted value reads back, as YAML, as the string it quoted.
#[test]
fn quoted_values_read_back_unchanged() {
    for s in [
        "plain",
        "a\"b\\c",
        "tab\there",
        "bell\u{7}\u{1b}[0m",
        "nbsp\u{a0}zw\u{200b}bom\u{feff}",
        "é ü 中",
        "\u{10ffff}",
        "it's",
    ] {
        let vars = serde_yaml::to_string(&serde_yaml::Value::Mapping(
            [("s".into(), serde_yaml::Value::String(s.into()))].into_iter().collect(),
        ))
        .unwrap();
        for filter in ["quote", "squote"] {
            if filter == "squote" && s.chars().any(char::is_control) {
                continue; // single-quoted YAML cannot hold control characters
            }
            let out = render(&format!("v: {{{{ vars.s | {filter} }}}}"), &vars);
            let back: serde_yaml::Value = serde_yaml::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
            assert_eq!(back["v"].as_str(), Some(s), "{filter}: {out}");
        }
    }
}

/// What docs/templates.md warns about: Jinja's string operations keep their
/// own spelling; only `{{ }}` output is YAML-formatted.
#[test]
fn jinja_string_operations_keep_pythons_spelling() {
    assert_eq!(
        render("{{ 'x-' ~ vars.b }}|{{ vars.b | string }}|{{ [vars.b] | join(',') }}", "{b: true}"),
        "x-True|True|True"
    );
    assert_eq!(render("{{ vars.b }}-x", "{b: true}"), "true-x");
}
