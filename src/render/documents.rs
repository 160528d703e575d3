//! Manifest templates → YAML documents: every manifest of every enabled
//! component rendered in parallel under the output limit, the text split
//! into documents, each checked to be one named Kubernetes object. A fault
//! shows the rendered lines around it.

use std::path::Path;

use rayon::prelude::*;
use serde_yaml::Value;

use super::memo::{self, Rendered};
use super::nouns::{Document, Target};
use super::part::Part;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::inventory::Inventory;
use crate::template::Engine;

/// Renders every manifest of every part in parallel: the documents of
/// `parts[i]` at index `i`, in manifest order. Every failing manifest is
/// reported, and so is a target over `limits.maxOutputBytes`.
pub(super) fn render_manifests(
    inventory: &Inventory,
    engine: &Engine,
    parts: &[Part<'_>],
    target: &Target,
) -> Result<Vec<Vec<Document>>, Diagnostics> {
    let jobs: Vec<(usize, &Path)> = parts
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.component.manifests.iter().map(move |m| (i, m.as_path())))
        .collect();
    let max_bytes = inventory.limits.max_output_bytes;
    // (component index, its documents, rendered bytes) per manifest, in manifest order.
    type Outcome = Result<(usize, Vec<Document>, usize), Diagnostic>;
    let rendered: Vec<Outcome> = jobs
        .par_iter()
        .map(|(i, manifest)| {
            let part = &parts[*i];
            let name = &part.component.name;
            let out = memo::rendered(engine, manifest, &part.context, &part.prints, || {
                let (text, access) =
                    engine.render_file_tracked(manifest, &part.context).map_err(|d| in_component(d, name, target))?;
                if text.len() as u64 > max_bytes {
                    return Err(Diagnostic::error(
                        *manifest,
                        None,
                        format!("template produced {} bytes; the limit per target is {max_bytes}", text.len()),
                    )
                    .with_help("raise limits.maxOutputBytes if this is intended"));
                }
                let docs = split_documents(manifest, &text).map_err(|d| in_component(d, name, target))?;
                Ok((Rendered { docs, len: text.len() }, access))
            })?;
            Ok((*i, out.docs, out.len))
        })
        .collect();
    let mut diags = Diagnostics::default();
    let mut per_part: Vec<Vec<Document>> = (0..parts.len()).map(|_| Vec::new()).collect();
    let mut total = 0u64;
    for r in rendered {
        match r {
            Ok((i, docs, len)) => {
                total += len as u64;
                per_part[i].extend(docs);
            }
            Err(d) => diags.push(d),
        }
    }
    if total > max_bytes {
        diags.push(
            Diagnostic::error(
                &inventory.file,
                None,
                format!("target {target} renders {total} bytes; the limit is {max_bytes}"),
            )
            .with_help("raise limits.maxOutputBytes if this is intended"),
        );
    }
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(per_part)
}

/// Names the component and target a template error happened in.
fn in_component(mut d: Diagnostic, component: &str, target: &Target) -> Diagnostic {
    let what = format!("component `{component}`, target {target}");
    // On the first line: the rest may be an excerpt of the rendered text.
    let (first, rest) = match d.message.split_once('\n') {
        Some((f, r)) => (f.to_owned(), format!("\n{r}")),
        None => (d.message.clone(), String::new()),
    };
    let first = match first.strip_suffix(')') {
        Some(head) if head.contains(" (called from ") => format!("{head}; {what})"),
        _ => format!("{first} ({what})"),
    };
    d.message = format!("{first}{rest}");
    d
}

