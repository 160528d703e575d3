//! `codex-k8s`: a GitOps renderer.
//!
//! A project describes its runtime once in `services.yaml` plus minijinja
//! manifest templates; this crate renders it per environment and per slot
//! into a deterministic tree of one-object-per-file manifests, ordered for
//! Argo CD (sync waves) and Flux (`dependsOn`), and commits it with libgit2.
//!
//! Data flows one way: [`inventory`] → [`template`] → [`render`] → [`tree`]
//! → [`git`] / [`diff`]. The binary's `cli` module is the only place that
//! knows them all.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Diagnostics are large (file, message, source line, help) but only travel on
// the error path, where their size costs nothing measurable.
#![allow(clippy::result_large_err)]

pub mod cli;
pub mod diagnostic;
pub mod diff;
pub mod git;
pub mod inventory;
pub mod layout;
pub mod publish;
pub mod render;
pub mod template;
pub mod tree;
#[cfg(feature = "watch")]
pub mod watch;
