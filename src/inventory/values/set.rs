//! Helm's `--set` grammar: paths with `.` and `\` escapes, `[n]` indices,
//! `{a,b}` lists, and Helm's typing of the values.

use serde_yaml::Value;

use super::{Override, ValuePath, MAX_INDEX, MAX_STEPS};
use crate::inventory::yaml::Segment;

/// A scanner over one flag's text, with Helm's `\` escape.
pub(super) struct Scanner {
    pub(super) chars: Vec<char>,
    pub(super) pos: usize,
}

impl Scanner {
    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Text up to the first unescaped `stop` character, which is consumed
    /// and returned (`None` at the end of the text).
    fn until(&mut self, stop: &[char]) -> Result<(String, Option<char>), String> {
        let mut text = String::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            if stop.contains(&c) {
                return Ok((text, Some(c)));
            }
            if c == '\\' {
                match self.peek() {
                    Some(next) => {
                        self.pos += 1;
                        text.push(next);
                    }
                    None => return Err("it ends with a lone `\\`; write `\\\\` for a backslash".into()),
                }
                continue;
            }
            text.push(c);
        }
        Ok((text, None))
    }
}

/// Helm's typing of a `--set` value: `true`/`false` (any case) are bools,
/// `null` is null, a decimal integer not starting with `0` (or `0` itself)
/// is an integer; anything else (`1.5`, `007`, `1e3`, ``) is text.
/// `--set-string` keeps every value as text.
pub fn typed(text: &str, strings: bool) -> Value {
    if strings {
        return Value::String(text.to_owned());
    }
    if text.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if text.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    if text.eq_ignore_ascii_case("null") {
        return Value::Null;
    }
    if text == "0" {
        return Value::from(0);
    }
    if !text.is_empty() && !text.starts_with('0') {
        if let Ok(n) = text.parse::<i64>() {
            return Value::from(n);
        }
    }
    Value::String(text.to_owned())
}

/// Parses the path of one assignment, up to and including its `=`.
pub(super) fn parse_path(sc: &mut Scanner) -> Result<Vec<Segment>, String> {
    let mut steps = Vec::new();
    'keys: loop {
        let (key, last) = sc.until(&['=', '[', ',', '.'])?;
        match last {
            None | Some(',') if key.is_empty() && steps.is_empty() => {
                return Err("expected PATH=VALUE".into());
            }
            None | Some(',') => {
                let mut p = steps.clone();
                p.push(Segment::Key(key));
                return Err(format!("`{}` has no value; expected PATH=VALUE", ValuePath(p)));
            }
            _ => {}
        }
        if key.is_empty() {
            return Err("a key in the path is empty (`..`, a leading `.` or `[` without a name)".into());
        }
        steps.push(Segment::Key(key));
        if steps.len() > MAX_STEPS {
            return Err(format!("the path is deeper than {MAX_STEPS} steps"));
        }
        match last {
            Some('.') => continue,
            Some('=') => return Ok(steps),
            _ => {}
        }
        // `[` opened: one or more indices.
        loop {
            let (text, last) = sc.until(&[']'])?;
            if last.is_none() {
                return Err(format!("`[{text}` is not closed with `]`"));
            }
            let index = match text.trim().parse::<i64>() {
                Ok(i) if i < 0 => return Err(format!("negative index `[{i}]`; indices count from 0")),
                Ok(i) if i as u64 > MAX_INDEX as u64 => {
                    return Err(format!("index `[{i}]` is larger than {MAX_INDEX}"));
                }
                Ok(i) => i as usize,
                Err(_) => return Err(format!("`[{text}]` is not a list index; write a number such as `[0]`")),
            };
            steps.push(Segment::Index(index));
            if steps.len() > MAX_STEPS {
                return Err(format!("the path is deeper than {MAX_STEPS} steps"));
            }
            // Each index fills the list before it: bound what one path makes.
            let filled: usize = steps.iter().map(|s| if let Segment::Index(i) = s { *i } else { 0 }).sum();
            if filled > MAX_INDEX {
                return Err(format!("the indices of one path add up to more than {MAX_INDEX}"));
            }
            let (extra, last) = sc.until(&['[', '.', '='])?;
            if !extra.is_empty() {
                return Err(format!("unexpected `{extra}` after `[{index}]`"));
            }
            match last {
                Some('[') => continue,
                Some('.') => continue 'keys,
                Some('=') => return Ok(steps),
                _ => return Err(format!("`{}` has no value; expected PATH=VALUE", ValuePath(steps))),
            }
        }
    }
}

/// Parses the value of one assignment: a `{a,b}` list or text up to an
/// unescaped `,`.
fn parse_value(sc: &mut Scanner, strings: bool) -> Result<Value, String> {
    if sc.peek() != Some('{') {
        let (text, _) = sc.until(&[','])?;
        return Ok(typed(&text, strings));
    }
    sc.pos += 1;
    let mut items = Vec::new();
    loop {
        let (text, last) = sc.until(&[',', '}'])?;
        match last {
            None => return Err("a list must end with `}`".into()),
            Some('}') => {
                // `{}` is an empty list (Helm 3 reads it as a list of one empty string; see docs/cli.md).
                if !(text.is_empty() && items.is_empty()) {
                    items.push(typed(&text, strings));
                }
                if sc.peek() == Some(',') {
                    sc.pos += 1;
                }
                return Ok(Value::Sequence(items));
            }
            _ => items.push(typed(&text, strings)),
        }
    }
}

/// Parses one `--set` (or, with `strings`, `--set-string`) argument with
/// Helm's grammar: `PATH=VALUE[,PATH=VALUE…]`, keys separated by `.`, `\`
/// escaping the next character (`iam\.gke\.io/role`, `a\,b`), `[n]` list
/// indices, `{a,b}` lists. `flag` names the flag in messages.
pub fn parse_set(flag: &str, text: &str, strings: bool) -> Result<Vec<Override>, String> {
    let fail = |e: String| format!("{flag} {text}: {e}, e.g. {flag} versions.users=1.5.0 or {flag} vars.hosts[0]=a");
    let mut sc = Scanner { chars: text.chars().collect(), pos: 0 };
    let mut out = Vec::new();
    loop {
        let start = sc.pos;
        let path = ValuePath(parse_path(&mut sc).map_err(fail)?);
        let versions = matches!(path.0.first(), Some(Segment::Key(k)) if k == "versions");
        // A version is text as written, whatever it looks like.
        let value = parse_value(&mut sc, strings || versions).map_err(fail)?;
        let written: String = sc.chars[start..sc.pos].iter().collect();
        let origin = format!("{flag} {}", written.trim_end_matches(','));
        out.push(Override { path, value, origin });
        if sc.at_end() {
            return Ok(out);
        }
    }
}
