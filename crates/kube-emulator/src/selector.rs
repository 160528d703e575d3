//! Label and field selectors, parsed from the string syntax used in the
//! `labelSelector` / `fieldSelector` query parameters.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `key=value` or `key==value`
    Equals(String, String),
    /// `key!=value` (also matches objects without the label)
    NotEquals(String, String),
    /// `key in (a,b)`
    In(String, Vec<String>),
    /// `key notin (a,b)` (also matches objects without the label)
    NotIn(String, Vec<String>),
    /// `key`
    Exists(String),
    /// `!key`
    DoesNotExist(String),
    /// `key>N`
    Gt(String, i64),
    /// `key<N`
    Lt(String, i64),
}

/// A parsed label selector: all requirements must hold (logical AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<LabelRequirement>,
}

/// A parsed field selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// `(field path, value, negated)`
    pub requirements: Vec<(String, String, bool)>,
}

fn valid_label_key(key: &str) -> bool {
    if key.is_empty() || key.len() > 317 {
        return false;
    }
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty()
                || !prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            {
                return false;
            }
            name
        }
        None => key,
    };
    valid_label_value(name) && !name.is_empty()
}

fn valid_label_value(v: &str) -> bool {
    if v.len() > 63 {
        return false;
    }
    if v.is_empty() {
        return true;
    }
    let ok_chars = v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    let first = v.chars().next().unwrap_or('a');
    let last = v.chars().last().unwrap_or('a');
    ok_chars && first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric()
}

/// Split on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced parentheses".into());
                }
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    parts.push(cur);
    Ok(parts)
}

fn parse_set(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("found '{rest}', expected: '(' ... ')'"))?;
    let mut values = Vec::new();
    for v in inner.split(',') {
        let v = v.trim();
        if !valid_label_value(v) {
            return Err(format!("invalid label value: {v:?}"));
        }
        values.push(v.to_string());
    }
    Ok(values)
}

impl LabelSelector {
    /// Parse the Kubernetes label selector string syntax.
    pub fn parse(input: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if input.trim().is_empty() {
            return Ok(Self { requirements });
        }
        for raw in split_top_level(input)? {
            let part = raw.trim();
            if part.is_empty() {
                return Err(format!("unable to parse requirement: empty term in {input:?}"));
            }
            requirements.push(Self::parse_requirement(part)?);
        }
        Ok(Self { requirements })
    }

    fn parse_requirement(part: &str) -> Result<LabelRequirement, String> {
        let check_key = |k: &str| -> Result<String, String> {
            let k = k.trim();
            if valid_label_key(k) {
                Ok(k.to_string())
            } else {
                Err(format!("invalid label key {k:?}"))
            }
        };
        let check_val = |v: &str| -> Result<String, String> {
            let v = v.trim();
            if valid_label_value(v) {
                Ok(v.to_string())
            } else {
                Err(format!("invalid label value: {v:?}"))
            }
        };
        if let Some(key) = part.strip_prefix('!') {
            return Ok(LabelRequirement::DoesNotExist(check_key(key)?));
        }
        if let Some((k, v)) = part.split_once("!=") {
            return Ok(LabelRequirement::NotEquals(check_key(k)?, check_val(v)?));
        }
        if let Some((k, v)) = part.split_once("==") {
            return Ok(LabelRequirement::Equals(check_key(k)?, check_val(v)?));
        }
        if let Some((k, v)) = part.split_once('=') {
            return Ok(LabelRequirement::Equals(check_key(k)?, check_val(v)?));
        }
        for (op, gt) in [('>', true), ('<', false)] {
            if let Some((k, v)) = part.split_once(op) {
                let n: i64 = v.trim().parse().map_err(|_| format!("invalid integer value {:?}", v.trim()))?;
                let k = check_key(k)?;
                return Ok(if gt { LabelRequirement::Gt(k, n) } else { LabelRequirement::Lt(k, n) });
            }
        }
        // set-based: "key in (..)" / "key notin (..)"
        let mut words = part.splitn(2, char::is_whitespace);
        let key = words.next().unwrap_or_default();
        let rest = words.next().map(str::trim_start).unwrap_or_default();
        if rest.is_empty() {
            return Ok(LabelRequirement::Exists(check_key(key)?));
        }
        if let Some(set) = rest.strip_prefix("notin") {
            return Ok(LabelRequirement::NotIn(check_key(key)?, parse_set(set)?));
        }
        if let Some(set) = rest.strip_prefix("in") {
            return Ok(LabelRequirement::In(check_key(key)?, parse_set(set)?));
        }
        Err(format!("unable to parse requirement: {part:?}"))
    }

    /// Does the object (its `metadata.labels`) satisfy the selector?
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| -> Option<&str> { labels.and_then(|l| l.get(k)).and_then(Value::as_str) };
        self.requirements.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::DoesNotExist(k) => get(k).is_none(),
            LabelRequirement::Gt(k, n) => get(k).and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x > *n),
            LabelRequirement::Lt(k, n) => get(k).and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x < *n),
        })
    }
}

impl FieldSelector {
    /// Parse `a=b,c!=d` (also `==`). Only the fields in `supported` are
    /// accepted, mirroring the apiserver's "field label not supported" error.
    pub fn parse(input: &str, supported: &[&str]) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if input.trim().is_empty() {
            return Ok(Self { requirements });
        }
        for part in input.split(',') {
            let part = part.trim();
            let (field, value, negated) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, false)
            } else {
                return Err(format!("invalid selector: '{input}'; can't understand '{part}'"));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            requirements.push((field.to_string(), value.trim().to_string(), negated));
        }
        Ok(Self { requirements })
    }

    /// Does the object satisfy the selector? Missing fields compare as "".
    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|(field, value, negated)| {
            let actual = field_value(obj, field);
            (actual == *value) != *negated
        })
    }
}

/// Resolve a dotted field path to its string form (as the apiserver's field
/// label conversion does). Missing values are the empty string.
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_selector_forms() {
        let o = obj(json!({"app": "web", "tier": "fe", "n": "5"}));
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=db", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("missing notin (db)", true),
            ("app notin (web)", false),
            ("app=web,tier=fe", true),
            ("app=web,tier=be", false),
            ("app in (web, db),tier", true),
            ("n>4", true),
            ("n<4", false),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&o), want, "{sel}");
        }
    }

    #[test]
    fn label_selector_errors() {
        for bad in ["app=", "=x", "app in web", "app in (a", "a,,b", "app=web!"] {
            // "app=" is actually valid (empty value) in Kubernetes
            if bad == "app=" {
                assert!(LabelSelector::parse(bad).is_ok());
                continue;
            }
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selector() {
        let o = obj(json!({}));
        let sup = ["metadata.name", "metadata.namespace"];
        let s = FieldSelector::parse("metadata.name=x,metadata.namespace!=other", &sup).unwrap();
        assert!(s.matches(&o));
        let s = FieldSelector::parse("metadata.name==y", &sup).unwrap();
        assert!(!s.matches(&o));
        assert!(FieldSelector::parse("spec.foo=1", &sup).is_err());
        assert!(FieldSelector::parse("garbage", &sup).is_err());
    }
}
