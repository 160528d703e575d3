//! Templates: minijinja with strict undefined, global partial macros, the
//! documented helpers, and a sandbox (fuel, partial depth, output size).
//!
//! Entry point: [`Engine::new`] compiles a project's templates once; render
//! threads share it.

mod access;
mod context;
mod engine;
mod helpers;
mod partials;
mod printing;
mod quoting;

pub use access::{fingerprint, Access};
pub use context::{
    component_scope, is_reserved, ComponentContext, RunContext, SourceContext, TargetContext, TlsContext, CONTEXT_VARS,
    HELPERS,
};
pub use engine::{detail, diagnostic_from, template_name, Engine};
pub use partials::{scan_macros, MacroDef};

#[cfg(test)]
mod tests;
