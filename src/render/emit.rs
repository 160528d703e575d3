//! The YAML emitter for rendered files.
//!
//! `serde_yaml` writes YAML 1.2, where `no`, `on` or `0755` are plain
//! strings; Kubernetes reads manifests with YAML 1.1 rules (sigs.k8s.io/yaml),
//! where they are a boolean and an octal number. So we emit ourselves: block
//! style like `kubectl`, template key order kept, and every string quoted
//! whenever any YAML 1.1 or 1.2 reader could take it for something else.

use std::fmt::Write;

use serde_yaml::Value;

/// The YAML text of `value`, ending in a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::with_capacity(1024);
    match value {
        Value::Mapping(m) if !m.is_empty() => write_mapping(&mut out, m, 0),
        Value::Sequence(s) if !s.is_empty() => write_sequence(&mut out, s, 0),
        Value::Tagged(t) => {
            out.push_str(&tag_text(&t.tag));
            write_value_after_key(&mut out, &t.value, 0);
        }
        // A top-level literal block indents its lines like a mapping value
        // would: lines at column 0 end the block early for YAML readers.
        other => {
            write_scalar(&mut out, other, 2);
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    const SPACES: &str = "                                                                ";
    let mut n = n;
    while n > SPACES.len() {
        out.push_str(SPACES);
        n -= SPACES.len();
    }
    out.push_str(&SPACES[..n]);
}

/// A tag as YAML text: `!` for the non-specific tag, else `!name` with the
/// characters a tag cannot hold percent-encoded (the reader decodes them).
fn tag_text(tag: &serde_yaml::value::Tag) -> String {
    let shown = tag.to_string();
    let name = shown.strip_prefix('!').unwrap_or(&shown);
    if name == "!" {
        return "!".into();
    }
    let mut out = String::from("!");
    // serde_yaml drops one leading `!` of the tag libyaml reads and compares
    // tags with one more stripped, so a name that itself starts with `!` needs
    // that `!` written twice to read back the same.
    if name.starts_with('!') {
        out.push_str("%21");
    }
    for b in name.bytes() {
        // The URI characters libyaml reads in a tag (`#`, `,`, `[`, `]` are not safe).
        if b.is_ascii_alphanumeric() || b"-;/?:@&=+$_.~*'()".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Longest implicit key we write: YAML caps implicit keys at 1024 characters
/// (longer keys need the explicit `? ` form); a margin for the quotes.
const MAX_IMPLICIT_KEY: usize = 1000;

/// `key:` (a plain or quoted scalar on one line), or, for keys an implicit
/// key cannot hold (collections, tagged values, over 1024 characters),
/// `? <flow key>` and `:` on the next line at `level`.
fn write_key(out: &mut String, k: &Value, level: usize) {
    // Written in place (no text per key), taken back when it cannot stay implicit.
    let start = out.len();
    let simple = match k {
        Value::String(text) => {
            write_string(out, text, 0, false);
            true
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {
            write_scalar(out, k, 0);
            true
        }
        _ => false,
    };
    if !simple || out.len() - start > MAX_IMPLICIT_KEY || out[start..].contains('\n') {
        out.truncate(start);
        out.push_str("? ");
        write_flow(out, k);
        out.push('\n');
        indent(out, level);
    }
    out.push(':');
}

/// `value` in flow style on one line (strings double-quoted), for complex keys.
fn write_flow(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => write_double_quoted(out, s),
        Value::Sequence(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_flow(out, item);
            }
            out.push(']');
        }
        Value::Mapping(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                // `? ` keeps a key of any length or shape explicit inside flow too.
                out.push_str("? ");
                write_flow(out, k);
                out.push_str(": ");
                write_flow(out, v);
            }
            out.push('}');
        }
        Value::Tagged(t) => {
            out.push_str(&tag_text(&t.tag));
            out.push(' ');
            write_flow(out, &t.value);
        }
        other => write_scalar(out, other, 0),
    }
}

fn write_mapping(out: &mut String, m: &serde_yaml::Mapping, level: usize) {
    for (k, v) in m {
        indent(out, level);
        write_key(out, k, level);
        write_value_after_key(out, v, level);
    }
}

fn write_value_after_key(out: &mut String, v: &Value, level: usize) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            out.push('\n');
            write_mapping(out, m, level + 2);
        }
        // Sequences under a key sit at the key's indentation, as kubectl writes them.
        Value::Sequence(s) if !s.is_empty() => {
            out.push('\n');
            write_sequence(out, s, level);
        }
        // A tag stays on the key's line; its collection goes below, indented.
        Value::Tagged(t) => {
            out.push(' ');
            out.push_str(&tag_text(&t.tag));
            match &t.value {
                Value::Sequence(s) if !s.is_empty() => {
                    out.push('\n');
                    write_sequence(out, s, level + 2);
                }
                inner => write_value_after_key(out, inner, level),
            }
        }
        other => {
            out.push(' ');
            write_scalar(out, other, level + 2);
            out.push('\n');
        }
    }
}

