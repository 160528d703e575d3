use super::*;

fn one(text: &str) -> Override {
    let mut v = parse_set("--set", text, false).unwrap();
    assert_eq!(v.len(), 1, "{text}");
    v.remove(0)
}

fn keys(path: &ValuePath) -> Vec<String> {
    path.0
        .iter()
        .map(|s| match s {
            Segment::Key(k) => k.clone(),
            Segment::Index(i) => format!("[{i}]"),
        })
        .collect()
}

#[test]
fn escaped_dots_stay_in_one_key() {
    let o = one(r"vars.sa.annotations.iam\.gke\.io/gcp-service-account=x@p.iam");
    assert_eq!(keys(&o.path), ["vars", "sa", "annotations", "iam.gke.io/gcp-service-account"]);
    assert_eq!(o.value, Value::from("x@p.iam"));
    assert_eq!(o.path.to_string(), r"vars.sa.annotations.iam\.gke\.io/gcp-service-account");
}

#[test]
fn values_are_typed_as_helm_types_them() {
    for (text, want) in [
        ("true", Value::Bool(true)),
        ("FALSE", Value::Bool(false)),
        ("null", Value::Null),
        ("0", Value::from(0)),
        ("42", Value::from(42)),
        ("-7", Value::from(-7)),
        ("007", Value::from("007")),
        ("1.5", Value::from("1.5")),
        ("1e3", Value::from("1e3")),
        ("", Value::from("")),
        ("yes", Value::from("yes")),
    ] {
        assert_eq!(typed(text, false), want, "{text}");
    }
    assert_eq!(typed("true", true), Value::from("true"));
    assert_eq!(parse_set("--set-string", "vars.a=007,vars.b=true", true).unwrap()[1].value, Value::from("true"));
}

#[test]
fn commas_lists_and_escapes() {
    let v = parse_set("--set", r"vars.a=1,vars.b={x,2,true},vars.c=a\,b", false).unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].value, Value::from(1));
    assert_eq!(v[1].value, Value::Sequence(vec![Value::from("x"), Value::from(2), Value::Bool(true)]));
    assert_eq!(v[2].value, Value::from("a,b"));
    assert_eq!(v[1].origin, "--set vars.b={x,2,true}");
    assert_eq!(one("vars.e={}").value, Value::Sequence(vec![]));
    assert_eq!(one("vars.a==b").value, Value::from("=b"));
}

#[test]
fn indices_parse_and_bad_syntax_is_an_error() {
    assert_eq!(keys(&one("vars.a[1].b=y").path), ["vars", "a", "[1]", "b"]);
    assert_eq!(keys(&one("vars.m[0][2]=y").path), ["vars", "m", "[0]", "[2]"]);
    for bad in [
        "vars.a",
        "vars.a[0]",
        "vars.a[x]=1",
        "vars.a[-1]=1",
        "vars.a[99999999]=1",
        "vars.a[0",
        "vars.a[0]b=1",
        "vars..a=1",
        "=1",
        "vars.a={x,y",
        "vars.a=1,b",
        "vars.a=x\\",
    ] {
        let e = parse_set("--set", bad, false);
        assert!(e.is_err(), "{bad} accepted: {e:?}");
        assert!(e.unwrap_err().starts_with(&format!("--set {bad}: ")), "{bad}");
    }
}

fn layer(sets: &[&str]) -> Result<Overrides, String> {
    let mut o = Overrides::default();
    for s in sets {
        for one in parse_set("--set", s, false)? {
            o.apply(&one)?;
        }
    }
    Ok(o)
}

fn yaml(text: &str) -> Mapping {
    serde_yaml::from_str(text).unwrap()
}

#[test]
fn indices_extend_lists_with_null_and_lists_replace_the_defaults() {
    let o = layer(&["vars.hosts[2]=c", "vars.hosts[0]=a", "vars.rules[0].port=80"]).unwrap();
    let mut d = yaml("hosts: [x, y, z, w]\nrules: [{port: 1, name: n}]\nkeep: 1\n");
    o.lay_over(&mut d).unwrap();
    assert_eq!(d, yaml("hosts: [a, null, c]\nrules: [{port: 80}]\nkeep: 1\n"));
}

#[test]
fn maps_merge_null_removes_and_conflicts_name_the_flag() {
    let o = layer(&["vars.res.cpu=2", "vars.gone=null", "vars.extra=null"]).unwrap();
    let mut d = yaml("res: {cpu: 1, mem: 2}\ngone: 5\n");
    o.lay_over(&mut d).unwrap();
    assert_eq!(d, yaml("res: {cpu: 2, mem: 2}\nextra: null\n"));

    let e = layer(&["vars.replicas.x=1"]).unwrap().lay_over(&mut yaml("replicas: 3")).unwrap_err();
    assert!(e.starts_with("--set vars.replicas.x=1: `vars.replicas` is the number `3`"), "{e}");
    let e = layer(&["vars.sa[0]=1"]).unwrap().lay_over(&mut yaml("sa: {a: 1}")).unwrap_err();
    assert!(e.starts_with("--set vars.sa[0]=1: `vars.sa` is a map"), "{e}");
    let e = layer(&["vars.a=1", "vars.a.b=2"]).unwrap_err();
    assert!(e.starts_with("--set vars.a.b=2: `vars.a` is the number `1`, so it has no key `b`"), "{e}");
    let e = layer(&["vars.a.b=1", "vars.a[0]=2"]).unwrap_err();
    assert!(e.contains("`vars.a` is a map, so it cannot be indexed with `[0]`"), "{e}");
}

#[test]
fn the_recorded_form_reads_back_to_the_same_layer() {
    let o = layer(&[r"vars.sa.annotations.iam\.gke\.io/x=a", "vars.hosts={a,b}", "vars.n=3", "vars.e=null"]).unwrap();
    let recorded = o.recorded();
    assert_eq!(recorded[r"vars.sa.annotations.iam\.gke\.io/x"], serde_json::json!("a"));
    assert_eq!(recorded["vars.hosts"], serde_json::json!(["a", "b"]));
    assert_eq!(recorded["vars.n"], serde_json::json!(3));
    let mut back = Overrides::default();
    for one in from_recorded(&recorded, "target.json").unwrap() {
        back.apply(&one).unwrap();
    }
    assert_eq!(back.vars, o.vars);
    assert!(from_recorded(&BTreeMap::from([("vars.a[".into(), serde_json::json!(1))]), "t").is_err());
}
