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
        other => {
            write_scalar(&mut out, other, 0);
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Mapping(m) => !m.is_empty(),
        Value::Sequence(s) => !s.is_empty(),
        Value::Tagged(t) => is_block(&t.value),
        _ => false,
    }
}

fn key_text(k: &Value) -> String {
    let mut s = String::new();
    match k {
        Value::String(text) => write_string(&mut s, text, 0, false),
        other => write_scalar(&mut s, other, 0),
    }
    s
}

fn write_mapping(out: &mut String, m: &serde_yaml::Mapping, level: usize) {
    for (k, v) in m {
        indent(out, level);
        out.push_str(&key_text(k));
        out.push(':');
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
        Value::Tagged(t) => write_value_after_key(out, &t.value, level),
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
                    out.push_str(&key_text(k));
                    out.push(':');
                    write_value_after_key(out, v, level + 2);
                }
            }
            Value::Sequence(inner) if !inner.is_empty() => {
                out.push('\n');
                write_sequence(out, inner, level + 2);
            }
            other if !is_block(other) => {
                out.push(' ');
                write_scalar(out, other, level + 2);
                out.push('\n');
            }
            _ => out.push('\n'),
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
        Value::Mapping(_) => out.push_str("{}"),
        Value::Sequence(_) => out.push_str("[]"),
        Value::Tagged(t) => write_scalar(out, &t.value, level),
    }
}

/// Words YAML 1.1 or 1.2 would read as booleans or null.
const RESERVED_WORDS: [&str; 28] = [
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on",
    "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~", "=", "<<",
];

/// Whether `s` can be written without quotes and read back as the same string by any YAML reader.
pub fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else { return false };
    if RESERVED_WORDS.contains(&s) {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.ends_with(':') {
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
        let indicator = if s.starts_with(' ') { "2" } else { "" };
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
        return;
    }
    out.push('\'');
    out.push_str(&s.replace('\'', "''"));
    out.push('\'');
}

/// Multi-line text reads best as a literal block, when a block can hold it exactly.
fn can_be_literal_block(s: &str) -> bool {
    s.contains('\n')
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
    fn layout_matches_kubectl_style() {
        let v: Value =
            serde_yaml::from_str("metadata: {name: a}\nspec:\n  containers:\n  - name: c\n    args: [x]\n").unwrap();
        assert_eq!(to_yaml(&v), "metadata:\n  name: a\nspec:\n  containers:\n  - name: c\n    args:\n    - x\n");
    }
}
