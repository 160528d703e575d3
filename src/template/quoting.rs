//! What a printed value becomes in YAML: every way a template prints a
//! string (`quote`, `squote`, `tojson`, lists and maps, `{{ }}` inside a
//! `"…"` or `'…'` slot) either reads back as the same string or fails the
//! render naming the value.
//!
//! A `{{ … }}` written inside a quoted YAML scalar of a manifest or partial
//! (`x: "{{ vars.x }}"`) is compiled as `{{ (…) | __in_dq }}` (or
//! `__in_sq`), found by [`mark_quoted`] from the template's text: in `"…"`
//! the value is escaped as `quote` escapes it, in `'…'` a `'` is doubled,
//! and a line break (which YAML folds into a space) is an error in both.

use minijinja::{Error, ErrorKind, Value};

use super::printing::never_literal;

/// The filter a `{{ }}` inside `"…"` gets.
pub const IN_DQ: &str = "__in_dq";
/// The filter a `{{ }}` inside `'…'` gets.
pub const IN_SQ: &str = "__in_sq";

fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn refuse(slot: &str, value: &str, what: &str, help: &str) -> Error {
    let shown = crate::diagnostic::escape_line(value, 40);
    Error::new(
        ErrorKind::InvalidOperation,
        format!("the value `{shown}` printed in a {slot} slot contains {what}; {help}"),
    )
}

/// `{{ value }}` inside `"…"`: escaped as `quote` escapes it (so `"`, `\`
/// and controls read back), a line break refused.
pub fn in_dq(value: &Value) -> Result<Value, Error> {
    // Undefined stays undefined: printing it is the strict-mode error, at
    // the expression's place.
    if value.is_undefined() {
        return Ok(Value::UNDEFINED);
    }
    let Some(text) = super::printing::display(value) else { return Ok(Value::from("")) };
    if text.chars().any(is_line_break) {
        return Err(refuse(
            "\"…\"",
            &text,
            "a line break, which YAML folds into a space",
            "print it with `{{ x | tojson }}` (no quotes around it) or `| quote`, or use a block scalar",
        ));
    }
    let quoted = super::printing::go_quote(&text);
    Ok(Value::from(&quoted[1..quoted.len() - 1]))
}

/// `{{ value }}` inside `'…'`: a `'` doubled; a line break or a character
/// single quotes cannot hold refused.
pub fn in_sq(value: &Value) -> Result<Value, Error> {
    if value.is_undefined() {
        return Ok(Value::UNDEFINED);
    }
    let Some(text) = super::printing::display(value) else { return Ok(Value::from("")) };
    check_single_quotable(&text)?;
    Ok(Value::from(text.replace('\'', "''")))
}

/// Whether `text` can stand in a single-quoted YAML scalar as it is.
pub fn check_single_quotable(text: &str) -> Result<(), Error> {
    if text.chars().any(is_line_break) {
        return Err(refuse(
            "'…'",
            text,
            "a line break, which YAML folds into a space",
            "print it with `| quote` or `| tojson`",
        ));
    }
    if text.chars().any(never_literal) {
        return Err(refuse(
            "'…'",
            text,
            "a control character or a noncharacter, which single quotes cannot hold",
            "print it with `| quote` or `| tojson`",
        ));
    }
    Ok(())
}

/// `{{ value }}` outside quotes: a [`never_literal`] character is refused
/// (it would make the file invalid or read back as another character).
pub fn check_unquoted(text: &str) -> Result<(), Error> {
    if text.chars().any(never_literal) {
        return Err(refuse(
            "plain",
            text,
            "a character YAML cannot hold as written (a control character, `\\r`, NEL, LS/PS or a noncharacter)",
            "print it with `| quote` or `| tojson`",
        ));
    }
    Ok(())
}

