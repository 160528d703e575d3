//! API errors, rendered as `meta/v1 Status` objects exactly like the apiserver.

use serde_json::{json, Value};
use std::fmt;

use crate::resources::ResourceDef;

/// An API failure. Rendered on the wire as a `Status` object with
/// `status: "Failure"` and the HTTP status `code`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

fn details(def: &ResourceDef, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": def.plural});
    if !def.group.is_empty() {
        d["group"] = json!(def.group);
    }
    d
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self { code, reason: reason.to_string(), message: message.into(), details: None }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }

    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", def.qualified())).with_details(details(def, name))
    }

    pub fn namespace_not_found(ns: &str) -> Self {
        Self::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
            .with_details(json!({"name": ns, "kind": "namespaces"}))
    }

    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", def.qualified()))
            .with_details(details(def, name))
    }

    pub fn conflict(def: &ResourceDef, name: &str, why: &str) -> Self {
        Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{name}\": {why}", def.qualified()))
            .with_details(details(def, name))
    }

    pub fn stale(def: &ResourceDef, name: &str) -> Self {
        Self::conflict(
            def,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn namespace_terminating(def: &ResourceDef, name: &str, ns: &str) -> Self {
        let mut d = details(def, name);
        d["causes"] = json!([{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {ns} is being terminated"),
            "field": "metadata.namespace"
        }]);
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                def.qualified()
            ),
        )
        .with_details(d)
    }

    pub fn invalid(def: &ResourceDef, name: &str, field: &str, value: &str, why: &str) -> Self {
        let detail = format!("Invalid value: \"{value}\": {why}");
        let mut d = json!({
            "name": name,
            "kind": def.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field}]
        });
        if !def.group.is_empty() {
            d["group"] = json!(def.group);
        }
        Self::new(422, "Invalid", format!("{} \"{name}\" is invalid: {field}: {detail}", def.kind)).with_details(d)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn not_found_path() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource").with_details(json!({}))
    }

    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
        .with_details(json!({}))
    }

    pub fn unsupported_media_type(ct: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (JSON only); got {ct:?}"),
        )
    }

    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(410, "Expired", format!("too old resource version: {requested} ({oldest})"))
    }

    /// Adds `details.retryAfterSeconds`, as the apiserver does for a 429.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        let mut d = self.details.take().unwrap_or_else(|| serde_json::json!({}));
        d["retryAfterSeconds"] = serde_json::json!(seconds);
        self.details = Some(d);
        self
    }

    /// A generic error for an HTTP status code (used by fault injection).
    pub fn from_code(code: u16) -> Self {
        let (reason, message) = match code {
            400 => ("BadRequest", "injected bad request"),
            401 => ("Unauthorized", "Unauthorized"),
            403 => ("Forbidden", "injected forbidden"),
            404 => ("NotFound", "the server could not find the requested resource"),
            409 => ("Conflict", "injected conflict"),
            410 => ("Expired", "injected: too old resource version"),
            422 => ("Invalid", "injected invalid"),
            429 => ("TooManyRequests", "injected: too many requests, please try again later"),
            500 => ("InternalError", "Internal error occurred: injected failure"),
            503 => ("ServiceUnavailable", "injected: the server is currently unable to handle the request"),
            504 => ("Timeout", "injected: the server was unable to return a response in the time allotted"),
            _ => ("", "injected failure"),
        };
        Self::new(code, reason, message)
    }
}