/// Splits rendered text into YAML documents, dropping empty ones; a parse
/// error shows the rendered lines around the fault.
pub(super) fn split_documents(template: &Path, text: &str) -> Result<Vec<Document>, Diagnostic> {
    let mut chunks: Vec<(usize, String)> = vec![(1, String::new())];
    for (i, line) in text.lines().enumerate() {
        if let Some(glued) = glued_separator(line) {
            return Err(Diagnostic::error(
                template,
                None,
                format!(
                    "rendered line {} has the document separator `---` glued to `{glued}`\n{}",
                    i + 1,
                    excerpt(text, i + 1)
                ),
            )
            .with_help("`---` must be alone on its line; whitespace control (`{%-`, `-%}`, `{{-`) next to it removed the line break — drop the `-` on that side, or put `---` on a line of its own"));
        }
        let is_separator = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_separator {
            chunks.push((i + 2, String::new()));
        } else if line == "..." {
            continue;
        } else {
            let chunk = &mut chunks.last_mut().expect("never empty").1;
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    let mut out = Vec::new();
    for (start, chunk) in chunks {
        if chunk.trim().is_empty() {
            continue;
        }
        let value: Value = super::read::document(&chunk).map_err(|e| {
            if let Some(d) = duplicate_key(template, text, &chunk, start) {
                return d;
            }
            let line = e.location().map(|l| l.line() + start - 1).unwrap_or(start).min(text.lines().count().max(1));
            let col = e.location().map(|l| l.column()).unwrap_or(1);
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            Diagnostic::error(
                template,
                None,
                format!(
                    "rendered output is not valid YAML: {msg} (rendered line {line}, column {col})\n{}",
                    excerpt(text, line)
                ),
            )
            .with_help(
                "the template renders this text; check indentation (`nindent`) and quoting around the marked line",
            )
        })?;
        if value.is_null() {
            continue;
        }
        let index = out.len();
        let problem = match &value {
            Value::Mapping(_) => {
                if value.get("apiVersion").and_then(Value::as_str).is_none() {
                    Some("has no `apiVersion`")
                } else if value.get("kind").and_then(Value::as_str).is_none() {
                    Some("has no `kind`")
                } else if value.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).is_none() {
                    Some("has no `metadata.name`")
                } else {
                    None
                }
            }
            _ => Some("is not a mapping (a Kubernetes object)"),
        };
        let name_problem =
            value.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).and_then(object_name_problem);
        let kind_problem = value
            .get("kind")
            .and_then(Value::as_str)
            .filter(|k| !k.chars().all(|c| c.is_ascii_alphanumeric()) || k.is_empty())
            .map(|_| "has a `kind` that is not a Kubernetes kind name (letters and digits only)".to_owned());
        let problem = problem.map(str::to_owned).or(kind_problem).or(name_problem);
        if let Some(p) = problem {
            return Err(Diagnostic::error(
                template,
                None,
                format!(
                    "rendered document {} (starting at rendered line {start}) {p}\n{}",
                    index + 1,
                    excerpt(text, start)
                ),
            )
            .with_help("every document must be one Kubernetes object with apiVersion, kind and metadata.name"));
        }
        out.push(Document { template: template.to_path_buf(), index, value });
    }
    Ok(out)
}

/// The text after a `---` at the start of `line` when that is content (a
/// key, a value): whitespace control glued the next line to the separator.
fn glued_separator(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("---")?;
    if rest.starts_with('-') {
        return None;
    }
    let content = rest.trim_start();
    (!content.is_empty() && !content.starts_with('#')).then_some(content)
}

/// A duplicate key in document `chunk` (starting at rendered line
/// `start`), reported at the key's own rendered line: serde_yaml names only
/// the mapping's first line.
fn duplicate_key(template: &Path, text: &str, chunk: &str, start: usize) -> Option<Diagnostic> {
    let err = crate::inventory::yaml::load(chunk).err()?;
    if !err.message.starts_with("duplicate key") {
        return None;
    }
    let line = err.location.line + start - 1;
    let re = regex::Regex::new(r" \(first defined at line (\d+)\)").expect("static regex");
    let message = re
        .replace(&err.message, |c: &regex::Captures| {
            let first: usize = c[1].parse().unwrap_or(1);
            format!(" at rendered line {line} (first at rendered line {})", first + start - 1)
        })
        .into_owned();
    Some(
        Diagnostic::error(
            template,
            None,
            format!("rendered output has a {message}\n{}", excerpt(text, line)),
        )
        .with_help("the template renders this key twice in one mapping; remove one, or merge them (a partial and the template setting the same key?)"),
    )
}

