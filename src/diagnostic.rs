//! Diagnostics: an input error that points at a file, a line and a column,
//! shows the offending source line, and says how to fix it.
//!
//! Every layer that reads user input (inventory, templates, rendered YAML)
//! reports through [`Diagnostic`]; a run collects all of them into
//! [`Diagnostics`] so a user fixes every problem in one round trip.

use std::fmt;
use std::path::{Path, PathBuf};

/// A 1-based position in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
}

/// Whether a diagnostic stops the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Stops the run; nothing is written.
    Error,
    /// Reported, the run goes on.
    Warning,
}

/// One problem in the user's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file, as the user wrote it (relative to the project root when possible).
    pub file: PathBuf,
    /// Where in the file; `None` when the problem is about the file as a whole.
    pub location: Option<Location>,
    /// What is wrong.
    pub message: String,
    /// The source line at `location`, shown under the message.
    pub source_line: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `file:location`.
    pub fn error(file: impl Into<PathBuf>, location: Option<Location>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.into(),
            location,
            message: message.into(),
            source_line: None,
            help: None,
        }
    }

    /// A warning at `file:location`.
    pub fn warning(file: impl Into<PathBuf>, location: Option<Location>, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(file, location, message) }
    }

    /// Adds a hint on how to fix the problem.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Attaches the source line at the diagnostic's location, taken from `source`.
    pub fn with_source(mut self, source: &str) -> Self {
        if let Some(loc) = self.location {
            self.source_line = source.lines().nth(loc.line.saturating_sub(1)).map(str::to_owned);
        }
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{label}: {}", self.message)?;
        match self.location {
            Some(loc) => write!(f, "  --> {}:{}:{}", display_path(&self.file), loc.line, loc.col)?,
            None => write!(f, "  --> {}", display_path(&self.file))?,
        }
        if let (Some(line), Some(loc)) = (&self.source_line, self.location) {
            let number = loc.line.to_string();
            let pad = " ".repeat(number.len());
            let (line, caret) = excerpt(line, loc.col);
            write!(f, "\n{pad} |\n{number} | {line}\n{pad} | {}^", " ".repeat(caret))?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

/// Most characters of a source line a diagnostic quotes.
pub const MAX_QUOTED_CHARS: usize = 160;

/// The part of `line` a diagnostic quotes, escaped, and the caret's offset
/// in it for the 1-based column `col`: at most [`MAX_QUOTED_CHARS`]
/// characters around the column (`…` marks a cut), with every character that
/// could act on a terminal, a log or a pull-request comment written as
/// `\u{…}` (see [`escape_char`]).
pub fn excerpt(line: &str, col: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    let col = col.saturating_sub(1).min(chars.len());
    let start = col.saturating_sub(MAX_QUOTED_CHARS / 2).min(chars.len().saturating_sub(MAX_QUOTED_CHARS));
    let end = (start + MAX_QUOTED_CHARS).min(chars.len());
    let mut out = String::new();
    let mut caret = 0;
    if start > 0 {
        out.push('…');
    }
    for (i, c) in chars[start..end].iter().enumerate() {
        if start + i == col {
            caret = out.chars().count();
        }
        escape_char(*c, &mut out);
    }
    if col >= end {
        caret = out.chars().count();
    }
    if end < chars.len() {
        out.push('…');
    }
    (out, caret)
}

/// Writes `c`, or `\u{hex}` when it is a control character (C0, DEL, C1),
/// a line or paragraph separator, a byte-order mark, a bidirectional
/// formatting character or a noncharacter: what is printed stays one line
/// and reads as it is.
pub fn escape_char(c: char, out: &mut String) {
    let u = c as u32;
    let hidden = c.is_control()
        || matches!(u, 0x2028 | 0x2029 | 0xFEFF | 0x200E | 0x200F | 0x061C | 0x202A..=0x202E | 0x2066..=0x2069)
        || (0xFDD0..=0xFDEF).contains(&u)
        || (u & 0xFFFE) == 0xFFFE;
    if hidden {
        out.push_str(&format!("\\u{{{u:x}}}"));
    } else {
        out.push(c);
    }
}

/// `text` with every character [`escape_char`] hides escaped, cut to
/// `max` characters (`…` marks the cut): for a field read from a file or a
/// message that is printed on one line.
pub fn escape_line(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        escape_char(c, &mut out);
    }
    out
}

/// Shows a path with forward slashes, as users write them in `services.yaml`.
pub fn display_path(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

/// All diagnostics of one run, errors and warnings, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// True when at least one diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// Adds one diagnostic.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| !d.is_error())
    }

    /// Sorts by file, then position, keeping insertion order for ties, so the
    /// report reads top to bottom whatever order the checks ran in.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| (&a.file, a.location).cmp(&(&b.file, b.location)));
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        let errors = self.0.iter().filter(|d| d.is_error()).count();
        if errors > 1 {
            write!(f, "\n\n{errors} errors")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The closest candidate to `unknown`, if any is close enough to be a likely typo.
pub fn did_you_mean<'a>(unknown: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&unknown.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_a_typo() {
        assert_eq!(did_you_mean("dependOn", ["name", "dependsOn", "stage"]), Some("dependsOn"));
        assert_eq!(did_you_mean("zzz", ["name", "dependsOn"]), None);
    }

    #[test]
    fn a_quoted_line_is_escaped_and_bounded_around_the_column() {
        assert_eq!(excerpt("a: \u{1b}[31mx\r", 4), ("a: \\u{1b}[31mx\\u{d}".to_owned(), 3));
        assert_eq!(
            excerpt("k: \u{2028}\u{85}\u{feff}\u{fffe}\u{202e}", 1).0,
            "k: \\u{2028}\\u{85}\\u{feff}\\u{fffe}\\u{202e}"
        );
        let long = format!("{}X{}", "a".repeat(4_000), "b".repeat(4_000));
        let (text, caret) = excerpt(&long, 4_001);
        assert!(text.starts_with('…') && text.ends_with('…'), "{text}");
        assert_eq!(text.chars().count(), MAX_QUOTED_CHARS + 2);
        assert_eq!(text.chars().nth(caret), Some('X'));
        assert_eq!(excerpt("short", 99), ("short".to_owned(), 5));
        assert_eq!(escape_line("a\nb", 10), "a\\u{a}b");
        assert_eq!(escape_line("abcdef", 3), "abc…");
    }

    #[test]
    fn display_shows_file_line_column_source_and_help() {
        let d = Diagnostic::error("services.yaml", Some(Location { line: 2, col: 3 }), "unknown key `x`")
            .with_source("a: 1\n  x: 2\n")
            .with_help("remove it");
        let text = d.to_string();
        assert!(text.contains("services.yaml:2:3"), "{text}");
        assert!(text.contains("2 |   x: 2"), "{text}");
        assert!(text.contains("help: remove it"), "{text}");
    }
}
