//! Printing a diff [`Report`]: text for terminals, markdown for PR comments
//! (collapsible per object, capped in size with a note of what was cut),
//! JSON for tools. All three read the same report, plus the notes and the
//! extra JSON fields a caller adds ([`Extra`]).

use std::fmt::Write;

use super::{Kind, ObjectChange, Report};

/// GitHub refuses comments over 65,536 characters.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;

/// The markdown printer stops adding objects at this size, so the note on
/// what was cut always fits below [`GITHUB_COMMENT_LIMIT`].
pub const MARKDOWN_LIMIT: usize = 60_000;

/// The output formats of `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For terminals.
    Text,
    /// For pull-request comments.
    Markdown,
    /// For tools.
    Json,
}

/// What a printed diff says besides its changes.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// Lines printed before the changes (text, markdown).
    pub notes: Vec<String>,
    /// Fields added to the JSON object, before `summary`.
    pub json: serde_json::Map<String, serde_json::Value>,
    /// The command that prints every change as text (named when markdown cuts some).
    pub full_command: String,
}

/// Prints `report` in `format`.
pub fn print(report: &Report, format: Format, extra: &Extra) -> String {
    match format {
        Format::Text => text_with(report, extra),
        Format::Markdown => markdown_with(report, extra),
        Format::Json => json_with(report, extra),
    }
}

fn sign(kind: Kind) -> char {
    match kind {
        Kind::Added => '+',
        Kind::Removed => '-',
        Kind::Changed => '~',
    }
}

fn title(c: &ObjectChange) -> String {
    let ns = c.id.namespace.as_deref().map(|n| format!("{n}/")).unwrap_or_default();
    let renamed = c.renamed_from.as_ref().map(|r| format!(" (was {r})")).unwrap_or_default();
    format!("{} {} {ns}{}{renamed}", sign(c.kind), c.id.kind, c.id.name)
}

fn text_with(report: &Report, extra: &Extra) -> String {
    let mut out = String::new();
    for n in &extra.notes {
        let _ = writeln!(out, "{n}");
    }
    let mut group = (String::new(), String::new());
    for c in &report.changes {
        if group.0 != c.target {
            let _ = writeln!(out, "== {}", c.target);
            group = (c.target.clone(), String::new());
        }
        if group.1 != c.stage {
            let _ = writeln!(out, "  -- {}", c.stage);
            group.1 = c.stage.clone();
        }
        let _ = writeln!(out, "  {}", title(c));
        for line in c.diff.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    let _ = writeln!(out, "{}", report.summary());
    out
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn markdown_with(report: &Report, extra: &Extra) -> String {
    let mut out = String::from("### codex-k8s: rendered changes\n\n");
    for n in &extra.notes {
        // A note is one line; a huge one (a long list of names) is clipped.
        let _ = writeln!(out, "> {}\n", clip(n, 2_000));
    }
    let _ = writeln!(out, "**{}**\n", report.summary());
    if report.changes.is_empty() {
        return out;
    }
    let mut cut: Vec<String> = Vec::new();
    let mut current = String::new();
    for c in &report.changes {
        let mut block = String::new();
        if current != c.target {
            let _ = writeln!(block, "#### `{}`\n", c.target);
        }
        let _ = writeln!(
            block,
            "<details><summary><code>{}</code> · {}</summary>\n\n```diff\n{}```\n\n</details>\n",
            title(c),
            c.stage,
            c.diff.replace("```", "` ` `")
        );
        // Whole objects only: one that does not fit is left out entirely.
        if out.len() + block.len() > MARKDOWN_LIMIT {
            cut.push(format!("{} in {}", title(c), c.target));
            continue;
        }
        current = c.target.clone();
        out.push_str(&block);
    }
    if !cut.is_empty() {
        let how = format!("> See every change: `{}`\n", clip(&extra.full_command, 1_000));
        let mut note = format!("> {} more object change(s) not shown (comment size limit)", cut.len());
        // Name the first ones left out, as many as fit (lengths are bytes,
        // never fewer than characters).
        let room = GITHUB_COMMENT_LIMIT - out.len() - how.len() - 64;
        let mut named = 0;
        for (i, c) in cut.iter().enumerate() {
            let piece = format!("{}{c}", if i == 0 { ": " } else { "; " });
            if note.len() + piece.len() > room || named == 20 {
                break;
            }
            note.push_str(&piece);
            named += 1;
        }
        if named < cut.len() && named > 0 {
            let _ = write!(note, "; and {} more", cut.len() - named);
        }
        let _ = writeln!(out, "{note}");
        out.push_str(&how);
    }
    out
}

fn json_with(report: &Report, extra: &Extra) -> String {
    let mut value = extra.json.clone();
    value.insert("summary".into(), report.summary().into());
    value.insert("added".into(), report.count(Kind::Added).into());
    value.insert("removed".into(), report.count(Kind::Removed).into());
    value.insert("changed".into(), report.count(Kind::Changed).into());
    value.insert("changes".into(), serde_json::to_value(&report.changes).expect("changes serialize"));
    serde_json::to_string_pretty(&value).expect("report serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::ObjectId;

    fn change(name: &str, diff_len: usize) -> ObjectChange {
        ObjectChange {
            target: "staging".into(),
            stage: "20-internal".into(),
            id: ObjectId {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("shop".into()),
                name: name.into(),
            },
            kind: Kind::Changed,
            renamed_from: None,
            diff: format!("+{}\n", "x".repeat(diff_len)),
        }
    }

    #[test]
    fn markdown_cuts_whole_objects_and_names_the_full_command() {
        let report = Report { changes: (0..400).map(|i| change(&format!("cm-{i:03}"), 400)).collect() };
        let extra =
            Extra { full_command: "codex-k8s diff --source-base main --format text".into(), ..Extra::default() };
        let md = markdown_with(&report, &extra);
        assert!(md.chars().count() <= GITHUB_COMMENT_LIMIT, "{}", md.len());
        let shown = md.matches("<details>").count();
        assert!(shown > 0 && shown < 400);
        assert_eq!(md.matches("</details>").count(), shown, "a cut object is cut whole");
        assert!(md.contains(&format!("> {} more object change(s) not shown", 400 - shown)), "{md}");
        assert!(md.contains("`codex-k8s diff --source-base main --format text`"));
    }

    #[test]
    fn markdown_with_very_long_names_stays_under_the_limit() {
        let long = "n".repeat(250);
        let report = Report { changes: (0..2000).map(|i| change(&format!("{long}-{i}"), 10)).collect() };
        let md = print(
            &report,
            Format::Markdown,
            &Extra { full_command: "codex-k8s diff --format text".into(), ..Extra::default() },
        );
        assert!(md.len() <= GITHUB_COMMENT_LIMIT, "{}", md.len());
        assert!(md.contains("and ") && md.contains("more"), "the names left out are counted");
    }

    #[test]
    fn json_keeps_the_extra_fields_first() {
        let mut extra = Extra::default();
        extra.json.insert("base".into(), "main".into());
        let j: serde_json::Value = serde_json::from_str(&json_with(&Report::default(), &extra)).expect("json");
        assert_eq!(j["base"], "main");
        assert_eq!(j["summary"], "no changes");
        assert_eq!(json_with(&Report::default(), &extra).find("\"base\""), Some(4));
    }
}
