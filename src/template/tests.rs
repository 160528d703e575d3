//! Engine tests on real projects written to a temporary directory: how
//! values print, the Helm-compatible filters, partial calls, and every
//! example of the "from Helm" guide in docs/templates.md.

use std::fs;
use std::path::Path;

use minijinja::Value;
use proptest::strategy::Strategy as _;

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

// ------------------------------------------------------------ partials

#[test]
fn call_blocks_work_for_partial_macros() {
    let partial = "{% macro box(title) %}[{{ title }}: {{ caller() }}]{% endmacro %}\n{% macro twice() %}{{ caller() }}{{ caller() }}{% endmacro %}";
    let out =
        render_with("{% call box('t') %}body {{ vars.x }} {{ namespace }}{% endcall %}", partial, "{x: 1}").unwrap();
    assert_eq!(out, "[t: body 1 shop-dev]");
    // A partial calling a partial inside a call block, and caller() twice.
    let out = render_with("{% call twice() %}{{ box('in') }}{% endcall %}", "{% macro box(title) %}<{{ title }}>{% endmacro %}\n{% macro twice() %}{{ caller() }}{{ caller() }}{% endmacro %}", "{}");
    assert_eq!(out.unwrap(), "<in><in>");
}

#[test]
fn caller_with_arguments_is_refused_with_a_way_out() {
    let partial = "{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}";
    let err = render_with("{% call(i) each([1, 2]) %}{{ i }}{% endcall %}", partial, "{}").unwrap_err();
    assert!(err.contains("caller()"), "{err}");
    assert!(err.contains("arguments"), "{err}");
}

#[test]
fn ns_builds_a_list_in_a_loop() {
    let out = render("{% set acc = ns(items=[]) %}{% for h in vars.hosts %}{% set acc.items = acc.items + [h ~ '.example.com'] %}{% endfor %}{{ acc.items }}", "{hosts: [a, b]}");
    assert_eq!(out, "[\"a.example.com\", \"b.example.com\"]");
}

#[test]
fn calling_namespace_says_to_use_ns() {
    let err = render_with("{% set acc = namespace(items=[]) %}", "", "{}").unwrap_err();
    assert!(err.contains("`namespace` is the target's namespace"), "{err}");
    assert!(err.contains("ns("), "{err}");
}

#[test]
fn an_error_inside_a_partial_names_its_caller() {
    let f = fixture("a: 1\n{{ broken() }}\n", "\n{% macro broken() %}{{ vars.nope.deeper }}{% endmacro %}");
    let d = f.engine.render_file(Path::new("manifests/t.yaml.j2"), &ctx("{}")).unwrap_err();
    assert_eq!(d.file, Path::new("partials/p.j2"));
    assert_eq!(d.location.map(|l| l.line), Some(2));
    assert!(d.message.contains("called from manifests/t.yaml.j2:2"), "{}", d.message);
}

// ------------------------------------------------------------ the "from Helm" guide

