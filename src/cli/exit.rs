//! Exit codes, in one place (SPEC section 6).

/// Everything went fine.
pub const OK: u8 = 0;
/// An error: bad input, failed render, I/O or git failure.
pub const ERROR: u8 = 1;
/// Bad command line (clap's own code).
pub const USAGE: u8 = 2;
/// `render --check` found drift, or `diff --exit-code` found changes.
pub const DRIFT: u8 = 3;
/// `status --wait` timed out before every stage was ready.
pub const NOT_READY: u8 = 4;
/// `status --wait` saw a stage fail (a failed Job, a failed agent Job, a
/// Deployment past its progress deadline).
pub const STAGE_FAILED: u8 = 5;

/// A failure that maps to an exit code other than `ERROR` (1).
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Error already reported to the user (diagnostics printed): exit 1 silently.
#[derive(Debug)]
pub struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("errors reported above")
    }
}

impl std::error::Error for Reported {}
