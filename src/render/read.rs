//! Reading rendered YAML back into values: the emitter's twin.
//!
//! Templates produce text, but overlays, labels, namespaces and Job hashes
//! patch values, so every rendered document is read back. serde_yaml
//! (libyaml underneath) spends about 300 instructions a byte on that, the
//! largest single cost of a render (docs/performance.md). Rendered manifests
//! use a small part of YAML: block mappings and sequences, plain and quoted
//! one-line scalars, literal blocks, empty flow collections and comments.
//! [`fast`] reads exactly that subset and gives up (`None`) on anything
//! else — anchors, aliases, tags, flow collections with content, folded or
//! multi-line scalars, quoted keys, tabs, odd indentation, duplicate keys,
//! characters YAML treats as line breaks — so [`document`] falls back to
//! serde_yaml there and the value, or the error, is always serde_yaml's.
//!
//! Plain scalars resolve by serde_yaml 0.9's rules (`de.rs`,
//! `visit_untagged_scalar`): empty, `~` and `null` in three spellings are
//! null; `true`/`false` in three spellings are booleans; decimal, `0x`,
//! `0o` and `0b` integers that fit 64 bits are numbers; finite floats and
//! `.inf`/`.nan` are numbers; the rest are strings. The unit tests, the
//! property test in `tests/props.rs` and the fuzz target `read` hold
//! [`fast`] to serde_yaml: whenever it returns a value, serde_yaml reads
//! the same value from the same text.

use serde_yaml::{Mapping, Number, Value};

/// Nesting deeper than this is left to serde_yaml (which stops at 128).
const MAX_DEPTH: usize = 100;

/// The longest implicit key YAML allows (libyaml's simple-key limit).
const MAX_KEY_LEN: usize = 1024;

/// Reads one YAML document (no `---` inside): the fast reader where it
/// applies, serde_yaml otherwise.
pub fn document(text: &str) -> Result<Value, serde_yaml::Error> {
    match fast(text) {
        Some(value) => Ok(value),
        None => serde_yaml::from_str(text),
    }
}

