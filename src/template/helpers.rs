//! Helper functions and filters available to every template, beyond
//! minijinja's built-ins: `env_or`, `required`, `fail`, and the filters
//! `nindent`, `to_yaml`, `b64encode`, `sha256`, `dns_label`. (`include` and
//! bare-name partial calls live in `engine`, they need the partial index.)

use base64::Engine as _;
use globset::GlobSet;
use minijinja::value::Value;
use minijinja::{Error, ErrorKind};
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
pub fn env_or(allowed: &GlobSet, name: &str, default: Value) -> Result<Value, Error> {
    if !allowed.is_match(name) {
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
        let mut b = globset::GlobSetBuilder::new();
        b.add(globset::Glob::new("SHOP_*").unwrap());
        let allowed = b.build().unwrap();
        let err = env_or(&allowed, "AWS_SECRET_ACCESS_KEY", Value::from("x")).unwrap_err();
        assert!(err.to_string().contains("templates.env"));
        assert_eq!(env_or(&allowed, "SHOP_SURELY_UNSET_VAR", Value::from("d")).unwrap(), Value::from("d"));
    }
}
