use super::walk::escape_problem;
use super::*;
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