/// Every codex-k8s example of the "from Helm" table in docs/templates.md,
/// rendered with the values the Helm side would see: (template, vars, output).
const FROM_HELM: &[(&str, &str, &str)] = &[
    ("{{ vars.replicas }}", "{replicas: 3}", "3"),
    ("{{ namespace }}", "{}", "shop-dev"),
    ("{{ vars.flag }}", "{flag: false}", "false"),
    // default: Helm's replaces every empty value; Jinja's default(x) only undefined.
    ("{{ vars.tag | default('latest', true) }}", "{tag: ''}", "latest"),
    ("{{ vars.tag | default('latest', true) }}", "{tag: null}", "latest"),
    ("{{ vars.tag | default('latest', true) }}", "{}", "latest"),
    ("{{ vars.tag | default('latest', true) }}", "{tag: '1.0'}", "1.0"),
    ("{{ vars.on | default(true, true) }}", "{on: false}", "true"),
    ("{{ vars.tag | default('latest') }}", "{tag: ''}", ""),
    ("{{ vars.tag | default('latest') }}", "{}", "latest"),
    ("{{ vars.flag | quote }}", "{flag: true}", "\"true\""),
    ("{{ vars.ratio | quote }}", "{ratio: 1.5}", "\"1.5\""),
    ("{{ vars.name | squote }}", "{name: api}", "'api'"),
    ("{{ vars.resources | to_yaml | nindent(4) }}", "{resources: {limits: {cpu: 1}}}", "\n    limits:\n      cpu: 1"),
    ("{% for k, v in vars.env | items %}{{ k }}={{ v }};{% endfor %}", "{env: {b: 1, a: 2}}", "a=2;b=1;"),
    ("{% for k, v in vars.env | dictsort %}{{ k }}={{ v }};{% endfor %}", "{env: {b: 1, a: 2}}", "a=2;b=1;"),
    ("{% for h in vars.hosts %}{{ h }};{% endfor %}", "{hosts: [a, b]}", "a;b;"),
    ("{% for h in vars.hosts %}{{ loop.index0 }}:{{ h }};{% endfor %}", "{hosts: [a, b]}", "0:a;1:b;"),
    ("{% with i = vars.ingress %}{% if i %}{{ i.host }}{% endif %}{% endwith %}", "{ingress: {host: h}}", "h"),
    ("{% with i = vars.ingress %}{% if i %}{{ i.host }}{% endif %}{% endwith %}", "{ingress: {}}", ""),
    ("{% if vars.ingress is defined and vars.ingress %}x{% endif %}", "{}", ""),
    ("{{ 'a' if vars.flag else 'b' }}", "{flag: true}", "a"),
    ("{{ '%s-%d' | format(vars.name, 3) }}", "{name: api}", "api-3"),
    ("{{ vars.name ~ '-' ~ 3 }}", "{name: api}", "api-3"),
    ("{{ vars.name[:5] }}", "{name: abcdefgh}", "abcde"),
    ("{{ vars.name | dns_label }}", "{name: My_App-}", "my-app"),
    ("{{ required(vars.host, 'set vars.host') }}", "{host: h}", "h"),
    ("{% if vars.a and vars.b %}y{% endif %}{% if vars.a == 1 %}z{% endif %}", "{a: 1, b: 2}", "yz"),
    ("{% if 'x' in vars %}has{% endif %}", "{x: 1}", "has"),
    ("{{ vars.s | b64encode }}", "{s: hi}", "aGk="),
    ("{{ vars.l | join(',') }}", "{l: [a, b]}", "a,b"),
    ("{{ vars.s | lower }} {{ vars.s | upper }} {{ vars.s | replace('A', 'b') }}", "{s: Aa}", "aa AA ba"),
    ("{{ vars.n | int + 1 }}", "{n: '41'}", "42"),
    ("{{ meta('api') | nindent(2) }}", "{}", "\n  name: api"),
];

#[test]
fn every_from_helm_example_renders_as_documented() {
    let partial = "{% macro meta(name) %}name: {{ name }}{% endmacro %}";
    for (template, vars, expected) in FROM_HELM {
        let out = render_with(template, partial, vars).unwrap_or_else(|e| panic!("{template} with {vars}: {e}"));
        assert_eq!(&out, expected, "{template} with {vars}");
    }
    // required() of a missing or empty value, and fail(), stop with the message.
    for vars in ["{}", "{host: ''}", "{host: null}"] {
        let err = render_with("{{ required(vars.host, 'set vars.host') }}", partial, vars).unwrap_err();
        assert!(err.contains("set vars.host"), "{vars}: {err}");
    }
    let err = render_with("{{ fail('no') }}", partial, "{}").unwrap_err();
    assert!(err.contains("no"), "{err}");
    // Strict mode: Helm's `if .Values.missing` needs `is defined` here.
    assert!(render_with("{% if vars.ingress %}x{% endif %}", partial, "{}").is_err());
    // No tpl, no lookup.
    for missing in ["{{ tpl(vars.t) }}", "{{ lookup('v1', 'Secret', namespace, 'x') }}"] {
        let err = render_with(missing, partial, "{t: x}").unwrap_err();
        assert!(err.contains("unknown function"), "{missing}: {err}");
    }
}

// ------------------------------------------------------------ round trip (issue 28 class 2)

/// Characters from every class that YAML or JSON treats specially: ASCII
/// syntax, C0 and C1 controls, DEL, NEL, LS/PS, the BOM, noncharacters,
/// astral characters.
fn hostile_char() -> impl proptest::strategy::Strategy<Value = char> {
    use proptest::prelude::*;
    prop_oneof![
        proptest::sample::select(vec![
            'a', ' ', '"', '\'', '\\', ':', '#', '-', '{', '}', '[', ']', ',', '&', '*', '!', '|', '>', '%', '@', '`',
            '?', '\t', '\n', '\r'
        ]),
        (0u32..0x20).prop_map(|u| char::from_u32(u).unwrap()),
        (0x7Fu32..0xA0).prop_map(|u| char::from_u32(u).unwrap()),
        proptest::sample::select(vec![
            '\u{85}', '\u{a0}', '\u{2028}', '\u{2029}', '\u{feff}', '\u{fffe}', '\u{ffff}', '\u{fdd0}', '\u{200b}',
            '\u{202e}'
        ]),
        proptest::sample::select(vec!['é', '中', '\u{1f600}', '\u{10ffff}', '\u{1fffe}', '\u{e0001}', '\u{f0000}']),
    ]
}

