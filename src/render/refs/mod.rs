//! Every reference resolves (SPEC section 9): after the policy checks, each
//! namespaced reference an object of a target makes — Secrets and their
//! keys, ConfigMaps, ServiceAccounts, claims, Services and their ports, pod
//! selectors, scale targets — must name an object of the same target, what
//! Kubernetes or a known controller creates from one (`index.rs`), or a
//! Secret provided out of band ([`Provided`]); each cluster-wide name
//! (classes, issuers, CRDs) must be a declared prerequisite
//! (`cluster.rs`). Pure: objects in, [`Miss`]es out, every one of them.
//!
//! Entry points: [`check`] and [`needs`] (what a target asks of its cluster).

mod cluster;
mod index;
mod network;
mod pods;

pub use cluster::{needs, Needs};
pub use index::{Keys, Provided};

use serde_yaml::Value;

use crate::inventory::Prerequisites;
use crate::render::object::RenderedObject;
use index::Index;

/// A reference nothing provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    /// Index into the checked objects.
    pub object: usize,
    /// The object, the reference, and that nothing provides it.
    pub message: String,
    /// What would satisfy it.
    pub help: String,
    /// Text the template line that writes the reference likely holds, best first.
    pub needles: Vec<String>,
}

/// What every check of one object sees.
struct Ctx<'a, 'o> {
    /// Index of the object.
    i: usize,
    /// The object.
    o: &'o RenderedObject,
    /// What the target provides.
    index: &'a Index<'o>,
    /// The inventory's `prerequisites`.
    prerequisites: &'a Prerequisites,
    /// Misses found so far.
    out: &'a mut Vec<Miss>,
}

impl Ctx<'_, '_> {
    /// `Kind `name``, how messages name the object.
    fn what(&self) -> String {
        format!("{} `{}`", self.o.id.kind, self.o.id.name)
    }

    /// Records a miss.
    fn miss(&mut self, message: String, help: impl Into<String>, needles: Vec<String>) {
        self.out.push(Miss { object: self.i, message, help: help.into(), needles });
    }
}

/// Every reference of `objects` that resolves to nothing, in object order.
pub fn check(objects: &[RenderedObject], prerequisites: &Prerequisites, provided: &Provided) -> Vec<Miss> {
    let index = Index::new(objects, provided);
    let mut out = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let mut ctx = Ctx { i, o, index: &index, prerequisites, out: &mut out };
        pods::check(&mut ctx);
        network::check(&mut ctx);
        cluster::check(&mut ctx);
    }
    out
}

/// The string at `path` under `v`.
pub(super) fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

/// The items of the sequence at `path` under `v` (none when absent).
pub(super) fn seq<'v>(v: &'v Value, path: &[&str]) -> impl Iterator<Item = &'v Value> {
    path.iter().try_fold(v, |v, k| v.get(*k)).and_then(Value::as_sequence).into_iter().flatten()
}

/// Whether the reference at `v` is marked `optional: true`.
pub(super) fn optional(v: &Value) -> bool {
    v.get("optional").and_then(Value::as_bool) == Some(true)
}

/// The 1-based line and column of the first needle found in `source`, a
/// template of an object of `kind`: searched from the first `kind: <kind>`
/// line on (a template may write several objects), then in the whole
/// file; lines inside `{# … #}` comments are skipped. Without any, the
/// `kind` line, else the first line of template text (a macro call that
/// writes the object).
pub fn locate(source: &str, kind: &str, needles: &[String]) -> Option<(usize, usize)> {
    let lines = code_lines(source);
    let kind_line = format!("kind: {kind}");
    let start = lines.iter().position(|(_, l)| l.trim_start().starts_with(&kind_line));
    let column = |line: &str, at: usize| line[..at].chars().count() + 1;
    for from in start.into_iter().chain([0]) {
        for needle in needles.iter().filter(|n| !n.is_empty()) {
            for (n, line) in &lines[from..] {
                if let Some(at) = line.find(needle.as_str()) {
                    return Some((*n, column(line, at)));
                }
            }
        }
    }
    let fallback = match start {
        Some(i) => Some(&lines[i]),
        None => lines.iter().find(|(_, l)| !l.trim().is_empty()),
    };
    fallback.map(|(n, l)| (*n, l.len() - l.trim_start().len() + 1))
}

/// The lines of `source` outside template comments, numbered from 1.
fn code_lines(source: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut in_comment = false;
    for (n, line) in source.lines().enumerate() {
        let starts_in = in_comment;
        let mut rest = line;
        loop {
            if in_comment {
                match rest.find("#}") {
                    Some(i) => {
                        in_comment = false;
                        rest = &rest[i + 2..];
                    }
                    None => break,
                }
            } else {
                match rest.find("{#") {
                    Some(i) => {
                        in_comment = true;
                        rest = &rest[i + 2..];
                    }
                    None => break,
                }
            }
        }
        let only_comment = starts_in || line.trim_start().starts_with("{#");
        if !only_comment {
            out.push((n + 1, line));
        }
    }
    out
}

#[cfg(test)]
mod tests;