/// Why `name` cannot be an object name (a DNS-1123 subdomain, which also
/// keeps it from escaping its directory as a file name), or `None`.
fn object_name_problem(name: &str) -> Option<String> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.split('.').all(|part| !part.is_empty() && !part.starts_with('-') && !part.ends_with('-'));
    (!valid).then(|| format!("has `metadata.name: {name}`, which is not a DNS-1123 subdomain (lower-case letters, digits, `-` and `.`, at most 253 characters)"))
}

/// The rendered lines around `line`, numbered, the line itself marked.
pub fn excerpt(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let line = line.clamp(1, lines.len().max(1));
    let from = line.saturating_sub(3).max(1);
    let to = (line + 2).min(lines.len());
    let width = to.to_string().len();
    let mut out = String::new();
    for n in from..=to {
        let marker = if n == line { ">" } else { " " };
        out.push_str(&format!("  {marker} {n:>width$} | {}\n", lines.get(n - 1).unwrap_or(&"")));
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_drops_empty_documents_and_keeps_order() {
        let docs = split_documents(Path::new("t"), "---\n\n---\napiVersion: v1\nkind: A\nmetadata: {name: a}\n---\n# only a comment\n---\napiVersion: v1\nkind: B\nmetadata: {name: b}\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value["kind"], "B");
    }

    #[test]
    fn split_reports_the_rendered_line_with_an_excerpt() {
        let err = split_documents(
            Path::new("t.j2"),
            "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: B\n  bad: [\n",
        )
        .unwrap_err();
        assert!(err.message.contains("rendered line 7"), "{}", err.message);
        assert!(err.message.contains("> 7 |   bad: ["), "{}", err.message);
    }

    /// serde_yaml reports a duplicate key at the start of its mapping; the
    /// report must name the key's own line.
    #[test]
    fn split_reports_a_duplicate_key_at_its_own_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  x: \"1\"\n  y: \"2\"\n  x: \"3\"\n";
        let err =
            split_documents(Path::new("t.j2"), &format!("apiVersion: v1\nkind: A\nmetadata: {{name: z}}\n---\n{text}"))
                .unwrap_err();
        assert!(err.message.contains("duplicate key `x`"), "{}", err.message);
        assert!(err.message.contains("rendered line 12"), "{}", err.message);
        assert!(err.message.contains("first at rendered line 10"), "{}", err.message);
        assert!(err.message.contains("> 12 |   x: \"3\""), "{}", err.message);
    }

    /// `{%- endfor %}` before `---` glues the separator to the next line.
    #[test]
    fn split_names_a_separator_glued_to_the_next_line() {
        for glued in ["---apiVersion: v1", "---kind: B", "--- apiVersion: v1", "---\tkind: B"] {
            let text =
                format!("apiVersion: v1\nkind: A\nmetadata: {{name: a}}\n{glued}\nkind: B\nmetadata: {{name: b}}\n");
            let err = split_documents(Path::new("t.j2"), &text).unwrap_err();
            assert!(err.message.contains("rendered line 4"), "{glued}: {}", err.message);
            assert!(err.message.contains("`---` glued to"), "{glued}: {}", err.message);
            assert!(err.help.as_deref().unwrap_or_default().contains("whitespace control"), "{glued}: {:?}", err.help);
        }
    }

    #[test]
    fn split_rejects_non_objects() {
        let err = split_documents(Path::new("t.j2"), "- a\n- b\n").unwrap_err();
        assert!(err.message.contains("not a mapping"), "{}", err.message);
        let err = split_documents(Path::new("t.j2"), "apiVersion: v1\nmetadata: {name: a}\n").unwrap_err();
        assert!(err.message.contains("no `kind`"), "{}", err.message);
    }
}
