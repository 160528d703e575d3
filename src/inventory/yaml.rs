//! A YAML loader that remembers where every value came from.
//!
//! `serde_yaml` gives typed values but no positions; users need `file:line:col`
//! for every error, including semantic ones found long after parsing. So we
//! parse once with `yaml-rust2`'s event API, build a `serde_yaml::Value`, and
//! record the position of every key and value under its path
//! (`services[1].dependsOn[0]`). Duplicate keys, alias bombs and absurd nesting
//! are rejected here, before serde sees the document.

use std::collections::BTreeMap;
use std::fmt;

use serde_yaml::{Mapping, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diagnostic::Location;

/// Deepest nesting accepted; real inventories stay below 10.
pub const MAX_DEPTH: usize = 64;
/// Most values a document may expand to (aliases included): stops alias bombs.
pub const MAX_NODES: usize = 200_000;

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A path from the document root, e.g. `services[1].dependsOn[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YamlPath(pub Vec<Segment>);

impl YamlPath {
    /// The path extended by a key.
    pub fn key(&self, key: &str) -> YamlPath {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.to_owned()));
        p
    }

    /// The path extended by `rest`.
    pub fn join(&self, rest: &YamlPath) -> YamlPath {
        YamlPath(self.0.iter().chain(&rest.0).cloned().collect())
    }

    /// The path extended by an index.
    pub fn index(&self, index: usize) -> YamlPath {
        let mut p = self.clone();
        p.0.push(Segment::Index(index));
        p
    }

    /// The path without its last segment.
    pub fn parent(&self) -> YamlPath {
        let mut p = self.clone();
        p.0.pop();
        p
    }

    /// The last segment as a key, if it is one.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// Parses the dotted form used in error messages and `--set` (`a.b[0].c`).
    pub fn parse(text: &str) -> YamlPath {
        let mut segments = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (name, rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !name.is_empty() {
                segments.push(Segment::Key(name.to_owned()));
            }
            for idx in rest.split('[').filter(|s| !s.is_empty()) {
                match idx.trim_end_matches(']').parse() {
                    Ok(i) => segments.push(Segment::Index(i)),
                    Err(_) => segments.push(Segment::Key(idx.trim_end_matches(']').to_owned())),
                }
            }
        }
        YamlPath(segments)
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document root)");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Where the key and the value at a path start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Position of the mapping key (same as `value` for sequence items and the root).
    pub key: Location,
    /// Position of the value.
    pub value: Location,
}

/// A parsed document plus the positions of everything in it.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document as a plain YAML value.
    pub value: Value,
    /// Positions by path.
    pub spans: BTreeMap<YamlPath, Span>,
    /// The original text of every untagged plain scalar that YAML typed as a
    /// number or a bool (`1.10`, `0755`, `true`), by path: where a
    /// string is expected, such a value is refused rather than read back
    /// changed (see [`Document::typed_where_string_expected`]).
    pub typed: BTreeMap<YamlPath, String>,
}

impl Document {
    /// Position of the key at `path`, falling back to the nearest parent that has one.
    pub fn key_location(&self, path: &YamlPath) -> Location {
        self.nearest(path).map(|s| s.key).unwrap_or(Location { line: 1, col: 1 })
    }

    /// Position of the value at `path`, falling back to the nearest parent that has one.
    pub fn value_location(&self, path: &YamlPath) -> Location {
        self.nearest(path).map(|s| s.value).unwrap_or(Location { line: 1, col: 1 })
    }

    /// Paths matching one of `patterns` whose value YAML typed (a number, a
    /// bool written without quotes), with the original text. A
    /// pattern is a dotted path where `*` matches any key and `[]` any index
    /// (`images.*.tag`, `services[].name`).
    pub fn typed_where_string_expected(&self, patterns: &[&str]) -> Vec<(&YamlPath, &str)> {
        self.typed
            .iter()
            .filter(|(path, _)| patterns.iter().any(|p| path_matches(path, p)))
            .map(|(p, t)| (p, t.as_str()))
            .collect()
    }

    fn nearest(&self, path: &YamlPath) -> Option<Span> {
        let mut p = path.clone();
        loop {
            if let Some(s) = self.spans.get(&p) {
                return Some(*s);
            }
            p.0.pop()?;
        }
    }
}

fn path_matches(path: &YamlPath, pattern: &str) -> bool {
    let mut want = Vec::new();
    for part in pattern.split('.') {
        let (name, lists) = match part.find("[]") {
            Some(i) => (&part[..i], part[i..].matches("[]").count()),
            None => (part, 0),
        };
        want.push(Some(name));
        want.extend(std::iter::repeat_n(None, lists));
    }
    want.len() == path.0.len()
        && want.iter().zip(&path.0).all(|(w, s)| match (w, s) {
            (Some("*"), Segment::Key(_)) => true,
            (Some(name), Segment::Key(k)) => name == k,
            (None, Segment::Index(_)) => true,
            _ => false,
        })
}

/// Why a document could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// Where the problem is.
    pub location: Location,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we know.
    pub help: Option<String>,
}

/// Parses one YAML document with positions. An empty file is an empty mapping's
/// absence: it yields `Value::Null`.
pub fn load(source: &str) -> Result<Document, LoadError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(source);
    if let Err(e) = parser.load(&mut builder, true) {
        return Err(LoadError {
            location: location(e.marker()),
            message: format!("invalid YAML: {}", e.info()),
            help: Some("check the indentation and quoting on this line".into()),
        });
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    if builder.documents > 1 {
        return Err(LoadError {
            location: builder.second_document.unwrap_or_default(),
            message: "expected one YAML document, found several".into(),
            help: Some("remove the `---` separator; an inventory is a single document".into()),
        });
    }
    Ok(Document { value: builder.root.unwrap_or(Value::Null), spans: builder.spans, typed: builder.typed })
}

fn location(mark: &Marker) -> Location {
    // yaml-rust2 reports 1-based lines and 0-based columns.
    Location { line: mark.line(), col: mark.col() + 1 }
}

enum Frame {
    Seq {
        path: YamlPath,
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        path: YamlPath,
        map: Mapping,
        pending_key: Option<(String, Location)>,
        anchor: usize,
        keys: BTreeMap<String, Location>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    spans: BTreeMap<YamlPath, Span>,
    typed: BTreeMap<YamlPath, String>,
    anchors: BTreeMap<usize, Value>,
    nodes: usize,
    documents: usize,
    second_document: Option<Location>,
    error: Option<LoadError>,
}

impl Builder {
    fn fail(&mut self, location: Location, message: String, help: Option<&str>) {
        if self.error.is_none() {
            self.error = Some(LoadError { location, message, help: help.map(str::to_owned) });
        }
    }

    /// Path and key position of the value about to be added to the top frame.
    fn next_path(&self, at: Location) -> (YamlPath, Location) {
        match self.stack.last() {
            None => (YamlPath::default(), at),
            Some(Frame::Seq { path, items, .. }) => (path.index(items.len()), at),
            Some(Frame::Map { path, pending_key: Some((k, kl)), .. }) => (path.key(k), *kl),
            Some(Frame::Map { path, .. }) => (path.clone(), at),
        }
    }

    /// True when the top frame is a mapping waiting for a key.
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { pending_key: None, .. }))
    }

    fn count(&mut self, n: usize, at: Location) -> bool {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            self.fail(
                at,
                format!("document expands to more than {MAX_NODES} values"),
                Some("this looks like an alias bomb; remove the nested `*alias` references"),
            );
            return false;
        }
        true
    }

    fn push_value(&mut self, value: Value, at: Location, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { map, pending_key, .. }) => {
                // Invariant: in a mapping, every event that is not a plain key
                // (a value, an alias, a collection start) is refused by
                // `on_event` while `expecting_key()`, so a key is pending here.
                let (k, _) = pending_key.take().expect("a value always follows a key");
                map.insert(Value::String(k), value);
            }
        }
        let _ = at;
    }

    fn accept_key(&mut self, key: String, at: Location) {
        let Some(Frame::Map { keys, pending_key, path, .. }) = self.stack.last_mut() else {
            return;
        };
        // yaml-rust2 marks a block mapping where its first `:` is; users
        // expect the mapping to start at its first key.
        if keys.is_empty() {
            if let Some(span) = self.spans.get_mut(path) {
                if at < span.value {
                    if span.key == span.value {
                        span.key = at;
                    }
                    span.value = at;
                }
            }
        }
        if let Some(first) = keys.get(&key) {
            let message = format!("duplicate key `{key}` in {path} (first defined at line {})", first.line);
            self.fail(at, message, Some("remove one of the two; YAML keys must be unique"));
            return;
        }
        keys.insert(key.clone(), at);
        *pending_key = Some((key, at));
    }
}

/// True for the tag `!!str` (`tag:yaml.org,2002:str`).
fn is_str_tag(tag: Option<&Tag>) -> bool {
    tag.is_some_and(|t| t.suffix == "str" && (t.handle == "!!" || t.handle == "tag:yaml.org,2002:"))
        || tag.is_some_and(|t| t.handle.is_empty() && t.suffix == "tag:yaml.org,2002:str")
}

fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    if style != TScalarStyle::Plain || is_str_tag(tag) {
        return Value::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(Number::from(i));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Value::Number(Number::from(u));
    }
    // An integer no 64-bit number holds keeps its digits as text: read as a
    // float it would print other digits.
    let digits = text.strip_prefix(['-', '+']).unwrap_or(&text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Value::String(text);
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Value::Number(Number::from(i));
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return Value::Number(Number::from(i));
        }
    }
    let looks_numeric = text.chars().next().is_some_and(|c| c.is_ascii_digit() || "+-.".contains(c));
    if looks_numeric && !text.ends_with('.') {
        if let Ok(f) = text.parse::<f64>() {
            if f.is_finite() {
                return Value::Number(Number::from(f));
            }
        }
    }
    match text.as_str() {
        ".inf" | ".Inf" | "+.inf" => Value::Number(Number::from(f64::INFINITY)),
        "-.inf" | "-.Inf" => Value::Number(Number::from(f64::NEG_INFINITY)),
        ".nan" | ".NaN" => Value::Number(Number::from(f64::NAN)),
        _ => Value::String(text),
    }
}

/// Nodes in `v`, counted as the document budget counts them.
pub(crate) fn value_size(v: &Value) -> usize {
    match v {
        Value::Sequence(s) => 1 + s.iter().map(value_size).sum::<usize>(),
        Value::Mapping(m) => 1 + m.iter().map(|(_, v)| 1 + value_size(v)).sum::<usize>(),
        _ => 1,
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let at = location(&mark);
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.second_document = Some(at);
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                if self.expecting_key() {
                    if text == "<<" && style == TScalarStyle::Plain && tag.is_none() {
                        self.fail(
                            at,
                            "merge keys (`<<:`) are not supported".into(),
                            Some("write the keys out, or use an environment's `from:` to inherit values"),
                        );
                        return;
                    }
                    self.accept_key(text, at);
                    return;
                }
                if !self.count(1, at) {
                    return;
                }
                let (path, key_at) = self.next_path(at);
                self.spans.insert(path.clone(), Span { key: key_at, value: at });
                let original = text.clone();
                let value = scalar(text, style, tag.as_ref());
                if matches!(value, Value::Number(_) | Value::Bool(_)) {
                    self.typed.insert(path, original);
                }
                self.push_value(value, at, anchor);
            }
            Event::Alias(id) => {
                if self.expecting_key() {
                    self.fail(at, "an alias cannot be used as a mapping key".into(), Some("write the key out"));
                    return;
                }
                let Some(value) = self.anchors.get(&id).cloned() else {
                    self.fail(at, "unknown alias".into(), None);
                    return;
                };
                if !self.count(value_size(&value), at) {
                    return;
                }
                let (path, key_at) = self.next_path(at);
                self.spans.insert(path, Span { key: key_at, value: at });
                self.push_value(value, at, 0);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.expecting_key() {
                    self.fail(at, "a mapping key must be a plain string".into(), Some("use a string key"));
                    return;
                }
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(at, format!("nesting deeper than {MAX_DEPTH} levels"), Some("flatten the document"));
                    return;
                }
                if !self.count(1, at) {
                    return;
                }
                let (path, key_at) = self.next_path(at);
                self.spans.insert(path.clone(), Span { key: key_at, value: at });
                let frame = if matches!(ev, Event::SequenceStart(..)) {
                    Frame::Seq { path, items: Vec::new(), anchor }
                } else {
                    Frame::Map { path, map: Mapping::new(), pending_key: None, anchor, keys: BTreeMap::new() }
                };
                self.stack.push(frame);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else { return };
                let (value, anchor) = match frame {
                    Frame::Seq { items, anchor, .. } => (Value::Sequence(items), anchor),
                    Frame::Map { map, anchor, .. } => (Value::Mapping(map), anchor),
                };
                self.push_value(value, at, anchor);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_recorded_for_keys_and_values() {
        let doc = load("a: 1\nlist:\n  - x\n  - name: y\n").unwrap();
        let p = YamlPath::parse("list[1].name");
        assert_eq!(doc.key_location(&p), Location { line: 4, col: 5 });
        assert_eq!(doc.value_location(&p), Location { line: 4, col: 11 });
        assert_eq!(doc.value_location(&YamlPath::parse("a")), Location { line: 1, col: 4 });
    }

    #[test]
    fn plain_scalars_follow_yaml_1_2_core() {
        let doc = load("a: yes\nb: true\nc: 012\nd: '1'\ne: 1.5\nf: ~\ng: 1.4.0\n").unwrap();
        let v = &doc.value;
        assert_eq!(v["a"], Value::String("yes".into()));
        assert_eq!(v["b"], Value::Bool(true));
        assert_eq!(v["c"], Value::Number(12.into()));
        assert_eq!(v["d"], Value::String("1".into()));
        assert_eq!(v["e"].as_f64(), Some(1.5));
        assert_eq!(v["f"], Value::Null);
        assert_eq!(v["g"], Value::String("1.4.0".into()));
    }

    #[test]
    fn duplicate_keys_are_rejected_with_both_lines() {
        let err = load("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.location.line, 3);
        assert!(err.message.contains("first defined at line 1"), "{}", err.message);
    }

    #[test]
    fn alias_bombs_are_rejected() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            src.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        let err = load(&src).unwrap_err();
        assert!(err.message.contains("expands to more than"), "{}", err.message);
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let src = "[".repeat(200) + &"]".repeat(200);
        let err = load(&src).unwrap_err();
        assert!(err.message.contains("nesting deeper"), "{}", err.message);
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = load("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.message.starts_with("invalid YAML"), "{}", err.message);
        assert!(err.location.line >= 1);
    }

    #[test]
    fn aliases_expand_to_copies() {
        let doc = load("base: &b {x: 1}\nother: *b\n").unwrap();
        assert_eq!(doc.value["other"]["x"], Value::Number(1.into()));
    }

    #[test]
    fn path_display_and_parse_round_trip() {
        let p = YamlPath::parse("services[1].dependsOn[0]");
        assert_eq!(p.to_string(), "services[1].dependsOn[0]");
    }
}
