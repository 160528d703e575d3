//! Reading YAML files into the raw serde structs, with every problem turned
//! into a positioned [`Diagnostic`].
//!
//! Unknown keys are collected in one pass: we deserialize with
//! `deny_unknown_fields`, and each time serde stops at an unknown key we record
//! it (with serde's list of valid keys for the "did you mean" hint), remove it
//! from the document and try again. Type errors stop the file.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::yaml::{self, Document, Segment, YamlPath};
use crate::diagnostic::{did_you_mean, Diagnostic};

/// Largest inventory or environment file accepted.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A source file read as UTF-8.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the project root (as shown in messages).
    pub path: std::path::PathBuf,
    /// Contents.
    pub text: String,
}

/// Reads `root/rel` as UTF-8, refusing huge and binary files, anything but
/// a regular file (a FIFO, a device), a file whose real path (links
/// followed) leaves `root`, and a file inside `.git/`. A refused file is
/// never opened, so no message can quote it.
pub fn read_source(root: &Path, rel: &Path) -> Result<SourceFile, Diagnostic> {
    let full = inside_project(root, rel)?;
    let meta = std::fs::metadata(&full).map_err(|e| {
        Diagnostic::error(rel, None, format!("cannot read file: {e}"))
            .with_help("check the path; paths are relative to the directory of services.yaml")
    })?;
    if !meta.is_file() {
        return Err(Diagnostic::error(rel, None, "not a regular file (a directory, a FIFO or a device)")
            .with_help("inputs are regular text files inside the project"));
    }
    let too_big = |size: String| {
        Diagnostic::error(rel, None, format!("file is {size} bytes; the limit is {MAX_FILE_BYTES}"))
            .with_help("split it; inventories and templates are small text files")
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big(meta.len().to_string()));
    }
    let mut bytes = Vec::new();
    let file =
        std::fs::File::open(&full).map_err(|e| Diagnostic::error(rel, None, format!("cannot read file: {e}")))?;
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_FILE_BYTES + 1), &mut bytes)
        .map_err(|e| Diagnostic::error(rel, None, format!("cannot read file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(format!("more than {MAX_FILE_BYTES}")));
    }
    // A UTF-8 byte-order mark (editors on Windows write one) is not content.
    let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => rest.to_vec(),
        None => bytes,
    };
    match String::from_utf8(bytes) {
        Ok(text) => Ok(SourceFile { path: rel.to_path_buf(), text }),
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let col = valid.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            Err(Diagnostic::error(rel, Some(crate::diagnostic::Location { line, col }), "file is not valid UTF-8")
                .with_help("save the file as UTF-8"))
        }
    }
}

/// `root/rel` with its links followed, when that stays inside `root` and
/// outside `.git/`; else an error naming `rel` (never what it points to).
pub fn inside_project(root: &Path, rel: &Path) -> Result<std::path::PathBuf, Diagnostic> {
    let cannot = |e: std::io::Error| {
        Diagnostic::error(rel, None, format!("cannot read file: {e}"))
            .with_help("check the path; paths are relative to the directory of services.yaml")
    };
    let real_root = root.canonicalize().map_err(cannot)?;
    let real = root.join(rel).canonicalize().map_err(cannot)?;
    let Ok(inner) = real.strip_prefix(&real_root) else {
        return Err(Diagnostic::error(
            rel,
            None,
            "the file leads outside the project directory (a symlink or a path out of it); it is not read",
        )
        .with_help("copy the file into the project directory instead of linking to it"));
    };
    if inner.components().any(|c| c.as_os_str() == ".git") {
        return Err(Diagnostic::error(
            rel,
            None,
            "the file is inside `.git/`, which holds the repository's credentials and is never read as input",
        )
        .with_help("inputs are the project's own files; move the content into a file outside .git/"));
    }
    Ok(real)
}

/// Parses `source` into a positioned document.
pub fn parse_document(source: &SourceFile) -> Result<Document, Diagnostic> {
    yaml::load(&source.text).map_err(|e| {
        let mut d = Diagnostic::error(&source.path, Some(e.location), e.message).with_source(&source.text);
        if let Some(h) = e.help {
            d = d.with_help(h);
        }
        d
    })
}

/// Values YAML typed (an unquoted number or bool) at paths where a string is
/// expected: `versions: {api: 1.10}` would otherwise deploy tag `1.1`. Each
/// is an error at its position saying to quote it; `!!str` and quotes keep
/// the text. `patterns` as in [`Document::typed_where_string_expected`].
pub fn typed_strings(source: &SourceFile, doc: &Document, patterns: &[&str]) -> Vec<Diagnostic> {
    doc.typed_where_string_expected(patterns)
        .into_iter()
        .map(|(path, text)| {
            Diagnostic::error(
                &source.path,
                Some(doc.value_location(path)),
                format!("`{path}` must be a string, but YAML reads the unquoted `{text}` as a number or a bool"),
            )
            .with_source(&source.text)
            .with_help(format!("quote it: `\"{text}\"` (YAML would change `1.10` to `1.1` and `0755` to `755`)"))
        })
        .collect()
}

