//! Rendering: per target, evaluate `when`, order components, render their
//! templates in parallel, apply overlays, namespaces, labels and waves, and
//! check policy. Pure: inputs in, [`RenderedTarget`] out.

mod checks;
mod context;
mod documents;
pub mod emit;
mod generated;
mod images;
pub mod isolation;
mod kinds;
mod memo;
mod nouns;
mod object;
mod overlay;
mod part;
mod place;
mod plan;
mod policy;
pub mod read;
mod refs;
mod shard;
pub mod source;
mod target;

pub use context::target_context;
pub use documents::excerpt;
pub use images::{image_uses, ImageUse};
pub use nouns::{Enablement, PlannedComponent, RenderedTarget, Request, Target};
pub use object::{ObjectId, RenderedObject};
pub use overlay::{add_env, add_pvc_mount, Mount};
pub use place::labels;
pub use plan::{disabled_dependencies, plan_target};
pub use policy::{is_watcher_key, slot_kinds};
pub use refs::{needs, Keys, Needs, Provided};
pub use shard::Shard;
pub use source::Source;
pub use target::render_target;

use rayon::prelude::*;

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::inventory::Inventory;
use crate::template::Engine;

/// Renders every request in parallel. Errors of all targets are collected in
/// request order, so the report is the same at any thread count.
pub fn render_targets(
    inventory: &Inventory,
    engine: &Engine,
    requests: &[Request],
) -> Result<Vec<RenderedTarget>, Diagnostics> {
    let results: Vec<Result<RenderedTarget, Diagnostics>> =
        requests.par_iter().map(|r| render_target(inventory, engine, r)).collect();
    let mut ok = Vec::with_capacity(results.len());
    let mut failed = Vec::new();
    for (r, req) in results.into_iter().zip(requests) {
        match r {
            Ok(t) => ok.push(t),
            Err(ds) => failed.push((req.target.to_string(), ds.0)),
        }
    }
    let errors = Diagnostics(merge_across_targets(failed));
    if errors.has_errors() {
        return Err(errors);
    }
    let namespaces: Vec<_> = ok.iter().map(|t| (t.target.clone(), t.namespace.clone())).collect();
    let clashes = isolation::clashes(inventory, engine, &namespaces);
    if clashes.has_errors() {
        return Err(clashes);
    }
    Ok(ok)
}

/// The plan-level warnings of a run ([`plan::disabled_dependencies`]), from
/// the first request of each environment: planning is cheap (no manifest is
/// rendered), and the warning names the environment, so one slot stands for
/// the others. A request that cannot be planned gives none: its render
/// reports the error.
pub fn plan_warnings(inventory: &Inventory, engine: &Engine, requests: &[Request]) -> Diagnostics {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Diagnostics::default();
    for req in requests.iter().filter(|r| seen.insert(r.target.env.as_str())) {
        let Ok(ctx) = context::target_context(inventory, engine, req) else { continue };
        let Ok(plan) = plan::plan_target(inventory, engine, &ctx, req) else { continue };
        out.0.extend(plan::disabled_dependencies(inventory, &req.target, &plan));
    }
    out
}

/// One fault reported by many targets (a typo in a partial every target
/// renders) is one diagnostic: diagnostics that differ only in the target's
/// name are merged, the first kept, and "the same in N targets: …" added.
/// Order: first occurrence, in request order.
pub(crate) fn merge_across_targets(per_target: Vec<(String, Vec<Diagnostic>)>) -> Vec<Diagnostic> {
    type Key = (std::path::PathBuf, Option<crate::diagnostic::Location>, String, Option<String>, bool);
    let mut index: BTreeMap<Key, usize> = BTreeMap::new();
    let mut out: Vec<(Diagnostic, Vec<String>)> = Vec::new();
    for (target, diags) in per_target {
        for d in diags {
            let key =
                (d.file.clone(), d.location, replace_word(&d.message, &target, "\u{0}"), d.help.clone(), d.is_error());
            match index.get(&key) {
                Some(&i) if !out[i].1.contains(&target) => out[i].1.push(target.clone()),
                Some(_) => {}
                None => {
                    index.insert(key, out.len());
                    out.push((d, vec![target.clone()]));
                }
            }
        }
    }
    out.into_iter()
        .map(|(mut d, mut targets)| {
            if targets.len() > 1 {
                targets.sort();
                let n = targets.len();
                let mut list = targets.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
                if n > 8 {
                    list.push_str(", …");
                }
                d.message = format!("{} — the same in {n} targets: {list}", d.message);
            }
            d
        })
        .collect()
}

/// `text` with every whole-word occurrence of `word` (not inside a longer
/// name such as `shop-dev`) replaced by `with`.
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let part_of_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut prev: Option<char> = None;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back().or(if i == 0 { prev } else { None });
        let after = rest[i + word.len()..].chars().next();
        let whole = !before.is_some_and(part_of_name) && !after.is_some_and(|c| part_of_name(c) && c != '.');
        out.push_str(&rest[..i]);
        out.push_str(if whole { with } else { word });
        prev = word.chars().next_back();
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_word_skips_longer_names() {
        assert_eq!(replace_word("target dev in shop-dev, dev.", "dev", "X"), "target X in shop-dev, X.");
        assert_eq!(replace_word("ai/pr-1 and ai/pr-10", "ai/pr-1", "X"), "X and ai/pr-10");
    }

    #[test]
    fn identical_faults_of_several_targets_merge() {
        let d = |t: &str| {
            Diagnostic::error("partials/p.j2", None, format!("undefined value (component `api`, target {t})"))
        };
        let other = Diagnostic::error("manifests/a.j2", None, "only in staging (target staging)");
        let merged =
            merge_across_targets(vec![("staging".into(), vec![d("staging"), other]), ("dev".into(), vec![d("dev")])]);
        assert_eq!(merged.len(), 2);
        assert_eq!(
            merged[0].message,
            "undefined value (component `api`, target staging) — the same in 2 targets: dev, staging"
        );
        assert_eq!(merged[1].message, "only in staging (target staging)");
    }
}
