//! Helper functions and filters available to every template, beyond
//! minijinja's built-ins: `env_or`, `required`, `fail`, and the filters
//! `nindent`, `to_yaml`, `b64encode`, `sha256`, `dns_label`. (`include` and
//! bare-name partial calls live in `engine`, they need the partial index.)

use super::printing::{display, go_quote};
use crate::inventory::EnvAllow;
use base64::Engine as _;

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind, Output, State};
use sha2::{Digest, Sha256};

use crate::inventory::names::to_dns_label;

/// `value | nindent(n)`: a newline, then every line indented by `n` spaces
/// (empty lines stay empty), as in Helm.
pub fn nindent(value: String, n: usize) -> String {
    let pad = " ".repeat(n);
    let mut out = String::with_capacity(value.len() + 16);
    for line in value.trim_end_matches('\n').split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    out
}

/// `value | to_yaml`: block YAML without the document marker or trailing newline.
pub fn to_yaml(value: Value) -> Result<String, Error> {
    let text = serde_yaml::to_string(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("to_yaml: cannot serialize value: {e}")))?;
    Ok(text.trim_end_matches('\n').to_owned())
}

/// `value | b64encode`.
pub fn b64encode(value: String) -> String {
    base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
}

/// `value | sha256`: lower-case hex digest.
pub fn sha256(value: String) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// `value | dns_label`: lower-case, invalid runs become `-`, at most 63 characters.
pub fn dns_label(value: String) -> String {
    to_dns_label(&value)
}

/// `required(value, message)`: the value, or an error with `message` when it
/// is undefined, none or an empty string.
pub fn required(value: Option<Value>, message: Option<String>) -> Result<Value, Error> {
    let value = value.unwrap_or(Value::UNDEFINED);
    let missing = value.is_undefined() || value.is_none() || value.as_str() == Some("");
    if missing {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            message.unwrap_or_else(|| "a required value is missing".into()),
        ));
    }
    Ok(value)
}

/// `fail(message)`: stops the render with `message`.
pub fn fail(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// `env_or(name, default)`: the process environment variable `name` if it is
/// allowed by `templates.env` and set, else `default`. Names outside the
/// allow-list are an error, so CI secrets never leak into a public tree by accident.
/// A value that is not UTF-8, or holds a line break or another control
/// character, is an error too: values are data, never YAML syntax.
pub fn env_or(allowed: &EnvAllow, name: &str, default: Value) -> Result<Value, Error> {
    if !allowed.allows(name) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("env_or(\"{name}\") is not allowed: add `{name}` (or a glob matching it) to templates.env in services.yaml"),
        ));
    }
    let Some(raw) = std::env::var_os(name) else { return Ok(default) };
    let Some(value) = raw.to_str() else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("env_or(\"{name}\"): the value of {name} is not valid UTF-8; set it to UTF-8 text"),
        ));
    };
    if let Some(problem) = crate::inventory::names::value_problem(value) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("env_or(\"{name}\"): the value of {name} {problem}; a template cannot receive YAML syntax from the environment"),
        ));
    }
    Ok(Value::from(value))
}

/// The formatter of `{{ }}`: [`display`], written unescaped. Strings and
/// numbers (most output) go straight to minijinja's writer, unallocated.
pub fn format_output(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    match value.kind() {
        ValueKind::String => {
            if let Some(text) = value.as_str() {
                super::quoting::check_unquoted(text)?;
            }
            minijinja::escape_formatter(out, state, value)
        }
        ValueKind::Number => minijinja::escape_formatter(out, state, value),
        _ => match display(value) {
            Some(text) => out.write_str(&text).map_err(Error::from),
            None => Ok(()),
        },
    }
}

fn strval(filter: &str, value: &Value) -> Result<Option<String>, Error> {
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            format!("`{filter}` got an undefined value; test it with `is defined` or give a default"),
        ));
    }
    Ok(display(value))
}

/// `value | quote`: Helm's `quote` — the value as it prints, in double
/// quotes, escaped as Go's `%q` does (which YAML reads back unchanged);
/// none gives nothing, as Helm's `quote` gives for nil.
pub fn quote(value: &Value) -> Result<String, Error> {
    Ok(strval("quote", value)?.map(|s| go_quote(&s)).unwrap_or_default())
}

/// `value | squote`: Helm's `squote` — the value as it prints, in single
/// quotes. A `'` inside is doubled, as YAML spells it (Helm writes it as is,
/// which no YAML reader accepts); none gives nothing.
pub fn squote(value: &Value) -> Result<String, Error> {
    let Some(text) = strval("squote", value)? else { return Ok(String::new()) };
    super::quoting::check_single_quotable(&text)?;
    Ok(format!("'{}'", text.replace('\'', "''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nindent_indents_every_non_empty_line() {
        assert_eq!(nindent("a: 1\n\nb: 2\n".into(), 4), "\n    a: 1\n\n    b: 2");
    }

    #[test]
    fn to_yaml_has_no_trailing_newline() {
        let v = Value::from_serialize(serde_json::json!({"a": [1, 2]}));
        assert_eq!(to_yaml(v).unwrap(), "a:\n- 1\n- 2");
    }

    #[test]
    fn digests_and_encodings() {
        assert_eq!(b64encode("hi".into()), "aGk=");
        assert_eq!(sha256("".into()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(dns_label("Feature/X_1".into()), "feature-x-1");
    }

    #[test]
    fn required_rejects_missing_values() {
        assert!(required(Some(Value::from("")), Some("need it".into())).unwrap_err().to_string().contains("need it"));
        assert!(required(None, None).is_err());
        assert_eq!(required(Some(Value::from(3)), None).unwrap(), Value::from(3));
    }

    #[test]
    fn env_or_refuses_names_outside_the_allow_list() {
        let allowed = EnvAllow::new(["SHOP_*"]).unwrap();
        let err = env_or(&allowed, "AWS_SECRET_ACCESS_KEY", Value::from("x")).unwrap_err();
        assert!(err.to_string().contains("templates.env"));
        assert_eq!(env_or(&allowed, "SHOP_SURELY_UNSET_VAR", Value::from("d")).unwrap(), Value::from("d"));
    }

    #[test]
    fn go_quote_escapes_as_go_does() {
        // Expected texts are Go's fmt.Sprintf("%q", s).
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\u{7}\u{8}\u{c}\n\r\t\u{b}"), r#""\a\b\f\n\r\t\v""#);
        assert_eq!(go_quote("\u{1b}\u{7f}\u{0}"), r#""\x1b\x7f\x00""#);
        assert_eq!(go_quote("\u{a0}\u{200b}\u{feff}\u{2028}"), r#""\u00a0\u200b\ufeff\u2028""#);
        assert_eq!(go_quote("\u{f0000}é中"), r#""\U000f0000é中""#);
        assert_eq!(go_quote("\u{85}"), r#""\u0085""#);
    }
}
