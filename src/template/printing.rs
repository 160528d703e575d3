//! How a value prints: `{{ }}`'s YAML-like display of any value, Go's `%q`
//! quoting (Helm's `quote`), JSON strings made safe for YAML, and the
//! characters YAML never reads back as written. Pure functions, below the
//! helpers and the quoting of template slots that use them.

use std::fmt::Write as _;

use minijinja::value::{Value, ValueKind};

/// Characters YAML never reads back as themselves when written as they are:
/// line breaks other than `\n` (`\r`, NEL, LS, PS: YAML 1.1 readers break
/// lines there), other C0 controls but tab, DEL, C1 controls, and the
/// noncharacters U+FFFE and U+FFFF (not printable in YAML: the file would
/// not parse). A byte-order mark inside a scalar reads back (both readers
/// of the round-trip test agree).
pub fn never_literal(c: char) -> bool {
    let u = c as u32;
    (u < 0x20 && c != '\t' && c != '\n') || (0x7F..=0x9F).contains(&u) || matches!(u, 0x2028 | 0x2029 | 0xFFFE | 0xFFFF)
}

/// JSON text (from serde_json or minijinja's `tojson`) with every
/// [`never_literal`] character written as `\uXXXX`: JSON strings keep them
/// raw, and YAML would read NEL, LS and PS as line breaks. Outside strings
/// JSON is ASCII, so this only touches string contents.
pub fn json_for_yaml(json: &str) -> String {
    if !json.chars().any(never_literal) {
        return json.to_owned();
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if never_literal(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// How a value prints in `{{ }}` (and what `quote`/`squote` quote): as YAML
/// would write it, so a port from Helm keeps its values. Booleans print
/// `true`/`false` (minijinja's own printing is Python's `True`/`False`),
/// `none` prints nothing — as Helm prints a nil value, and as a YAML reader
/// reads `key:` back as null — and lists and maps print as JSON-style flow
/// YAML. Strings and numbers print as minijinja prints them. `None` means
/// "nothing" (a none value).
pub fn display(value: &Value) -> Option<String> {
    match value.kind() {
        ValueKind::Bool => Some(if value.is_true() { "true" } else { "false" }.to_owned()),
        ValueKind::None | ValueKind::Undefined => None,
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => {
            let mut out = String::new();
            write_flow(&mut out, value);
            Some(out)
        }
        _ => Some(value.to_string()),
    }
}

/// `value` in JSON-style flow YAML: `["a", 1, true]`, `{"k": null}`.
fn write_flow(out: &mut String, value: &Value) {
    match value.kind() {
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::None | ValueKind::Undefined => out.push_str("null"),
        ValueKind::Number => out.push_str(&value.to_string()),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            for (i, item) in value.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_flow(out, &item);
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            for (i, key) in value.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let item = value.get_item(&key).unwrap_or_default();
                out.push_str(&json_string(&key.to_string()));
                out.push_str(": ");
                write_flow(out, &item);
            }
            out.push('}');
        }
        _ => out.push_str(&json_string(&value.to_string())),
    }
}

fn json_string(s: &str) -> String {
    json_for_yaml(&serde_json::to_string(s).expect("strings serialize"))
}

/// `s` quoted as Go's `strconv.Quote` (`%q`) quotes it: `"` and `\`
/// backslashed, `\a \b \f \n \r \t \v` for those controls, `\xNN` for other
/// ASCII controls, `\uNNNN`/`\UNNNNNNNN` for characters Go does not print
/// (other controls, format and private-use characters, spaces other than
/// U+0020, line and paragraph separators, non-characters). Every escape is
/// one a YAML double-quoted scalar reads back as the same character.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if !go_printable(c) => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint` for the characters it refuses that Rust can name
/// without Unicode tables: controls, the format characters (Cf), private
/// use, non-characters, and every space but U+0020.
fn go_printable(c: char) -> bool {
    let u = c as u32;
    let format = matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    let nonchar = matches!(u, 0xFDD0..=0xFDEF) || (u & 0xFFFE) == 0xFFFE;
    let space = c.is_whitespace() && c != ' ';
    !(c.is_control() || format || private || nonchar || space)
}
