//! Review from source: the inventory rendered at two source revisions in
//! memory and diffed object by object with [`super::diff`], no rendered
//! files needed (`diff --source-base`).
//!
//! Each environment is one comparison: a plain environment as itself, a slot
//! environment through one representative slot (the pull request's own, or
//! [`PROBE_SLOT`]). The slot environment's other slots (those the tree
//! holds) are rendered too, each with its own run id and recorded overrides,
//! and counted by whether they change *the same way* as the representative:
//! the same list of changed objects (target, stage, kind, identity, Job
//! rename) with the same unified diffs, once each slot's own name, namespace,
//! host, run id and Job spec hashes are replaced by placeholders (the run id
//! and the slot by the same one: either may equal the other).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use super::{Kind, Report, Snapshot};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::inventory::{Inventory, Override, Overrides};
use crate::render::{render_target, RenderedTarget, Request, Target};
use crate::template::Engine;

/// The slot (and run id) a slot environment is diffed with when no `--slot` is given.
pub const PROBE_SLOT: &str = "probe";

/// One side of a source diff.
pub struct Side<'a> {
    /// How messages name it: `REV`, or `work tree`.
    pub label: String,
    /// Put before a project-relative path in messages: `REV:dir/`, or empty for the work tree.
    pub path_prefix: String,
    /// The project at that side; `None` when it has no inventory.
    pub project: Option<(&'a Inventory, &'a Engine)>,
}

/// A slot to render, as the tree remembers it.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotSpec {
    /// Slot name.
    pub slot: String,
    /// Agent run id.
    pub run_id: Option<String>,
    /// Recorded overrides, in order.
    pub sets: Vec<Override>,
    /// How messages name where they were recorded (its `target.json`).
    pub origin: String,
}

impl SlotSpec {
    /// The probe slot: no overrides, run id [`PROBE_SLOT`] so the agent renders too.
    pub fn probe() -> SlotSpec {
        SlotSpec {
            slot: PROBE_SLOT.into(),
            run_id: Some(PROBE_SLOT.into()),
            sets: Vec::new(),
            origin: "the probe slot".into(),
        }
    }
}

/// What to compare for one environment.
#[derive(Debug, Clone)]
pub struct EnvPlan {
    /// The environment.
    pub env: String,
    /// The representative slot; `None` for a plain environment.
    pub representative: Option<SlotSpec>,
    /// True when the representative is the probe slot.
    pub probe: bool,
    /// The environment's other slots in the tree.
    pub existing: Vec<SlotSpec>,
}

/// A slot that could not be compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotFailure {
    /// The slot.
    pub slot: String,
    /// Why (first line of the error, with the side it happened on).
    pub error: String,
}

/// How a slot environment's slots change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotGroup {
    /// The environment.
    pub env: String,
    /// The slot diffed in the report.
    pub slot: String,
    /// True when that is the probe slot.
    pub probe: bool,
    /// Other slots the tree holds.
    pub existing: usize,
    /// Those that change the same way as `slot`.
    pub same: Vec<String>,
    /// Those that change otherwise.
    pub different: Vec<String>,
    /// Those that could not be rendered on a side.
    pub failed: Vec<SlotFailure>,
}

/// The result of a source diff.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Review {
    /// The object changes of every plain environment and representative slot.
    pub report: Report,
    /// One group per slot environment compared.
    pub slots: Vec<SlotGroup>,
}

/// Prefixes the file of every diagnostic with `prefix` (`REV:dir/`), so
/// messages name the revision's file rather than a temporary copy.
pub fn relabel(ds: Diagnostics, prefix: &str, tmp_root: Option<&std::path::Path>) -> Diagnostics {
    if prefix.is_empty() {
        return ds;
    }
    let tmp = tmp_root.map(|t| t.display().to_string());
    Diagnostics(
        ds.0.into_iter()
            .map(|mut d| {
                let rel = match &tmp_root {
                    Some(t) => d.file.strip_prefix(t).map(PathBuf::from).unwrap_or_else(|_| d.file.clone()),
                    None => d.file.clone(),
                };
                d.file = PathBuf::from(format!("{prefix}{}", rel.display()));
                if let Some(t) = &tmp {
                    d.message = d.message.replace(&format!("{t}/"), prefix).replace(t.as_str(), prefix);
                }
                d
            })
            .collect(),
    )
}

