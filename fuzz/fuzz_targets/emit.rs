//! The emitter round trip: any YAML value serde_yaml reads from the input,
//! written by `render::emit::to_yaml`, reads back as an equal value — and
//! reads the same way under YAML 1.1 rules as far as we can tell with
//! serde_yaml (no string turns into a bool, number or null).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_yaml::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Bound the work per input: deep nesting is the loader's business.
    if text.len() > 4096 {
        return;
    }
    let Ok(value) = serde_yaml::from_str::<Value>(text) else { return };
    let emitted = codex_k8s::render::emit::to_yaml(&value);
    let back: Value = match serde_yaml::from_str(&emitted) {
        Ok(v) => v,
        Err(e) => panic!("emitted YAML does not parse: {e}\n--- input\n{text}\n--- emitted\n{emitted}"),
    };
    assert_eq!(back, value, "round trip changed the value\n--- emitted\n{emitted}");
    // Emitting again gives the same bytes.
    assert_eq!(codex_k8s::render::emit::to_yaml(&back), emitted, "emitter is not stable");
});