/// The value of `text` when it lies in the subset this reader knows, else
/// `None`. Never a value serde_yaml would not read from the same text.
pub fn fast(text: &str) -> Option<Value> {
    if !printable(text) {
        return None;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.iter().any(|l| is_marker(l)) {
        return None; // another document: serde_yaml reports it
    }
    let mut reader = Reader { lines, pos: 0, depth: 0 };
    let Some((indent, first)) = reader.peek() else { return Some(Value::Null) };
    let value = if is_entry(first) {
        reader.sequence(indent)?
    } else {
        reader.pos += 1;
        reader.mapping(indent, first)?
    };
    match reader.peek() {
        Some(_) => None,
        None => Some(value),
    }
}

/// Only characters every YAML reader takes as themselves: printable ASCII,
/// LF, and the printable non-ASCII ranges of the YAML spec less the three
/// YAML 1.1 line breaks and the byte-order mark.
fn printable(text: &str) -> bool {
    if !text.bytes().all(|b| b == b'\n' || (b >= 0x20 && b != 0x7f)) {
        return false;
    }
    text.is_ascii()
        || text.chars().all(|c| {
            matches!(c, '\n' | ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
                && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
        })
}

/// A document marker line: `---` or `...` at column 0, alone or before a space.
fn is_marker(line: &str) -> bool {
    (line.starts_with("---") || line.starts_with("...")) && line.as_bytes().get(3).is_none_or(|b| *b == b' ')
}

/// A block sequence entry: `-` alone or followed by a space.
fn is_entry(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

struct Reader<'a> {
    lines: Vec<&'a str>,
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    /// The next line with content, as (indentation, text after it), not
    /// consumed; blank and comment lines before it are skipped.
    fn peek(&mut self) -> Option<(usize, &'a str)> {
        while let Some(line) = self.lines.get(self.pos) {
            let text = line.trim_start_matches(' ');
            if !text.is_empty() && !text.starts_with('#') {
                return Some((line.len() - text.len(), text));
            }
            self.pos += 1;
        }
        None
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// The block node on the next lines, whose first line is at `indent`.
    fn node(&mut self, indent: usize) -> Option<Value> {
        let (_, text) = self.peek()?;
        if is_entry(text) {
            self.sequence(indent)
        } else {
            self.pos += 1;
            self.mapping(indent, text)
        }
    }

    /// A block mapping at column `n` whose first entry is `first` (already
    /// consumed); the rest are the following lines at column `n`.
    fn mapping(&mut self, n: usize, first: &'a str) -> Option<Value> {
        self.enter()?;
        let mut map = Mapping::new();
        let mut line = first;
        loop {
            let (key, rest) = split_key(line)?;
            let key = plain(key)?;
            let value = self.value_after(rest, n)?;
            if map.insert(key, value).is_some() {
                return None; // serde_yaml refuses duplicate keys
            }
            match self.peek() {
                Some((i, text)) if i == n && !is_entry(text) => {
                    self.pos += 1;
                    line = text;
                }
                // Deeper: a plain scalar continued, or bad indentation.
                // At `n`, an entry not right after `key:` is an error.
                Some((i, _)) if i >= n => return None,
                _ => break,
            }
        }
        self.depth -= 1;
        Some(Value::Mapping(map))
    }

    /// The value after `key:`, whose mapping is at column `n`: on this line,
    /// or on the following ones (a deeper node, or a sequence at `n`).
    fn value_after(&mut self, rest: &'a str, n: usize) -> Option<Value> {
        let rest = rest.trim_start_matches(' ');
        if !rest.is_empty() && !rest.starts_with('#') {
            return self.inline(rest, n);
        }
        match self.peek() {
            Some((i, _)) if i > n => self.node(i),
            Some((i, text)) if i == n && is_entry(text) => self.sequence(n),
            _ => Some(Value::Null),
        }
    }

    /// A block sequence whose entries are at column `n`.
    fn sequence(&mut self, n: usize) -> Option<Value> {
        self.enter()?;
        let mut seq = Vec::new();
        while let Some((i, text)) = self.peek() {
            if i < n || (i == n && !is_entry(text)) {
                break;
            }
            if i > n {
                return None; // a plain scalar continued, or bad indentation
            }
            self.pos += 1;
            let after = &text[1..];
            let item = after.trim_start_matches(' ');
            let column = n + 1 + (after.len() - item.len());
            let value = if item.is_empty() || item.starts_with('#') {
                match self.peek() {
                    Some((i, _)) if i > n => self.node(i)?,
                    _ => Value::Null,
                }
            } else if is_entry(item) {
                return None; // `- - x`
            } else if split_key(item).is_some() {
                self.mapping(column, item)?
            } else {
                self.inline(item, n)?
            };
            seq.push(value);
        }
        self.depth -= 1;
        Some(Value::Sequence(seq))
    }

    /// A value written on the line of its key or entry (`s`, not empty, not
    /// a comment); its collection is at column `n`.
    fn inline(&mut self, s: &'a str, n: usize) -> Option<Value> {
        let bytes = s.as_bytes();
        match bytes[0] {
            b'"' => {
                let (value, after) = double_quoted(s)?;
                only_comment(after).then_some(Value::String(value))
            }
            b'\'' => {
                let (value, after) = single_quoted(s)?;
                only_comment(after).then_some(Value::String(value))
            }
            b'|' => self.literal(s, n),
            b'[' | b'{' => {
                let (value, after) = flow(s, self.depth)?;
                only_comment(after).then_some(value)
            }
            b'&' | b'*' | b'!' | b'>' | b'%' | b'@' | b'`' | b',' | b']' | b'}' | b'#' => None,
            b'-' | b'?' | b':' if bytes.len() == 1 || bytes[1] == b' ' => None,
            _ => {
                let text = strip_comment(s);
                if text.contains(": ") || text.ends_with(':') {
                    return None;
                }
                plain(text)
            }
        }
    }

    /// A literal block scalar (`|` or `|-`, indentation detected) whose
    /// collection is at column `n`; its lines follow the header `header`.
    fn literal(&mut self, header: &str, n: usize) -> Option<Value> {
        let strip = match header.trim_end_matches(' ') {
            "|" => false,
            "|-" => true,
            _ => return None, // `|+`, indentation indicators, comments: serde_yaml's
        };
        let mut out = String::new();
        let mut indent: Option<usize> = None;
        let mut breaks = 0;
        while let Some(line) = self.lines.get(self.pos) {
            let text = line.trim_start_matches(' ');
            let spaces = line.len() - text.len();
            if text.is_empty() {
                // A blank line: a break, unless it holds spaces beyond the
                // indentation (content) or precedes the first content line
                // with spaces (it would set the indentation): serde_yaml's.
                if spaces > 0 && indent.is_none_or(|m| spaces > m) {
                    return None;
                }
                breaks += 1;
                self.pos += 1;
                continue;
            }
            let m = match indent {
                None if spaces <= n => break,
                None => *indent.insert(spaces),
                Some(m) if spaces < m => break,
                Some(m) => m,
            };
            for _ in 0..breaks {
                out.push('\n');
            }
            breaks = 0;
            out.push_str(&line[m..]);
            // The last line of a text without a final newline has no break.
            if self.pos + 1 < self.lines.len() {
                out.push('\n');
            }
            self.pos += 1;
        }
        if strip && out.ends_with('\n') {
            out.pop();
        }
        Some(Value::String(out))
    }
}

/// A flow collection closed on this line (`[a, "b", {c: d}]`) and the text
/// after it. Its plain scalars hold no `:` or `#`; entries that are
/// single-pair mappings, trailing commas and quoted keys are serde_yaml's.
fn flow(s: &str, depth: usize) -> Option<(Value, &str)> {
    if depth >= MAX_DEPTH {
        return None;
    }
    let (close, is_map) = match s.as_bytes()[0] {
        b'[' => (b']', false),
        _ => (b'}', true),
    };
    let mut seq = Vec::new();
    let mut map = Mapping::new();
    let mut rest = s[1..].trim_start_matches(' ');
    if rest.as_bytes().first() != Some(&close) {
        loop {
            if is_map {
                let (key, after) = flow_plain(rest)?;
                if !starts_key(key) {
                    return None;
                }
                let after = after.strip_prefix(": ")?.trim_start_matches(' ');
                let (value, after) = flow_item(after, depth)?;
                if map.insert(plain(key)?, value).is_some() {
                    return None;
                }
                rest = after.trim_start_matches(' ');
            } else {
                let (value, after) = flow_item(rest, depth)?;
                seq.push(value);
                rest = after.trim_start_matches(' ');
            }
            match rest.as_bytes().first()? {
                b',' => {
                    rest = rest[1..].trim_start_matches(' ');
                    if rest.starts_with([']', '}', ',']) {
                        return None;
                    }
                }
                c if *c == close => break,
                _ => return None,
            }
        }
    }
    let value = if is_map { Value::Mapping(map) } else { Value::Sequence(seq) };
    Some((value, &rest[1..]))
}

/// One entry of a flow collection and the text after it.
fn flow_item(s: &str, depth: usize) -> Option<(Value, &str)> {
    match s.as_bytes().first()? {
        b'[' | b'{' => flow(s, depth + 1),
        b'"' => double_quoted(s).map(|(v, rest)| (Value::String(v), rest)),
        b'\'' => single_quoted(s).map(|(v, rest)| (Value::String(v), rest)),
        _ => {
            let (text, rest) = flow_plain(s)?;
            Some((plain(text)?, rest))
        }
    }
}

/// A plain scalar inside a flow collection, up to the next `,`, `[`, `]`,
/// `{`, `}` or `:`, and the text after it.
fn flow_plain(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    let first = *bytes.first()?;
    // In a flow collection `?` and `:` are always indicators (libyaml).
    if b",[]{}#&*!|>'\"%@`?:".contains(&first) || (first == b'-' && bytes.get(1).is_none_or(|c| b" ,[]{}".contains(c)))
    {
        return None;
    }
    let end = bytes.iter().position(|c| b",[]{}:#".contains(c)).unwrap_or(bytes.len());
    if bytes.get(end) == Some(&b'#') {
        return None;
    }
    let text = s[..end].trim_end_matches(' ');
    Some((text, &s[end..]))
}

/// Whether a plain key may start with this: letters, digits, `_ . / $`.
fn starts_key(key: &str) -> bool {
    key.as_bytes().first().is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'$'))
}

/// `key` and the text after its `:` when `line` is `plain key: …`.
fn split_key(line: &str) -> Option<(&str, &str)> {
    if !starts_key(line) {
        return None;
    }
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b':' if i + 1 == bytes.len() || bytes[i + 1] == b' ' => {
                let key = &line[..i];
                if key.ends_with(' ') || key.len() > MAX_KEY_LEN {
                    return None;
                }
                return Some((key, &line[i + 1..]));
            }
            b'#' if bytes[i - 1] == b' ' => return None,
            _ => {}
        }
    }
    None
}