/// What one side renders: a plan index, which slot (`None`: the
/// representative or the plain environment), and the request (`None`: the
/// environment does not exist there).
struct Job {
    plan: usize,
    slot: Option<usize>,
    request: Option<Request>,
}

/// The request of `plan` (slot `spec`) on a side; `Ok(None)` when the side
/// has no such environment (every object is added or removed).
fn request_for(inventory: &Inventory, env: &str, spec: Option<&SlotSpec>) -> Result<Option<Request>, String> {
    let Some(environment) = inventory.environment(env) else { return Ok(None) };
    let probe = SlotSpec::probe();
    let spec = match (environment.slots, spec) {
        (false, _) => None,
        (true, s) => Some(s.unwrap_or(&probe)),
    };
    let mut sets = Overrides::default();
    for o in spec.map(|s| s.sets.as_slice()).unwrap_or_default() {
        o.check(inventory)?;
        sets.apply(o)?;
    }
    sets.check_against(inventory, environment)?;
    Ok(Some(Request {
        target: Target { env: env.to_owned(), slot: spec.map(|s| s.slot.clone()) },
        run_id: spec.and_then(|s| s.run_id.clone()),
        sets,
        // Both sides render without an owner, so ownership never shows as a change.
        source: None,
    }))
}

/// The objects of one rendered target and its Flux file, as the tree would hold them.
fn target_snapshot(inventory: &Inventory, t: &RenderedTarget, out_prefix: &str) -> Snapshot {
    let flux = crate::tree::flux_file(inventory, t, out_prefix);
    let dir = t.target.dir();
    let files = crate::tree::target_files(inventory, t, "", &flux);
    let mut all: Vec<(String, String)> = files.into_iter().map(|(p, c)| (crate::layout::join(&dir, &p), c)).collect();
    all.push((crate::tree::flux_path(&t.target.env, t.target.slot.as_deref()), flux));
    Snapshot::from_files(all.iter().map(|(p, c)| (p.as_str(), c.as_bytes())))
}

