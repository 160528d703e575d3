//! Name and duration rules shared by the inventory, the CLI and the renderer.

use std::time::Duration;

/// Why a name is not a DNS-1123 label, or `None` when it is one.
///
/// Kubernetes labels and namespace names must be at most 63 characters of
/// `a-z`, `0-9` and `-`, starting and ending with an alphanumeric.
pub fn dns_label_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name.len() > 63 {
        return Some(format!("is {} characters long; the limit is 63", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        let c = crate::diagnostic::escape_line(&c.to_string(), 1);
        return Some(format!("contains `{c}`; only a-z, 0-9 and `-` are allowed"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("starts or ends with `-`".into());
    }
    None
}

/// Why `value` cannot be a value given from outside the reviewed files
/// (`--set`, `env_or`, a recorded `target.json`), or `None` when it can.
/// Values are one line of text: a line break or any other control character
/// could turn data into YAML syntax once a template writes it out (`\n---\n`
/// adds a document, `\nkind: …` a key).
pub fn value_problem(value: &str) -> Option<String> {
    let (i, c) = value.char_indices().find(|(_, c)| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))?;
    let what = match c {
        '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' => "a line break",
        '\t' => "a tab",
        _ => "a control character",
    };
    Some(format!("contains {what} ({c:?} at byte {i}); values must be a single line of printable text"))
}

/// Most characters of a message a person gives for a commit (`-m`,
/// `slots remove --reason`).
pub const MAX_MESSAGE_CHARS: usize = 500;

/// Why `text` (a commit subject from `-m`, a removal reason) cannot go into
/// a commit message, if it cannot: it must be one line of printable text
/// (see [`value_problem`]; a line break would add lines, and a line such as
/// `Source-Ref: …` a trailer), not empty, and at most [`MAX_MESSAGE_CHARS`].
pub fn message_problem(text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return Some("is empty".into());
    }
    if let Some(p) = value_problem(text) {
        return Some(p.replace("values must be", "a message must be"));
    }
    let n = text.chars().count();
    (n > MAX_MESSAGE_CHARS).then(|| format!("is {n} characters long; the limit is {MAX_MESSAGE_CHARS}"))
}

/// Why `host` (a slot's public host, read back from a `target.json`) is not
/// a DNS name, if it is not: lowercase letters, digits, `-` and `.`, labels
/// of 1 to 63 characters, at most 253 in all.
pub fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() || host.len() > 253 {
        return Some("must be 1 to 253 characters".into());
    }
    for label in host.split('.') {
        if let Some(p) = dns_label_problem(label) {
            return Some(format!("is not a DNS name: a label {p}"));
        }
    }
    None
}

/// Turns arbitrary text into a DNS label: lower-case, invalid runs become `-`,
/// trimmed to 63 characters. Used by the `dns_label` filter.
pub fn to_dns_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(63).collect();
    trimmed.trim_end_matches('-').to_owned()
}

/// Parses a humane duration (`8h`, `90m`, `1h 30m`, `2d`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| format!("`{text}` is not a duration ({e})"))?;
    if d.is_zero() {
        return Err(format!("`{text}` is zero; use a positive duration such as `8h`"));
    }
    Ok(d)
}

/// A slot name: a DNS-1123 label (`pr-42`), parsed where it enters — a
/// flag, a directory of the tree, a recorded `target.json` — so nothing
/// downstream meets an unchecked one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotName(String);

impl SlotName {
    /// Checks `text`; the error says what is wrong and what a slot looks like.
    pub fn parse(text: &str) -> Result<Self, String> {
        match dns_label_problem(text) {
            Some(problem) => {
                Err(format!("invalid slot `{text}`: it {problem}; slots are DNS-1123 labels such as `pr-42`"))
            }
            None => Ok(SlotName(text.to_owned())),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, as a `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::str::FromStr for SlotName {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        SlotName::parse(text)
    }
}

impl std::fmt::Display for SlotName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_are_dns_labels_checked_once() {
        assert_eq!("pr-42".parse::<SlotName>().unwrap().as_str(), "pr-42");
        for bad in ["", "PR_1", "-a", "a-", "a.b", &"x".repeat(64)] {
            let err = bad.parse::<SlotName>().unwrap_err();
            assert!(err.contains("DNS-1123 labels such as `pr-42`"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn dns_labels_follow_rfc_1123() {
        for ok in ["a", "shop", "pr-42", "a1", &"a".repeat(63)] {
            assert_eq!(dns_label_problem(ok), None, "{ok}");
        }
        for bad in ["", "Shop", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns_label_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn messages_are_one_bounded_line_and_hosts_are_dns_names() {
        assert_eq!(message_problem("pull request #7 closed: done"), None);
        for bad in ["", "  ", "a\nSource-Ref: x", "a\r", "a\u{85}b", "a\u{2028}b", "a\u{1b}[2J", "a\tb"] {
            assert!(message_problem(bad).is_some(), "{bad:?}");
        }
        assert!(message_problem(&"x".repeat(MAX_MESSAGE_CHARS + 1)).is_some());
        assert_eq!(host_problem("pr-1.shop.example.com"), None);
        for bad in ["", "a..b", "A.example", "a.example.com\nX: y", "a_b.example", "-a.example", &"a".repeat(254)] {
            assert!(host_problem(bad).is_some(), "{bad:?}");
        }
        assert!(!dns_label_problem("a\nb").unwrap().contains('\n'), "the character is escaped");
    }

    #[test]
    fn to_dns_label_sanitizes() {
        assert_eq!(to_dns_label("Feature/ABC_12"), "feature-abc-12");
        assert_eq!(to_dns_label("--x--"), "x");
        assert_eq!(to_dns_label(&"a".repeat(70)).len(), 63);
    }

    #[test]
    fn durations_parse_humane_forms() {
        assert_eq!(parse_duration("8h").unwrap(), Duration::from_secs(8 * 3600));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2days").unwrap(), Duration::from_secs(2 * 86400));
        assert!(parse_duration("8 hours later").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("").is_err());
    }
}