/// `s` without a trailing ` # comment` and trailing spaces.
fn strip_comment(s: &str) -> &str {
    let end = s.find(" #").unwrap_or(s.len());
    s[..end].trim_end_matches(' ')
}

/// Whether what follows a quoted scalar is nothing, spaces, or a comment.
fn only_comment(after: &str) -> bool {
    let rest = after.trim_start_matches(' ');
    rest.is_empty() || (rest.starts_with('#') && after.starts_with(' '))
}

/// A double-quoted scalar ending on this line, and the text after it.
fn double_quoted(s: &str) -> Option<(String, &str)> {
    let bytes = s.as_bytes();
    let mut out = String::new();
    let (mut i, mut start) = (1, 1);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                out.push_str(&s[start..i]);
                return Some((out, &s[i + 1..]));
            }
            b'\\' => {
                out.push_str(&s[start..i]);
                let (c, len) = escape(&s[i + 1..])?;
                out.push(c);
                i += 1 + len;
                start = i;
            }
            _ => i += 1,
        }
    }
    None
}

/// The character of a double-quoted escape (after its `\`) and the escape's
/// length; `None` for a line continuation or anything unknown.
fn escape(s: &str) -> Option<(char, usize)> {
    let c = match s.as_bytes().first()? {
        b'0' => '\0',
        b'a' => '\x07',
        b'b' => '\x08',
        b't' => '\t',
        b'n' => '\n',
        b'v' => '\x0b',
        b'f' => '\x0c',
        b'r' => '\r',
        b'e' => '\x1b',
        b' ' => ' ',
        b'"' => '"',
        b'/' => '/',
        b'\\' => '\\',
        b'N' => '\u{85}',
        b'_' => '\u{a0}',
        b'L' => '\u{2028}',
        b'P' => '\u{2029}',
        b'x' => return hex_escape(s, 2),
        b'u' => return hex_escape(s, 4),
        b'U' => return hex_escape(s, 8),
        _ => return None,
    };
    Some((c, 1))
}