/// A rendered job: its snapshot and the names a slot's objects carry.
#[derive(Debug, Clone, PartialEq)]
struct Done {
    snapshot: Snapshot,
    tokens: Vec<(String, &'static str)>,
}

/// Renders every job of a side in parallel; results in job order.
fn render_side(side: &Side<'_>, jobs: &[Job], out_prefix: &str) -> Vec<Result<Option<Done>, Diagnostics>> {
    let Some((inventory, engine)) = side.project else {
        return jobs.iter().map(|_| Ok(None)).collect();
    };
    jobs.par_iter()
        .map(|job| {
            let Some(request) = &job.request else { return Ok(None) };
            let t = render_target(inventory, engine, request).map_err(|ds| relabel(ds, &side.path_prefix, None))?;
            let mut tokens = vec![(t.namespace.clone(), "<namespace>")];
            if let Some(h) = &t.host {
                tokens.push((h.clone(), "<host>"));
            }
            // The run id shares the slot's placeholder: either may equal the other.
            if let Some(r) = &t.run_id {
                tokens.push((r.clone(), "<slot>"));
            }
            if let Some(s) = &t.target.slot {
                tokens.push((s.clone(), "<slot>"));
            }
            Ok(Some(Done { snapshot: target_snapshot(inventory, &t, out_prefix), tokens }))
        })
        .collect()
}

/// A slot that could not be rendered on a side: plan index, slot index, why.
type Unrendered = (usize, usize, String);

/// The jobs of a side: per plan the main target, then each existing slot.
/// An override that does not apply is an error for a main target and a
/// failure of that slot otherwise.
fn jobs_for(side: &Side<'_>, plans: &[EnvPlan]) -> Result<(Vec<Job>, Vec<Unrendered>), Diagnostics> {
    let mut jobs = Vec::new();
    let mut failures = Vec::new();
    let mut errors = Diagnostics::default();
    for (i, plan) in plans.iter().enumerate() {
        let specs = std::iter::once((None, plan.representative.as_ref()))
            .chain(plan.existing.iter().enumerate().map(|(j, s)| (Some(j), Some(s))));
        for (slot, spec) in specs {
            let request = match side.project {
                None => None,
                Some((inventory, _)) => match request_for(inventory, &plan.env, spec) {
                    Ok(r) => r,
                    Err(e) => {
                        let origin = spec.map(|s| s.origin.clone()).unwrap_or_default();
                        let message = format!("at {}: {e}", side.label);
                        match slot {
                            Some(j) => failures.push((i, j, format!("overrides recorded in {origin} {message}"))),
                            None => errors.push(
                                Diagnostic::error(&origin, None, format!("the overrides recorded here {message}"))
                                    .with_help("render the slot again with overrides both revisions accept"),
                            ),
                        }
                        continue;
                    }
                },
            };
            jobs.push(Job { plan: i, slot, request });
        }
    }
    if errors.has_errors() {
        return Err(errors);
    }
    Ok((jobs, failures))
}

/// Per plan and slot (`None`: main), the rendered result of one side.
type Rendered = BTreeMap<(usize, Option<usize>), Result<Option<Done>, String>>;

fn run_side(side: &Side<'_>, plans: &[EnvPlan], out_prefix: &str) -> Result<Rendered, Diagnostics> {
    let (jobs, failures) = jobs_for(side, plans)?;
    let results = render_side(side, &jobs, out_prefix);
    let mut out = Rendered::new();
    let mut errors = Diagnostics::default();
    for (job, result) in jobs.iter().zip(results) {
        let value = match result {
            Ok(done) => Ok(done),
            Err(ds) if job.slot.is_none() => {
                errors.0.extend(ds.0);
                continue;
            }
            Err(ds) => {
                let first = ds.0.first().map_or_else(String::new, |d| {
                    format!("{} ({})", d.message, crate::diagnostic::display_path(&d.file))
                });
                Err(format!("does not render at {}: {first}", side.label))
            }
        };
        out.insert((job.plan, job.slot), value);
    }
    if errors.has_errors() {
        return Err(errors);
    }
    for (i, j, e) in failures {
        out.insert((i, Some(j)), Err(e));
    }
    Ok(out)
}

fn take(r: &mut Rendered, key: (usize, Option<usize>)) -> Result<Option<Done>, String> {
    r.remove(&key).unwrap_or(Ok(None))
}

/// Compares `plans` between `base` and `head`. `out_prefix` is the tree's
/// path in the repository (it appears in the Argo CD and Flux glue).
pub fn review(base: &Side<'_>, head: &Side<'_>, plans: &[EnvPlan], out_prefix: &str) -> Result<Review, Diagnostics> {
    let (b, h) = rayon::join(|| run_side(base, plans, out_prefix), || run_side(head, plans, out_prefix));
    let (mut b, mut h) = match (b, h) {
        (Ok(b), Ok(h)) => (b, h),
        (b, h) => {
            let mut all = Diagnostics::default();
            all.0.extend(b.err().map(|d| d.0).unwrap_or_default());
            all.0.extend(h.err().map(|d| d.0).unwrap_or_default());
            return Err(all);
        }
    };
    let mut base_all = Snapshot::default();
    let mut head_all = Snapshot::default();
    let mut slots = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        // A main target's failures are errors already: here it is rendered or absent.
        let old = take(&mut b, (i, None)).ok().flatten();
        let new = take(&mut h, (i, None)).ok().flatten();
        for (side, all, done) in [(base, &mut base_all, &old), (head, &mut head_all, &new)] {
            if let (Some(d), Some((inventory, _))) = (done, side.project) {
                all.objects.extend(d.snapshot.objects.clone());
                let argocd = crate::tree::argocd_file(inventory, &plan.env, out_prefix);
                let path = crate::layout::argocd_path(&plan.env);
                all.objects.extend(Snapshot::from_files([(path.as_str(), argocd.as_bytes())]).objects);
            }
        }
        let Some(rep) = &plan.representative else { continue };
        let reference = normalised(&old, &new);
        let mut group = SlotGroup {
            env: plan.env.clone(),
            slot: rep.slot.clone(),
            probe: plan.probe,
            existing: plan.existing.len(),
            same: Vec::new(),
            different: Vec::new(),
            failed: Vec::new(),
        };
        for (j, spec) in plan.existing.iter().enumerate() {
            match (take(&mut b, (i, Some(j))), take(&mut h, (i, Some(j)))) {
                (Ok(o), Ok(n)) if normalised(&o, &n) == reference => group.same.push(spec.slot.clone()),
                (Ok(_), Ok(_)) => group.different.push(spec.slot.clone()),
                (Err(error), _) | (_, Err(error)) => group.failed.push(SlotFailure { slot: spec.slot.clone(), error }),
            }
        }
        slots.push(group);
    }
    Ok(Review { report: super::diff(&base_all, &head_all), slots })
}

