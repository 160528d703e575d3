//! The partial index: every top-level `{% macro %}` of every partial file,
//! by name, with the `file:line` that defines it.
//!
//! Names are found by scanning the source for `{% macro name(`; the scan is
//! exact for the partials we accept (macros at the top level, comments
//! stripped), and it gives us the line numbers minijinja's AST would not.

use std::collections::BTreeMap;
use std::path::PathBuf;

use regex::Regex;

use crate::diagnostic::{Diagnostic, Location};

/// Where a partial macro is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroDef {
    /// Partial file (relative to the project root).
    pub file: PathBuf,
    /// 1-based line of the `{% macro %}` tag.
    pub line: usize,
    /// 1-based column of the macro name.
    pub col: usize,
}

/// minijinja's built-in global functions (and the names its templates
/// bind themselves): a partial of that name would replace it everywhere.
pub const BUILTIN_FUNCTIONS: [&str; 10] =
    ["range", "dict", "debug", "namespace", "loop", "caller", "self", "super", "varargs", "kwargs"];

/// minijinja's built-in filters and tests plus ours: a partial of that
/// name reads as the filter or test to anyone reviewing a template.
pub const BUILTIN_FILTERS: [&str; 79] = [
    "safe",
    "escape",
    "e",
    "lower",
    "upper",
    "title",
    "capitalize",
    "replace",
    "length",
    "count",
    "dictsort",
    "items",
    "reverse",
    "trim",
    "join",
    "split",
    "lines",
    "default",
    "d",
    "round",
    "abs",
    "int",
    "float",
    "attr",
    "first",
    "last",
    "min",
    "max",
    "sort",
    "list",
    "string",
    "bool",
    "batch",
    "slice",
    "sum",
    "indent",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "map",
    "groupby",
    "unique",
    "chain",
    "zip",
    "pprint",
    "format",
    "tojson",
    "nindent",
    "quote",
    "squote",
    "to_yaml",
    "b64encode",
    "sha256",
    "dns_label",
    "undefined",
    "defined",
    "none",
    "escaped",
    "boolean",
    "odd",
    "even",
    "number",
    "integer",
    "sequence",
    "iterable",
    "mapping",
    "sameas",
    "eq",
    "equalto",
    "ne",
    "lt",
    "lessthan",
    "le",
    "gt",
    "greaterthan",
    "ge",
    "filter",
    "test",
];

/// Macro names defined in `source`, with positions, in source order.
pub fn scan_macros(source: &str) -> Vec<(String, Location)> {
    // Strip `{# … #}` comments first, keeping line structure intact.
    // and `{% raw %} … {% endraw %}` blocks, whose macros are text.
    let comment =
        Regex::new(r"(?s)\{#.*?#\}|\{%[-+]?\s*raw\s*[-+]?%\}.*?\{%[-+]?\s*endraw\s*[-+]?%\}").expect("static regex");
    let cleaned = comment.replace_all(source, |c: &regex::Captures| {
        c[0].chars().map(|ch| if ch == '\n' { '\n' } else { ' ' }).collect::<String>()
    });
    let re = Regex::new(r"\{%[-+]?\s*macro\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(").expect("static regex");
    let mut out = Vec::new();
    for (i, line) in cleaned.lines().enumerate() {
        for cap in re.captures_iter(line) {
            let m = cap.get(1).expect("group 1 exists");
            let col = line[..m.start()].chars().count() + 1;
            out.push((m.as_str().to_owned(), Location { line: i + 1, col }));
        }
    }
    out
}

