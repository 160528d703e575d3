use super::envs::inherit;
use super::walk::escape_problem;
use super::*;
use crate::inventory::raw::RawEnvironment;
#[test]
fn escaping_paths_are_refused() {
    assert!(escape_problem("../x.yaml").is_some());
    assert!(escape_problem("/etc/passwd").is_some());
    assert!(escape_problem("a/../../b").is_some());
    assert!(escape_problem("manifests/a.yaml.j2").is_none());
}

#[test]
fn deep_merge_merges_maps_and_replaces_lists() {
    let mut base: serde_yaml::Mapping = serde_yaml::from_str("a: {x: 1, y: 2}\nl: [1, 2]\n").unwrap();
    let over: serde_yaml::Mapping = serde_yaml::from_str("a: {y: 3}\nl: [9]\n").unwrap();
    deep_merge(&mut base, &over);
    let expected: serde_yaml::Mapping = serde_yaml::from_str("a: {x: 1, y: 3}\nl: [9]\n").unwrap();
    assert_eq!(base, expected);
}

/// A value of the type a JSON Schema node describes (the first non-null
/// alternative), for the fields of a generated schema.
fn sample(node: &serde_json::Value, schema: &serde_json::Value, field: &str) -> serde_json::Value {
    use serde_json::json;
    if let Some(r) = node.get("$ref").and_then(|r| r.as_str()) {
        let name = r.rsplit('/').next().unwrap();
        return sample(&schema["definitions"][name], schema, field);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(alts) = node.get(key).and_then(|a| a.as_array()) {
            let alt = alts.iter().find(|a| a.get("type") != Some(&json!("null"))).unwrap();
            return sample(alt, schema, field);
        }
    }
    let ty = match &node["type"] {
        serde_json::Value::Array(types) => types.iter().find(|t| *t != "null").cloned().unwrap(),
        t => t.clone(),
    };
    match ty.as_str().unwrap_or("object") {
        "string" => json!(format!("{field}-from-parent")),
        "boolean" => json!(true),
        "integer" => json!(7),
        "number" => json!(1.5),
        "array" => json!([sample(&node["items"], schema, field)]),
        _ => match (node.get("properties").and_then(|p| p.as_object()), node.get("additionalProperties")) {
            (Some(props), _) => props.iter().map(|(k, v)| (k.clone(), sample(v, schema, k))).collect(),
            (None, Some(values)) if values.is_object() => json!({"key": sample(values, schema, field)}),
            (None, _) => json!({"key": format!("{field}-from-parent")}),
        },
    }
}

#[test]
fn every_environment_field_inherits_through_from() {
    // The parent sets every field the schema of an environment has (read from
    // the serde types, so a field added later is covered with no change here).
    let schema = crate::inventory::environment_json_schema();
    let fields = schema["properties"].as_object().unwrap();
    assert!(fields.len() > 5, "{fields:?}");
    let parent: serde_json::Map<String, serde_json::Value> =
        fields.iter().filter(|(k, _)| *k != "from").map(|(k, v)| (k.clone(), sample(v, &schema, k))).collect();
    let parent = serde_yaml::to_value(&parent).unwrap();
    let child: serde_yaml::Value = serde_yaml::from_str("from: parent").unwrap();

    let merged = inherit(&[&child, &parent]);
    let raw: RawEnvironment = serde_yaml::from_value(serde_yaml::Value::Mapping(merged)).unwrap();
    let got = serde_json::to_value(&raw).unwrap();
    let want = serde_json::to_value(serde_yaml::from_value::<RawEnvironment>(parent.clone()).unwrap()).unwrap();
    for field in fields.keys().filter(|k| *k != "from") {
        assert!(!want[field].is_null(), "the sample parent sets `{field}`");
        assert_eq!(got[field], want[field], "`{field}` is not inherited through `from`");
    }
    assert!(got["from"].is_null(), "`from` itself is not inherited");
}

#[test]
fn inheritance_merges_maps_and_replaces_lists_and_scalars() {
    let grandparent: serde_yaml::Value =
        serde_yaml::from_str("namespace: gp\nvars: {a: 1, deep: {x: 1, y: 1}, list: [1, 2]}\ntls: {issuer: i}\n")
            .unwrap();
    let parent: serde_yaml::Value =
        serde_yaml::from_str("from: gp\nvars: {deep: {y: 2}, list: [3]}\ntls: {secretName: s}\n").unwrap();
    let child: serde_yaml::Value =
        serde_yaml::from_str("from: parent\nnamespace: child\nvars: {a: null, deep: {z: 3}}\ntls:\n").unwrap();
    let merged = inherit(&[&child, &parent, &grandparent]);
    let want: serde_yaml::Mapping = serde_yaml::from_str(
        "namespace: child\nvars: {a: 1, deep: {x: 1, y: 2, z: 3}, list: [3]}\ntls: {issuer: i, secretName: s}\n",
    )
    .unwrap();
    assert_eq!(merged, want);
}

#[test]
fn overlays_merge_over_presets_field_by_field() {
    use super::components::merge_overlays;
    use crate::inventory::raw::RawOverlay;
    let overlays = |text: &str| -> BTreeMap<String, RawOverlay> { serde_yaml::from_str(text).unwrap() };
    let preset = overlays(
        "dev:\n  pvcMounts: [{claimName: data, mountPath: /data}]\n  dropKinds: [Ingress]\n  env: {A: '1', B: '2'}\n  vars: {x: {y: 1, z: 2}, l: [1]}\n",
    );
    // Empty lists count as not given; mappings merge; a list given replaces.
    let component =
        overlays("dev:\n  pvcMounts: []\n  env: {B: '3'}\n  vars: {x: {z: 9}, l: []}\nprod:\n  dropKinds: [Job]\n");
    let merged = merge_overlays(preset, &component);
    let expected = overlays(
        "dev:\n  pvcMounts: [{claimName: data, mountPath: /data}]\n  dropKinds: [Ingress]\n  env: {A: '1', B: '3'}\n  vars: {x: {y: 1, z: 9}, l: []}\nprod:\n  dropKinds: [Job]\n",
    );
    assert_eq!(merged, expected);
    let replaced = merge_overlays(merged, &overlays("dev:\n  dropKinds: [Secret]\n"));
    assert_eq!(replaced["dev"].drop_kinds, ["Secret"]);
    assert_eq!(replaced["dev"].pvc_mounts.len(), 1);
}

#[test]
fn flux_durations_follow_go_and_the_default_is_one() {
    let default = crate::inventory::FluxDuration::default_interval();
    assert_eq!(crate::inventory::FluxDuration::parse(default.as_str(), true).as_ref(), Ok(&default));
    for ok in ["30s", "1h30m", "1.5h", "250ms"] {
        assert!(crate::inventory::FluxDuration::parse(ok, true).is_ok(), "{ok}");
    }
    for bad in ["2days", "5", "", "1d", "m"] {
        assert!(crate::inventory::FluxDuration::parse(bad, false).is_err(), "{bad}");
    }
    assert!(crate::inventory::FluxDuration::parse("0s", true).is_err(), "zero interval");
    assert!(crate::inventory::FluxDuration::parse("0s", false).is_ok(), "zero timeout is Flux's to judge");
}