/// One change with the slot's own names replaced by placeholders.
type Normalised = (String, String, Kind, String, Option<String>, String);

/// The changes of one slot between two renders, normalised (see the module docs).
fn normalised(old: &Option<Done>, new: &Option<Done>) -> Vec<Normalised> {
    let empty = Snapshot::default();
    let report =
        super::diff(old.as_ref().map_or(&empty, |d| &d.snapshot), new.as_ref().map_or(&empty, |d| &d.snapshot));
    let mut tokens: BTreeSet<(std::cmp::Reverse<usize>, String, &'static str)> = BTreeSet::new();
    for d in old.iter().chain(new.iter()) {
        for (t, p) in &d.tokens {
            tokens.insert((std::cmp::Reverse(t.len()), t.clone(), p));
        }
    }
    for c in &report.changes {
        for name in std::iter::once(&c.id.name).chain(c.renamed_from.as_ref()) {
            if let Some((_, hash)) = super::job_hash(&c.id.kind, name) {
                tokens.insert((std::cmp::Reverse(hash.len()), hash.to_owned(), "<hash>"));
            }
        }
    }
    let norm = |s: &str| tokens.iter().fold(s.to_owned(), |acc, (_, t, p)| replace_token(&acc, t, p));
    let mut out: Vec<Normalised> = report
        .changes
        .iter()
        .map(|c| {
            let id = format!("{} {} {:?} {}", c.id.api_version, c.id.kind, c.id.namespace, c.id.name);
            (norm(&c.target), c.stage.clone(), c.kind, norm(&id), c.renamed_from.as_deref().map(norm), norm(&c.diff))
        })
        .collect();
    out.sort();
    out
}

/// Replaces each occurrence of `token` in `text` that is not part of a
/// longer run of letters and digits (`pr-1` in `ns-pr-1` and
/// `slots/pr-1/src`, not in `pr-12`).
pub fn replace_token(text: &str, token: &str, placeholder: &str) -> String {
    if token.is_empty() {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in text.match_indices(token) {
        if at < last {
            continue;
        }
        let end = at + token.len();
        let before = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
        let after = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
        if before && after {
            out.push_str(&text[last..at]);
            out.push_str(placeholder);
            last = end;
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_replaced_only_where_they_stand_alone() {
        assert_eq!(
            replace_token("ns-pr-1 slots/pr-1/src pr-12 xpr-1", "pr-1", "<s>"),
            "ns-<s> slots/<s>/src pr-12 xpr-1"
        );
        assert_eq!(replace_token("pr-1", "pr-1", "<s>"), "<s>");
        assert_eq!(replace_token("aaa", "aa", "<s>"), "aaa");
        assert_eq!(replace_token("abc", "", "<s>"), "abc");
    }

    #[test]
    fn relabel_names_the_revision() {
        let ds = Diagnostics(vec![Diagnostic::error("manifests/a.yaml.j2", None, "bad")]);
        let ds = relabel(ds, "main:deploy/", None);
        assert_eq!(ds.0[0].file, PathBuf::from("main:deploy/manifests/a.yaml.j2"));
        let tmp = std::path::Path::new("/tmp/x/project");
        let ds = Diagnostics(vec![Diagnostic::error(tmp.join("services.yaml"), None, "in /tmp/x/project/a.yaml")]);
        let ds = relabel(ds, "main:", Some(tmp));
        assert_eq!(ds.0[0].file, PathBuf::from("main:services.yaml"));
        assert_eq!(ds.0[0].message, "in main:a.yaml");
    }
}