fn write_sequence(out: &mut String, s: &[Value], level: usize) {
    for item in s {
        indent(out, level);
        out.push('-');
        match item {
            Value::Mapping(m) if !m.is_empty() => {
                // First pair on the dash line, the rest aligned under it.
                let mut first = true;
                for (k, v) in m {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        indent(out, level + 2);
                    }
                    write_key(out, k, level + 2);
                    write_value_after_key(out, v, level + 2);
                }
            }
            Value::Sequence(inner) if !inner.is_empty() => {
                out.push('\n');
                write_sequence(out, inner, level + 2);
            }
            Value::Tagged(t) => {
                out.push(' ');
                out.push_str(&tag_text(&t.tag));
                match &t.value {
                    Value::Mapping(m) if !m.is_empty() => {
                        out.push('\n');
                        write_mapping(out, m, level + 2);
                    }
                    Value::Sequence(inner) if !inner.is_empty() => {
                        out.push('\n');
                        write_sequence(out, inner, level + 2);
                    }
                    other => {
                        out.push(' ');
                        write_scalar(out, other, level + 2);
                        out.push('\n');
                    }
                }
            }
            other => {
                out.push(' ');
                write_scalar(out, other, level + 2);
                out.push('\n');
            }
        }
    }
}

fn write_scalar(out: &mut String, v: &Value, level: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(out, s, level, true),
        Value::Mapping(_) | Value::Sequence(_) => write_flow(out, v),
        Value::Tagged(t) => {
            out.push_str(&tag_text(&t.tag));
            out.push(' ');
            write_scalar(out, &t.value, level);
        }
    }
}

/// Words YAML 1.1 or 1.2 would read as booleans or null.
const RESERVED_WORDS: [&str; 28] = [
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on",
    "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~", "=", "<<",
];

/// Whether `s` can be written without quotes and read back as the same string by any YAML reader.
///
/// One pass over the bytes (every rendered string goes through here): the
/// first bytes decide indicators and number-like starts, the loop finds
/// `: `, ` #`, tabs and control characters.
pub fn is_plain_safe(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else { return false };
    if first == b' ' || last == b' ' || last == b':' || first < 0x20 || first == 0x7f {
        return false;
    }
    if b",[]{}#&*!|>'\"%@`".contains(&first) {
        return false;
    }
    let second = bytes.get(1).copied();
    // `-`, `?` and `:` start plain scalars only when a non-space follows (`--flag`).
    if matches!(first, b'-' | b'?' | b':') && second.is_none_or(|c| c == b' ') {
        return false;
    }
    // Anything that starts like a number (or .inf/.nan) may be one in YAML 1.1.
    if first.is_ascii_digit()
        || (matches!(first, b'+' | b'-' | b'.')
            && second.is_some_and(|c| c.is_ascii_digit() || matches!(c, b'.' | b'i' | b'I' | b'n' | b'N')))
    {
        return false;
    }
    // `--- x` and `... x` at the start of a line are document markers.
    if bytes.starts_with(b"---") || bytes.starts_with(b"...") || (bytes.len() <= 5 && RESERVED_WORDS.contains(&s)) {
        return false;
    }
    let mut prev = first;
    for &b in &bytes[1..] {
        let bad = match b {
            b' ' => prev == b':',
            b'#' => prev == b' ',
            _ => b < 0x20 || b == 0x7f,
        };
        if bad {
            return false;
        }
        prev = b;
    }
    s.is_ascii() || s.chars().all(|c| !c.is_control() && !matches!(c, '\u{feff}' | '\u{85}' | '\u{2028}' | '\u{2029}'))
}