/// `out` read back by the project's YAML reader (serde_yaml) and by an
/// independent one (yaml-rust2): the string at key `v` of each, or why not.
fn read_back(out: &str) -> Result<(String, String), String> {
    let ours: serde_yaml::Value = serde_yaml::from_str(out).map_err(|e| format!("serde_yaml: {e}"))?;
    let theirs = yaml_rust2::YamlLoader::load_from_str(out).map_err(|e| format!("yaml-rust2: {e}"))?;
    let first = |v: &serde_yaml::Value| match v {
        serde_yaml::Value::Sequence(s) => s.first().cloned(),
        serde_yaml::Value::Mapping(m) => m.get("k").cloned(),
        other => Some(other.clone()),
    };
    let ours = first(&ours["v"]).and_then(|v| v.as_str().map(str::to_owned)).ok_or("serde_yaml: not a string")?;
    let t = &theirs.first().ok_or("yaml-rust2: no document")?["v"];
    let t = if t.as_vec().is_some() {
        &t[0]
    } else if t.as_hash().is_some() {
        &t["k"]
    } else {
        t
    };
    let theirs = t.as_str().ok_or("yaml-rust2: not a string")?.to_owned();
    Ok((ours, theirs))
}

/// Every value printed by `quote`, `squote`, `tojson`, `{{ }}` in a `"…"` or
/// `'…'` slot, and the YAML printing of lists and maps reads back as the
/// same string by both readers, or the render fails naming the value.
#[test]
fn every_printed_string_reads_back_the_same_or_the_render_fails() {
    use proptest::test_runner::{Config, TestRunner};
    let forms = [
        "v: {{ vars.s | quote }}\n",
        "v: {{ vars.s | squote }}\n",
        "v: {{ vars.s | tojson }}\n",
        "v: \"{{ vars.s }}\"\n",
        "v: '{{ vars.s }}'\n",
        "v: {{ [vars.s] }}\n",
        "v: {{ {'k': vars.s} }}\n",
        "v: {{ [vars.s] | tojson }}\n",
    ];
    let fixtures: Vec<Fixture> = forms.iter().map(|f| fixture(f, "")).collect();
    let strategy = proptest::collection::vec(hostile_char(), 0..10).prop_map(|cs| cs.into_iter().collect::<String>());
    let mut runner = TestRunner::new(Config { cases: 400, failure_persistence: None, ..Config::default() });
    runner
        .run(&strategy, |s| {
            let ctx = minijinja::context! { vars => minijinja::context! { s => s.clone() }, namespace => "shop-dev" };
            for (form, f) in forms.iter().zip(&fixtures) {
                match f.engine.render_file(Path::new("manifests/t.yaml.j2"), &ctx) {
                    Ok(out) => match read_back(&out) {
                        Ok((ours, theirs)) => {
                            proptest::prop_assert_eq!(&ours, &s, "serde_yaml, {:?} printed {:?}", form, out);
                            proptest::prop_assert_eq!(&theirs, &s, "yaml-rust2, {:?} printed {:?}", form, out);
                        }
                        Err(e) => proptest::prop_assert!(false, "{:?} printed {:?}, not YAML: {}", form, out, e),
                    },
                    Err(d) => proptest::prop_assert!(
                        d.message.contains("vars.s") || d.message.contains("value"),
                        "{}",
                        d.message
                    ),
                }
            }
            Ok(())
        })
        .unwrap();
}

/// Integers and floats at their edges print as YAML numbers that read back
/// as the same number.
#[test]
fn every_printed_number_reads_back_the_same() {
    let f = fixture("v: {{ vars.n }}\nl: {{ [vars.n] }}\nj: {{ vars.n | tojson }}\n", "");
    let ints = [0i64, -1, i64::MAX, i64::MIN, 1 << 53, (1 << 53) + 1];
    for n in ints {
        let ctx = minijinja::context! { vars => minijinja::context! { n => n } };
        let out = f.engine.render_file(Path::new("manifests/t.yaml.j2"), &ctx).unwrap();
        let back: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
        for k in ["v", "j"] {
            assert_eq!(back[k].as_i64(), Some(n), "{out}");
        }
        assert_eq!(back["l"][0].as_i64(), Some(n), "{out}");
    }
    for x in [0.5f64, -0.0, 1e300, 1e-300, f64::MAX, f64::MIN_POSITIVE, 0.1 + 0.2, 1e16, 123456789.125] {
        let ctx = minijinja::context! { vars => minijinja::context! { n => x } };
        let out = f.engine.render_file(Path::new("manifests/t.yaml.j2"), &ctx).unwrap();
        let back: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
        for v in [&back["v"], &back["j"], &back["l"][0]] {
            assert_eq!(v.as_f64().map(f64::to_bits), Some(x.to_bits()), "{x}: {out}");
        }
    }
}