/// Builds the index of all partial macros, reporting duplicates (naming both
/// places) and reserved names.
pub fn index(files: &[(PathBuf, String)]) -> Result<BTreeMap<String, MacroDef>, Vec<Diagnostic>> {
    let mut defs: BTreeMap<String, MacroDef> = BTreeMap::new();
    let mut errors = Vec::new();
    for (file, source) in files {
        for (name, loc) in scan_macros(source) {
            if super::context::is_reserved(&name) {
                errors.push(
                    Diagnostic::error(
                        file,
                        Some(loc),
                        format!("partial macro `{name}` shadows a built-in helper or context variable"),
                    )
                    .with_source(source)
                    .with_help(format!("rename the macro; `{name}` is reserved (see docs/templates.md)")),
                );
                continue;
            }
            let builtin = if BUILTIN_FUNCTIONS.contains(&name.as_str()) {
                Some("function")
            } else if BUILTIN_FILTERS.contains(&name.as_str()) {
                Some("filter or test")
            } else {
                None
            };
            if let Some(what) = builtin {
                errors.push(
                    Diagnostic::error(
                        file,
                        Some(loc),
                        format!("partial macro `{name}` shadows the built-in {what} `{name}`"),
                    )
                    .with_source(source)
                    .with_help(format!("rename the macro; `{name}` is a minijinja built-in (see docs/templates.md)")),
                );
                continue;
            }
            if let Some(first) = defs.get(&name) {
                errors.push(
                    Diagnostic::error(
                        file,
                        Some(loc),
                        format!(
                            "partial macro `{name}` is defined twice: here and at {}:{}",
                            first.file.display(),
                            first.line
                        ),
                    )
                    .with_source(source)
                    .with_help("every partial macro is global; rename one of them"),
                );
                continue;
            }
            defs.insert(name, MacroDef { file: file.clone(), line: loc.line, col: loc.col });
        }
    }
    if errors.is_empty() {
        Ok(defs)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_macros_with_positions_and_skips_comments() {
        let src = "{# {% macro hidden() %} #}\n{% macro a(x) %}{% endmacro %}\n  {%- macro b() -%}\n{% endmacro %}";
        let found = scan_macros(src);
        assert_eq!(found.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(found[0].1, Location { line: 2, col: 10 });
        assert_eq!(found[1].1.line, 3);
    }

    /// A macro written inside `{% raw %}` is text, not a definition: it was
    /// counted, and a second file's real macro of that name was refused as
    /// "defined twice".
    #[test]
    fn macros_inside_raw_blocks_are_text() {
        let src = "{% raw %}\n{% macro x() %}{% endmacro %}\n{% endraw %}\n{%- raw -%}{% macro y() %}{%- endraw -%}\n{% macro z() %}{% endmacro %}";
        let found = scan_macros(src);
        assert_eq!(found.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["z"]);
        assert_eq!(found[0].1.line, 5, "lines are kept");
        let files = vec![
            (PathBuf::from("partials/a.j2"), "{% raw %}{% macro x() %}{% endmacro %}{% endraw %}".to_owned()),
            (PathBuf::from("partials/b.j2"), "{% macro x() %}{% endmacro %}".to_owned()),
        ];
        assert!(index(&files).is_ok());
    }

    #[test]
    fn duplicates_name_both_places() {
        let files = vec![
            (PathBuf::from("partials/a.j2"), "{% macro x() %}{% endmacro %}".to_owned()),
            (PathBuf::from("partials/b.j2"), "\n{% macro x() %}{% endmacro %}".to_owned()),
        ];
        let errs = index(&files).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.contains("partials/a.j2:1"), "{}", errs[0].message);
        assert_eq!(errs[0].file, PathBuf::from("partials/b.j2"));
        assert_eq!(errs[0].location.unwrap().line, 2);
    }

    /// A partial named `range` replaced minijinja's `range()` in every template.
    #[test]
    fn builtin_function_and_filter_names_are_refused() {
        for (name, what) in
            [("range", "function"), ("dict", "function"), ("debug", "function"), ("upper", "filter or test")]
        {
            let files = vec![(PathBuf::from("p.j2"), format!("\n{{% macro {name}(x) %}}{{% endmacro %}}"))];
            let errs = index(&files).unwrap_err();
            assert!(errs[0].message.contains(&format!("shadows the built-in {what} `{name}`")), "{}", errs[0].message);
            assert_eq!(errs[0].location.unwrap().line, 2);
        }
    }

    /// Every listed name really is a built-in of the minijinja we build
    /// with, and every global function of it is listed.
    #[test]
    fn builtin_lists_match_minijinja() {
        let env = minijinja::Environment::new();
        for (name, _) in env.globals() {
            assert!(BUILTIN_FUNCTIONS.contains(&name), "minijinja global `{name}` is not in BUILTIN_FUNCTIONS");
        }
        let mut env = minijinja::Environment::new();
        for f in ["nindent", "quote", "squote", "to_yaml", "b64encode", "sha256", "dns_label"] {
            env.add_filter(f, |v: minijinja::Value| v);
        }
        for name in BUILTIN_FILTERS {
            let filter = env.render_str(&format!("{{{{ 1 | {name} }}}}"), ());
            let test = env.render_str(&format!("{{{{ 1 is {name} }}}}"), ());
            let unknown = |r: &Result<String, minijinja::Error>| {
                r.as_ref().is_err_and(|e| {
                    matches!(e.kind(), minijinja::ErrorKind::UnknownFilter | minijinja::ErrorKind::UnknownTest)
                })
            };
            assert!(!(unknown(&filter) && unknown(&test)), "`{name}` is neither a filter nor a test");
        }
    }

    #[test]
    fn reserved_names_are_refused() {
        for name in ["namespace", "ns"] {
            let files = vec![(PathBuf::from("p.j2"), format!("{{% macro {name}() %}}{{% endmacro %}}"))];
            let errs = index(&files).unwrap_err();
            assert!(errs[0].message.contains("shadows"), "{name}: {}", errs[0].message);
        }
    }
}