fn hex_escape(s: &str, digits: usize) -> Option<(char, usize)> {
    let hex = s.get(1..1 + digits)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
    Some((c, 1 + digits))
}

/// A single-quoted scalar ending on this line (`''` is a quote), and the
/// text after it.
fn single_quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut rest = &s[1..];
    loop {
        let end = rest.find('\'')?;
        out.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        match rest.strip_prefix('\'') {
            Some(after) => {
                out.push('\'');
                rest = after;
            }
            None => return Some((out, rest)),
        }
    }
}

/// A plain scalar resolved as serde_yaml resolves it; `None` for integers
/// beyond 64 bits (serde_yaml's own business).
fn plain(s: &str) -> Option<Value> {
    let Some(&first) = s.as_bytes().first() else { return Some(Value::Null) };
    // Only these can start a null, a boolean or a number (Rust's float
    // parser also reads `inf` and `nan`, which are not finite: strings).
    if !(first.is_ascii_digit() || b"+-.~nNtTfF".contains(&first)) {
        return Some(Value::String(s.to_owned()));
    }
    match s {
        "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        _ => {}
    }
    if let Some(n) = parse_unsigned_int(s, u64::from_str_radix) {
        return Some(Value::Number(n.into()));
    }
    if let Some(n) = parse_negative_int(s, i64::from_str_radix) {
        return Some(Value::Number(n.into()));
    }
    if parse_unsigned_int(s, u128::from_str_radix).is_some() || parse_negative_int(s, i128::from_str_radix).is_some() {
        return None;
    }
    if !digits_but_not_number(s) {
        if let Some(f) = parse_f64(s) {
            return Some(Value::Number(Number::from(f)));
        }
    }
    Some(Value::String(s.to_owned()))
}

