//! Templates: minijinja with strict undefined, global partial macros, the
//! documented helpers, and a sandbox (fuel, partial depth, output size).
//!
//! Entry point: [`Engine::new`] compiles a project's templates once; render
//! threads share it.

mod context;
mod engine;
mod helpers;
mod partials;

pub use context::{ComponentContext, RunContext, TargetContext, TlsContext};
pub use engine::{diagnostic_from, template_name, Engine, CONTEXT_VARS};
pub use partials::{scan_macros, MacroDef, RESERVED};

#[cfg(test)]
mod tests;
