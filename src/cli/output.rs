//! Where command output goes: results on stdout, diagnostics and progress on
//! stderr; colour only when asked or on a terminal, `NO_COLOR` honoured.

use std::io::{self, IsTerminal, Write};

use crate::diagnostic::{Diagnostic, Diagnostics, Severity};

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal unless `NO_COLOR` is set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Output format of a command's result or summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Text for people (summaries on stderr).
    #[default]
    Text,
    /// One JSON document on stdout.
    Json,
}

/// A diagnostic as JSON: severity, file, line and column (when known),
/// message, the source line and the hint.
pub fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    serde_json::json!({
        "severity": if d.is_error() { "error" } else { "warning" },
        "file": d.file.to_string_lossy().replace('\\', "/"),
        "line": d.location.map(|l| l.line),
        "column": d.location.map(|l| l.col),
        "message": d.message,
        "sourceLine": d.source_line,
        "help": d.help,
    })
}

/// The writers a command prints to.
pub struct Output {
    /// Results.
    pub out: Box<dyn Write>,
    /// Diagnostics, summaries, progress.
    pub err: Box<dyn Write>,
    /// Colour diagnostics.
    pub color: bool,
    /// Show progress bars (stderr is a terminal, not CI, not `-q`).
    pub progress: bool,
    /// `-q`: summaries and progress go nowhere; results, warnings and errors stay.
    pub quiet: bool,
    sink: io::Sink,
}

impl Output {
    /// stdout/stderr with the colour choice resolved.
    pub fn stdio(choice: ColorChoice) -> Output {
        let tty = io::stderr().is_terminal();
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        };
        let ci = std::env::var_os("CI").is_some();
        Output {
            out: Box::new(io::stdout().lock()),
            err: Box::new(io::stderr()),
            color,
            progress: tty && !ci,
            quiet: false,
            sink: io::sink(),
        }
    }

    /// `-q`: no summaries, no progress.
    pub fn quiet(mut self, quiet: bool) -> Output {
        self.quiet = quiet;
        self.progress &= !quiet;
        self
    }

    /// Where summaries and progress lines go: stderr, or nowhere with `-q`.
    pub fn info(&mut self) -> &mut dyn Write {
        if self.quiet {
            &mut self.sink
        } else {
            &mut *self.err
        }
    }

    /// Prints one diagnostic to stderr.
    pub fn diagnostic(&mut self, d: &Diagnostic) -> io::Result<()> {
        let text = d.to_string();
        if self.color {
            let (label, code) = match d.severity {
                Severity::Error => ("error", "1;31"),
                Severity::Warning => ("warning", "1;33"),
            };
            let rest = text.strip_prefix(label).unwrap_or(&text);
            writeln!(self.err, "\x1b[{code}m{label}\x1b[0m{rest}")
        } else {
            writeln!(self.err, "{text}")
        }
    }

    /// Prints every diagnostic, blank-line separated, then a count.
    pub fn diagnostics(&mut self, ds: &Diagnostics) -> io::Result<()> {
        for (i, d) in ds.0.iter().enumerate() {
            if i > 0 {
                writeln!(self.err)?;
            }
            self.diagnostic(d)?;
        }
        let errors = ds.0.iter().filter(|d| d.is_error()).count();
        if errors > 1 {
            writeln!(self.err, "\n{errors} errors")?;
        }
        Ok(())
    }
}
