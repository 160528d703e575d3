//! `codex-k8s`: a GitOps renderer.
//!
//! A project describes its runtime once in `services.yaml` plus minijinja
//! manifest templates; this crate renders it per environment and per slot
//! into a deterministic tree of one-object-per-file manifests, ordered for
//! Argo CD (sync waves) and Flux (`dependsOn`), and commits it with libgit2.
//!
//! Data flows one way: [`inventory`] → [`template`] → [`render`] → [`tree`]
//! → git / [`diff`] → [`publish`]; [`watch`] beside. The binary's `cli`
//! module turns flags into typed requests and prints results.
//!
//! The public modules are the stages an embedder drives
//! ([`inventory::load`], [`template::Engine::new`], [`render::render_targets`],
//! [`tree::desired`], [`diff::diff`], [`publish::RenderRun`]); git plumbing
//! and the tree's path scheme (`layout`) are private to the crate, reached
//! through `publish` and `tree`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Diagnostics are large (file, message, source line, help) but only travel on
// the error path, where their size costs nothing measurable.
#![allow(clippy::result_large_err)]

pub mod cli;
pub mod diagnostic;
pub mod diff;
mod git;
pub mod inventory;
mod layout;
pub mod publish;
pub mod render;
pub mod template;
pub mod tree;
#[cfg(feature = "watch")]
pub mod watch;