// The number rules below follow serde_yaml 0.9.34 `de.rs` (MIT OR
// Apache-2.0) step for step; the unit tests compare them with serde_yaml.

type Radix<T> = fn(&str, u32) -> Result<T, std::num::ParseIntError>;

fn parse_unsigned_int<T>(scalar: &str, from_str_radix: Radix<T>) -> Option<T> {
    let unpositive = scalar.strip_prefix('+').unwrap_or(scalar);
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = unpositive.strip_prefix(prefix) {
            if rest.starts_with(['+', '-']) {
                return None;
            }
            if let Ok(int) = from_str_radix(rest, radix) {
                return Some(int);
            }
        }
    }
    if unpositive.starts_with(['+', '-']) || digits_but_not_number(scalar) {
        return None;
    }
    from_str_radix(unpositive, 10).ok()
}

fn parse_negative_int<T>(scalar: &str, from_str_radix: Radix<T>) -> Option<T> {
    for (prefix, radix) in [("-0x", 16), ("-0o", 8), ("-0b", 2)] {
        if let Some(rest) = scalar.strip_prefix(prefix) {
            if let Ok(int) = from_str_radix(&format!("-{rest}"), radix) {
                return Some(int);
            }
        }
    }
    if digits_but_not_number(scalar) {
        return None;
    }
    from_str_radix(scalar, 10).ok()
}

fn parse_f64(scalar: &str) -> Option<f64> {
    let unpositive = match scalar.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => scalar,
    };
    if matches!(unpositive, ".inf" | ".Inf" | ".INF") {
        return Some(f64::INFINITY);
    }
    if matches!(scalar, "-.inf" | "-.Inf" | "-.INF") {
        return Some(f64::NEG_INFINITY);
    }
    if matches!(scalar, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN.copysign(1.0));
    }
    unpositive.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Leading zeros before digits: a string in YAML 1.2 (`0755`, `-012`).