/// The template text with each `{{ … }}` that stands inside a `"…"` or `'…'`
/// scalar (on one line) wrapped in [`IN_DQ`] / [`IN_SQ`]; `None` when there
/// is none. Comments, `{% %}` tags and `{% raw %}` blocks are left alone;
/// a quote opens a scalar only where a YAML scalar can start (line start,
/// after `: `, `- `, `[`, `{` or `,`).
pub fn mark_quoted(src: &str) -> Option<String> {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 64);
    let (mut i, mut copied, mut changed) = (0, 0, false);
    let mut quote: Option<u8> = None;
    // Whether a scalar may start here: at line start, after an indicator.
    let mut may_start = true;
    while i < b.len() {
        if b[i..].starts_with(b"{#") {
            i = find(src, i + 2, "#}").map_or(b.len(), |e| e + 2);
            continue;
        }
        if b[i..].starts_with(b"{%") {
            let end = find(src, i + 2, "%}").map_or(b.len(), |e| e + 2);
            let tag = src[i + 2..end.saturating_sub(2).max(i + 2)]
                .trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
            i = end;
            if tag == "raw" {
                i = find(src, i, "endraw").and_then(|e| find(src, e, "%}")).map_or(b.len(), |e| e + 2);
            }
            continue;
        }
        if b[i..].starts_with(b"{{") {
            let Some(end) = find(src, i + 2, "}}") else { break };
            // One line only: an unclosed `{{` keeps minijinja's own message.
            let one_line = !src[i + 2..end].contains('\n');
            if let (Some(q), true) = (quote, one_line) {
                let inner = &src[i + 2..end];
                let (lead, inner) = strip_marker(inner, true);
                let (inner, trail) = strip_marker(inner, false);
                let filter = if q == b'"' { IN_DQ } else { IN_SQ };
                // `(` takes the place of the leading space, so every column
                // inside the expression stays where it was written.
                let wrapped = if needs_parens(inner) {
                    match inner.strip_prefix([' ', '\t']) {
                        Some(rest) => format!("({rest})"),
                        None => format!("({inner})"),
                    }
                } else {
                    inner.trim_end().to_owned()
                };
                out.push_str(&src[copied..i]);
                out.push_str(&format!("{{{{{lead}{wrapped} | {filter} {trail}}}}}"));
                copied = end + 2;
                changed = true;
            }
            i = end + 2;
            may_start = false;
            continue;
        }
        let c = b[i];
        match (quote, c) {
            (_, b'\n') => {
                quote = None;
                may_start = true;
            }
            (Some(b'"'), b'\\') => i += 1,
            (Some(b'"'), b'"') => quote = None,
            (Some(b'\''), b'\'') if b.get(i + 1) == Some(&b'\'') => i += 1,
            (Some(b'\''), b'\'') => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') if may_start => quote = Some(c),
            (None, b' ' | b'\t') => {}
            (None, b'[' | b'{' | b',') => may_start = true,
            (None, b':' | b'-') => may_start = matches!(b.get(i + 1), Some(b' ' | b'\t' | b'\n') | None),
            (None, b'#') => {
                // A comment runs to the end of the line.
                i = find(src, i, "\n").unwrap_or(b.len());
                continue;
            }
            (None, _) => may_start = false,
        }
        i += 1;
    }
    if !changed {
        return None;
    }
    out.push_str(&src[copied.min(src.len())..]);
    Some(out)
}

/// Whether a filter appended to `expr` would bind to less than all of it:
/// `expr` holds an operator or a keyword that binds looser than `|`.
fn needs_parens(expr: &str) -> bool {
    let words = ["and", "or", "not", "if", "else", "in", "is"];
    let mut in_string: Option<char> = None;
    for c in expr.chars() {
        match (in_string, c) {
            (Some(q), c) if c == q => in_string = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => in_string = Some(c),
            (None, '~' | '+' | '-' | '*' | '/' | '%' | '<' | '>' | '=' | '!') => return true,
            _ => {}
        }
    }
    expr.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| words.contains(&w))
}

fn find(src: &str, from: usize, pat: &str) -> Option<usize> {
    src.get(from..)?.find(pat).map(|p| p + from)
}

/// Splits a `-`/`+` whitespace marker off the start (`lead`) or end of a
/// tag's inside.
fn strip_marker(inner: &str, lead: bool) -> (&str, &str) {
    let marked = |c: Option<char>| matches!(c, Some('-' | '+'));
    match lead {
        true if marked(inner.chars().next()) => (&inner[..1], &inner[1..]),
        true => ("", inner),
        false if marked(inner.chars().last()) => (&inner[..inner.len() - 1], &inner[inner.len() - 1..]),
        false => (inner, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::printing::json_for_yaml;

    #[test]
    fn expressions_inside_quoted_scalars_are_marked() {
        assert_eq!(mark_quoted("x: \"{{ v }}\"\n").as_deref(), Some("x: \"{{ v | __in_dq }}\"\n"));
        assert_eq!(mark_quoted("x: 'a{{- v -}}b'").as_deref(), Some("x: 'a{{- v | __in_sq -}}b'"));
        assert_eq!(mark_quoted("- \"{{ a }}{{ b }}\"").unwrap().matches(IN_DQ).count(), 2);
        assert_eq!(mark_quoted("x: \"{{ a ~ b }}\"").as_deref(), Some("x: \"{{(a ~ b ) | __in_dq }}\""));
        assert_eq!(
            mark_quoted("x: \"{{ a if c else 'x-y' }}\"").as_deref(),
            Some("x: \"{{(a if c else 'x-y' ) | __in_dq }}\"")
        );
        assert_eq!(
            mark_quoted("{% macro q(v) %}\"{{ v }}\"{% endmacro %}").as_deref(),
            Some("{% macro q(v) %}\"{{ v | __in_dq }}\"{% endmacro %}")
        );
        for plain in [
            "x: {{ v }}\n",
            "x: don't {{ v }}\n",
            "x: a\"b {{ v }}\n",
            "# \"{{ v }}\"\n",
            "x: \"a\" {{ v }}\n",
            "x: 'it''s' {{ v }}\n",
            "{% raw %}\"{{ v }}\"{% endraw %}",
            "{# \"{{ v }}\" #}",
            "x: \"a\\\"\" {{ v }}",
        ] {
            assert_eq!(mark_quoted(plain), None, "{plain:?}");
        }
    }

    #[test]
    fn json_for_yaml_escapes_what_yaml_reads_otherwise() {
        assert_eq!(
            json_for_yaml("\"a\u{85}b\u{2028}\u{feff}\u{fffe}\u{7f}\""),
            "\"a\\u0085b\\u2028\u{feff}\\ufffe\\u007f\""
        );
        assert_eq!(json_for_yaml("\"é\u{1f600}\""), "\"é\u{1f600}\"");
    }
}
