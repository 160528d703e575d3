//! The fast reader of rendered YAML (`render::read::fast`) against
//! serde_yaml: whenever it reads a value from the input, serde_yaml reads the
//! same value, with keys in the same order, from the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_yaml::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(ours) = codex_k8s::render::read::fast(text) else { return };
    let theirs: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => panic!("the fast reader accepted what serde_yaml refuses ({e}):\n{text}"),
    };
    assert_eq!(ours, theirs, "values differ:\n{text}");
    let (a, b) = (codex_k8s::render::emit::to_yaml(&ours), codex_k8s::render::emit::to_yaml(&theirs));
    assert_eq!(a, b, "key order differs:\n{text}");
});