fn digits_but_not_number(scalar: &str) -> bool {
    let scalar = scalar.strip_prefix(['-', '+']).unwrap_or(scalar);
    scalar.len() > 1 && scalar.starts_with('0') && scalar[1..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fast` reads `text` and agrees with serde_yaml.
    fn agrees(text: &str) {
        let ours = fast(text).unwrap_or_else(|| panic!("the fast reader gave up on:\n{text}"));
        let theirs: Value = serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(ours, theirs, "\n{text}");
    }

    /// `fast` leaves `text` to serde_yaml.
    fn declines(text: &str) {
        assert_eq!(fast(text), None, "the fast reader should decline:\n{text}");
    }

    #[test]
    fn reads_what_templates_render() {
        agrees(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  labels:\n    app.kubernetes.io/name: api\n\
             spec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: api\n          image: \"r/api:1.0\"\n\
             \x20         args: []\n          env:\n          - name: A\n            value: 'it''s'\n          resources: {}\n",
        );
        agrees("a: 1 # one\n# between\nb:\n- x\n-   y: 2\n    z: ~\n-\n  - nested\nc: |\n  line 1\n\n    deeper\n  # kept\nd: |-\n  strip\n\ne: end\n");
        agrees(
            "top:\n  -\n  - \"\\u00e9\\x41\\\\ \\\"q\\\" \\n\"\n  - ''\n  - ' x '\nk: http://host:8080/p?q=a#frag\n",
        );
        agrees("# only a comment\n");
        agrees("");
        agrees("- a\n- b: c\n");
        agrees("a: |\n\n\n  after two blank lines\nb: |\nc: x\n");
        // No final newline (fuzz/regressions/read/crash-65d52db4…).
        agrees("a: |\n  x\n  last");
        agrees("a: |-\n  x\n  last");
        agrees("naïve: ✓ déjà\n");
        agrees("drop: [ALL]\nhttpGet: {path: /healthz, port: http}\nport: {name: http} # c\nargs: [--save, \"\", --appendonly, \"no\", 200mb, 0.0.0.0, \"5173\", -U, it's]\n");
        agrees("- [ a , [b, {c: [d]}], {} , [] , 'q' ]\n- {x: 1, y: ~, z: true}\n");
    }

    #[test]
    fn resolves_plain_scalars_as_serde_yaml_does() {
        for s in [
            "~",
            "null",
            "Null",
            "NULL",
            "nul",
            "true",
            "True",
            "TRUE",
            "tRUE",
            "false",
            "yes",
            "no",
            "on",
            "off",
            "y",
            "0",
            "-0",
            "+0",
            "00",
            "0755",
            "-012",
            "+012",
            "8080",
            "+8080",
            "-1",
            "--1",
            "+-1",
            "0x1F",
            "0x",
            "-0x1F",
            "0o17",
            "-0o17",
            "0b101",
            "-0b101",
            "0x+1",
            "1_000",
            "1.5",
            "-1.5",
            "+1.5",
            ".5",
            "5.",
            "1e3",
            "1E-3",
            "-.inf",
            ".inf",
            "+.inf",
            ".Inf",
            ".NaN",
            ".nan",
            "inf",
            "nan",
            "NaN",
            "infinity",
            "18446744073709551615",
            "-9223372036854775808",
            "1.0.0",
            "v1",
            "1Gi",
            "100m",
            "0.25",
            "2s",
            "12:30",
            ".",
            "+",
            "..",
            "-a",
            "?x",
            ":x",
        ] {
            let value = format!("k: {s}\n");
            let ours = fast(&value).unwrap_or_else(|| panic!("declined the value `{s}`"));
            assert_eq!(ours, serde_yaml::from_str::<Value>(&value).unwrap(), "value `{s}`");
            // Keys resolve alike; those starting with `+`, `-` or `~` are left to serde_yaml.
            let key = format!("{s}: k\n");
            if let Some(ours) = fast(&key) {
                assert_eq!(ours, serde_yaml::from_str::<Value>(&key).unwrap(), "key `{s}`");
            }
        }
        // Beyond 64 bits: left to serde_yaml.
        declines("k: 18446744073709551616\n");
    }

    #[test]
    fn declines_what_it_does_not_know() {
        for text in [
            "a: &x 1\nb: *x\n",
            "a: !tag x\n",
            "a: [1, 2\n",
            "a: [1, 2,]\n",
            "a: [a: b]\n",
            "a: [x:y]\n",
            "a: [-]\n",
            "a: [?null]\n",
            "a: [:x]\n",
            "a: {\"b\": c}\n",
            "a: {b: 1, b: 2}\n",
            "a: {b:c}\n",
            "a: [1] x\n",
            "a: [x #c]\n",
            "a: >\n  folded\n",
            "a: |+\n  keep\n",
            "a: |2\n   x\n",
            "a: plain\n  continued\n",
            "a: \"two\n  lines\"\n",
            "\"quoted key\": x\n",
            "? complex\n: x\n",
            "a:\tb\n",
            "a: b\r\n",
            "a: x\u{2028}y\n",
            "\u{feff}a: b\n",
            "a: 1\na: 2\n",
            "a: -\n",
            "a: b: c\n",
            "a: b:\n",
            "a:\n  b: 1\n c: 2\n",
            "a: 1\n- b\n",
            "- - a\n",
            "<<: {}\n",
            "%YAML 1.2\n",
            "plain scalar\n",
            "a: |\n  \n  x\n",
            "a: \"x\"y\n",
            "a: \"\\q\"\n",
            "a: \"\\\n",
            "a: 1\n... b: 2\n",
            "a: |\n  x\n---\n",
        ] {
            declines(text);
        }
    }

    /// The fallback gives serde_yaml's value, or its error.
    #[test]
    fn document_falls_back_to_serde_yaml() {
        assert_eq!(document("a: [1, 2,]\n").unwrap()["a"][1], Value::Number(2.into()));
        assert!(document("a: 1\na: 2\n").is_err());
        assert!(document("a: b: c\n").is_err());
    }
}