/// Deserializes `doc` into `T`, collecting every unknown key and the first type error.
pub fn deserialize<T: DeserializeOwned>(source: &SourceFile, doc: &Document) -> Result<T, Vec<Diagnostic>> {
    let mut value = doc.value.clone();
    let mut diagnostics = Vec::new();
    // Each round removes one unknown key; a document cannot hold more keys than values.
    for _ in 0..=yaml::MAX_NODES {
        let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(t) if diagnostics.is_empty() => return Ok(t),
            Ok(_) => return Err(diagnostics),
            Err(err) => err,
        };
        let path = convert_path(err.path());
        let message = err.inner().to_string();
        if let Some((key, expected)) = parse_unknown_field(&message) {
            let key_path = if path.last_key() == Some(key.as_str()) { path.clone() } else { path.key(&key) };
            let parent = key_path.parent();
            let place = if parent.0.is_empty() { "at the top level".to_owned() } else { format!("in `{parent}`") };
            let help = match did_you_mean(&key, expected.iter().map(String::as_str)) {
                Some(best) => format!("did you mean `{best}`?"),
                None if expected.is_empty() => "this mapping takes no keys".to_owned(),
                None => format!("valid keys here: {}", expected.join(", ")),
            };
            diagnostics.push(
                Diagnostic::error(
                    &source.path,
                    Some(doc.key_location(&key_path)),
                    format!("unknown key `{key}` {place}"),
                )
                .with_source(&source.text)
                .with_help(help),
            );
            if !remove(&mut value, &key_path) {
                return Err(diagnostics);
            }
            continue;
        }
        let (location, text, help) = describe_type_error(doc, &path, &message);
        diagnostics
            .push(Diagnostic::error(&source.path, Some(location), text).with_source(&source.text).with_help(help));
        return Err(diagnostics);
    }
    Err(diagnostics)
}

fn describe_type_error(
    doc: &Document,
    path: &YamlPath,
    message: &str,
) -> (crate::diagnostic::Location, String, String) {
    if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
        let place = if path.0.is_empty() { "at the top level".to_owned() } else { format!("in `{path}`") };
        return (
            doc.key_location(path),
            format!("missing required key `{field}` {place}"),
            format!("add `{field}:`; see docs/inventory.md"),
        );
    }
    let at = if path.0.is_empty() { String::new() } else { format!("`{path}`: ") };
    (doc.value_location(path), format!("{at}{message}"), "see docs/inventory.md for the expected shape".to_owned())
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" message.
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, tail) = rest.split_once('`')?;
    let expected = tail.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    Some((key.to_owned(), expected))
}

fn convert_path(path: &serde_path_to_error::Path) -> YamlPath {
    use serde_path_to_error::Segment as S;
    YamlPath(
        path.iter()
            .filter_map(|s| match s {
                S::Seq { index } => Some(Segment::Index(*index)),
                S::Map { key } => Some(Segment::Key(key.clone())),
                S::Enum { variant } => Some(Segment::Key(variant.clone())),
                S::Unknown => None,
            })
            .collect(),
    )
}

fn remove(value: &mut serde_yaml::Value, path: &YamlPath) -> bool {
    let Some((last, parents)) = path.0.split_last() else { return false };
    let mut cur = value;
    for seg in parents {
        cur = match (seg, cur) {
            (Segment::Key(k), serde_yaml::Value::Mapping(m)) => match m.get_mut(k.as_str()) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Index(i), serde_yaml::Value::Sequence(s)) => match s.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Segment::Key(k), serde_yaml::Value::Mapping(m)) => m.remove(k.as_str()).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::raw::RawComponent;

    fn src(text: &str) -> SourceFile {
        SourceFile { path: "services.yaml".into(), text: text.into() }
    }

    #[test]
    fn all_unknown_keys_are_reported_with_suggestions() {
        let s = src("name: a\nmanifests: []\ndependOn: [x]\nstgae: edge\n");
        let doc = parse_document(&s).unwrap();
        let errs = deserialize::<RawComponent>(&s, &doc).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].message.contains("`dependOn`"));
        assert_eq!(errs[0].help.as_deref(), Some("did you mean `dependsOn`?"));
        assert_eq!(errs[0].location.unwrap().line, 3);
        assert_eq!(errs[1].help.as_deref(), Some("did you mean `stage`?"));
    }

    #[test]
    fn type_errors_point_at_the_value() {
        let s = src("name: a\nmanifests: nope\n");
        let doc = parse_document(&s).unwrap();
        let errs = deserialize::<RawComponent>(&s, &doc).unwrap_err();
        assert_eq!(errs[0].location.unwrap().line, 2);
        assert!(errs[0].message.contains("manifests"), "{}", errs[0].message);
    }

    #[test]
    fn missing_fields_are_named() {
        let s = src("manifests: []\n");
        let doc = parse_document(&s).unwrap();
        let errs = deserialize::<RawComponent>(&s, &doc).unwrap_err();
        assert!(errs[0].message.contains("missing required key `name`"), "{}", errs[0].message);
    }
}