fn needs_double_quotes(s: &str) -> bool {
    s.chars().any(|c| c.is_control() || matches!(c, '\u{feff}' | '\u{85}' | '\u{2028}' | '\u{2029}'))
}

fn write_string(out: &mut String, s: &str, level: usize, allow_block: bool) {
    if is_plain_safe(s) {
        out.push_str(s);
        return;
    }
    if allow_block && can_be_literal_block(s) {
        let chomp = if s.ends_with('\n') { "" } else { "-" };
        // Readers take the indentation from the first line with content.
        let indicator = if s.trim_start_matches('\n').starts_with(' ') { "2" } else { "" };
        out.push('|');
        out.push_str(indicator);
        out.push_str(chomp);
        for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
            out.push('\n');
            if !line.is_empty() {
                indent(out, level);
                out.push_str(line);
            }
        }
        return;
    }
    if needs_double_quotes(s) {
        write_double_quoted(out, s);
        return;
    }
    out.push('\'');
    // Quotes doubled in place (no copy of the string).
    for (i, part) in s.split('\'').enumerate() {
        if i > 0 {
            out.push_str("''");
        }
        out.push_str(part);
    }
    out.push('\'');
}

fn write_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{feff}' | '\u{85}' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Multi-line text reads best as a literal block, when a block can hold it exactly.
fn can_be_literal_block(s: &str) -> bool {
    // A block of nothing but line breaks reads back as "".
    s.contains('\n')
        && s.contains(|c| c != '\n')
        && !s.ends_with("\n\n")
        && !s
            .chars()
            .any(|c| (c.is_control() && c != '\n') || matches!(c, '\u{feff}' | '\u{85}' | '\u{2028}' | '\u{2029}'))
        && s.split('\n').all(|l| !l.ends_with(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &Value) {
        let text = to_yaml(v);
        let back: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(&back, v, "\n{text}");
    }

    /// The one-pass `is_plain_safe` against the straightforward version it
    /// replaced, on every string of up to three characters from YAML's
    /// special characters, and on the reserved words.
    #[test]
    fn is_plain_safe_matches_the_plain_version() {
        fn reference(s: &str) -> bool {
            let Some(first) = s.chars().next() else { return false };
            if RESERVED_WORDS.contains(&s) {
                return false;
            }
            if s.starts_with(' ') || s.ends_with(' ') || s.ends_with(':') {
                return false;
            }
            // `--- x` and `... x` at the start of a line are document markers.
            if s.starts_with("---") || s.starts_with("...") {
                return false;
            }
            if ",[]{}#&*!|>'\"%@`".contains(first) {
                return false;
            }
            // `-`, `?` and `:` start plain scalars only when a non-space follows (`--flag`).
            if matches!(first, '-' | '?' | ':') && s.chars().nth(1).is_none_or(|c| c == ' ') {
                return false;
            }
            // Anything that starts like a number (or .inf/.nan) may be one in YAML 1.1.
            let mut chars = s.chars();
            let c0 = chars.next().unwrap_or(' ');
            let c1 = chars.next().unwrap_or(' ');
            if c0.is_ascii_digit()
                || (matches!(c0, '+' | '-' | '.')
                    && (c1.is_ascii_digit() || c1 == '.' || c1 == 'i' || c1 == 'I' || c1 == 'n' || c1 == 'N'))
            {
                return false;
            }
            if s.contains(": ") || s.contains(" #") || s.contains('\t') {
                return false;
            }
            s.chars().all(|c| !c.is_control() && c != '\u{feff}' && c != '\u{85}' && c != '\u{2028}' && c != '\u{2029}')
        }

        let alphabet: Vec<char> = " -?:#.+,[]{}&*!|>'\"%@`~\tnNiI0a\u{85}\u{e9}".chars().collect();
        let mut strings: Vec<String> = RESERVED_WORDS.iter().map(|w| w.to_string()).collect();
        strings.extend(
            ["---x", "...", "a: b", "a #b", "a#b", "x:", ".inf", "-.5", "1:30", "\u{feff}x", "x\u{2028}"]
                .map(String::from),
        );
        for a in &alphabet {
            strings.push(a.to_string());
            for b in &alphabet {
                strings.push(format!("{a}{b}"));
                for c in &alphabet {
                    strings.push(format!("{a}{b}{c}"));
                }
            }
        }
        for s in &strings {
            assert_eq!(is_plain_safe(s), reference(s), "{s:?}");
        }
    }

    #[test]
    fn yaml_1_1_booleans_and_numbers_are_quoted() {
        for s in [
            "-1", "-.5", "-", "no", "yes", "on", "Off", "y", "0755", "1e3", "1:30", ".5", "+1", "~", "null", "", " x",
            "a: b", "- x", "#x", "x:",
        ] {
            assert!(!is_plain_safe(s), "{s}");
            let text = to_yaml(&Value::String(s.into()));
            assert!(text.starts_with('\'') || text.starts_with('"'), "{s} -> {text}");
        }
        for s in ["--flag", "-x", "nginx", "shop-dev", "http://users", "a b", "registry.example.com/x:1.0", "v1"] {
            assert!(is_plain_safe(s), "{s}");
        }
    }

    #[test]
    fn documents_round_trip() {
        let v: Value = serde_yaml::from_str(
            "a: 1\nb: [x, 'no', {c: d, e: [1, 2]}]\nempty: {}\nlist: []\ntext: \"line1\\nline2\\n\"\nlead: \"  indented\\nx\"\nq: \"it's\"\nctl: \"a\\tb\"\nn: null\nf: 1.5\nnested: [[1, 2], [3]]\n",
        )
        .unwrap();
        round_trip(&v);
    }

    #[test]
    fn tags_complex_keys_and_long_keys_round_trip() {
        // Found by fuzz/emit: tags were dropped, collection keys written as `{}`.
        let long = "k".repeat(1500);
        for text in [
            "annotations:\n  !argocd.argoproj.io/sync-wave: '0'\n",
            "a: !t x\nb: !t [1, 2]\nc: !t {d: e}\nf: [!t g, !t {h: i}, !t [j]]\n",
            "!t {a: b}\n",
            "!t [a]\n",
            "\"a\\n\\nb\\n c\\n`\\nt: x\"\n",
            "! \"a\\nb\"\n",
            "\"---  -<-<<\"\n",
            "!%23n\n",
            "[\"\\n\", \"\\nx\", {a: \"\\n\"}]\n",
            "\"\\n\"\n",
            "a: \"\\n ?  A\\n\"\nb: [\"\\n\\n  x\\ny\"]\n",
            "a: !%23b%2C%5B c\n",
            "[\"--- a\", \"...\", \"... b\", \"---\"]\n",
            "? [a, b]\n: c\n? {d: [e]}\n: [f, g]\n",
            "- ? {a: 1}\n  : {b: 2}\n",
            "! a: ! b\n!a%21b k: !c%2C%20d x\n? !x%2Cy%E2%98%83 x\n: y\n",
            "!%21!%2Ann\n",
            "a: !%21x y\nb: !%21%21 z\n",
        ] {
            let v: Value = serde_yaml::from_str(text).unwrap();
            round_trip(&v);
        }
        let mut inner = serde_yaml::Mapping::new();
        inner.insert(Value::String(long.clone()), Value::from("w"));
        let mut m = serde_yaml::Mapping::new();
        m.insert(Value::String(long), Value::from("v"));
        m.insert(Value::from("x"), Value::Mapping(inner.clone()));
        m.insert(Value::from("l"), Value::Sequence(vec![Value::Mapping(inner)]));
        round_trip(&Value::Mapping(m));
    }

    #[test]
    fn layout_matches_kubectl_style() {
        let v: Value =
            serde_yaml::from_str("metadata: {name: a}\nspec:\n  containers:\n  - name: c\n    args: [x]\n").unwrap();
        assert_eq!(to_yaml(&v), "metadata:\n  name: a\nspec:\n  containers:\n  - name: c\n    args:\n    - x\n");
    }
}
