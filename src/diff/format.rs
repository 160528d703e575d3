//! Printing a diff [`Report`]: text for terminals, markdown for PR comments
//! (collapsible per object, capped in size with a note of what was cut),
//! JSON for tools. All three read the same report.

use std::fmt::Write;

use super::{Kind, ObjectChange, Report};

/// GitHub refuses comments over 65,536 characters; stay well below.
pub const MARKDOWN_LIMIT: usize = 60_000;

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

/// Plain text, grouped by target and stage.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
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

/// Markdown for a pull-request comment.
pub fn markdown(report: &Report) -> String {
    let mut out = String::from("### codex-k8s: rendered changes\n\n");
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
        if out.len() + block.len() > MARKDOWN_LIMIT - 500 {
            cut.push(format!("{} in {}", title(c), c.target));
            continue;
        }
        current = c.target.clone();
        out.push_str(&block);
    }
    if !cut.is_empty() {
        let _ = writeln!(
            out,
            "> {} more object change(s) not shown (comment size limit): {}",
            cut.len(),
            cut.iter().take(20).cloned().collect::<Vec<_>>().join("; ")
        );
        let _ = writeln!(out, "> Run `codex-k8s diff` locally for the full diff.");
    }
    out
}

/// JSON.
pub fn json(report: &Report) -> String {
    let value = serde_json::json!({
        "summary": report.summary(),
        "added": report.count(Kind::Added),
        "removed": report.count(Kind::Removed),
        "changed": report.count(Kind::Changed),
        "changes": report.changes,
    });
    serde_json::to_string_pretty(&value).expect("report serializes") + "\n"
}
