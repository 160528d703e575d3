//! A memo of rendered manifests, so the slots of one environment render
//! each shared manifest once.
//!
//! The slots of an environment differ in a few context variables (`slot`,
//! `namespace`, `host`, the agent's `run`); most manifests read none of
//! them (codex-k8s sets namespaces and slot labels itself). The engine says
//! which variables a render read (`template::Access`), and a render is a
//! pure function of those (see `template/access.rs`): so a manifest's
//! documents are kept under (manifest, variables read, a fingerprint of
//! each one's value) and reused for every later part whose context agrees
//! on them. Renders that read a per-slot variable are not kept (they would
//! never be reused), nor are failures (each target reports its own).
//!
//! The memo is per render thread (no locking) and per engine (it starts
//! empty whenever another engine renders on the thread), and holds at most
//! [`MAX_BYTES`] of rendered text per thread, so memory stays flat at any
//! slot count. Output is byte-identical with and without it
//! (`tests/props.rs`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use minijinja::Value;

use super::nouns::Document;
use crate::diagnostic::Diagnostic;
use crate::template::{fingerprint, Access, Engine, CONTEXT_VARS};

/// Variables that tell the slots of one environment apart.
const PER_SLOT: [&str; 5] = ["slot", "namespace", "host", "run", "source"];

/// Rendered text kept per thread, at most.
pub const MAX_BYTES: usize = 4 << 20;

/// One manifest rendered: its documents and the length of its text.
#[derive(Debug, Clone)]
pub(super) struct Rendered {
    pub docs: Vec<Document>,
    pub len: usize,
}

type Prints = [OnceLock<Option<[u8; 32]>>; CONTEXT_VARS.len()];

/// The fingerprints of a part's context variables, computed when first
/// needed: `component`, `run` and its own `vars` per part, the rest once per
/// target (every part of a target shares them).
#[derive(Debug)]
pub(super) struct Fingerprints {
    part: Prints,
    target: Arc<Prints>,
    own_vars: bool,
}

impl Fingerprints {
    /// A table for one of a target's parts; `target` is shared by them all.
    pub fn new(target: &TargetPrints, own_vars: bool) -> Fingerprints {
        Fingerprints { part: Default::default(), target: Arc::clone(&target.0), own_vars }
    }

    fn of(&self, ctx: &Value, var: usize) -> Option<[u8; 32]> {
        let per_part = match CONTEXT_VARS[var] {
            "component" | "run" => true,
            "vars" => self.own_vars,
            _ => false,
        };
        let cell = if per_part { &self.part[var] } else { &self.target[var] };
        *cell.get_or_init(|| fingerprint(&ctx.get_attr(CONTEXT_VARS[var]).ok()?))
    }

    /// The key of `manifest` for a render that read `access`, or `None`
    /// when a value cannot be fingerprinted.
    fn key(&self, ctx: &Value, manifest: &Path, access: Access) -> Option<Key> {
        let values = access
            .names()
            .map(|name| self.of(ctx, CONTEXT_VARS.iter().position(|v| *v == name).expect("a context variable")))
            .collect::<Option<Vec<_>>>()?;
        Some((manifest.to_path_buf(), access, values))
    }
}

/// The fingerprints of one target's variables, shared by its parts.
#[derive(Debug, Default)]
pub(super) struct TargetPrints(Arc<Prints>);

type Key = (PathBuf, Access, Vec<[u8; 32]>);

#[derive(Default)]
struct Memo {
    engine: u64,
    /// Per manifest, the sets of variables its renders read.
    reads: BTreeMap<PathBuf, Vec<Access>>,
    entries: BTreeMap<Key, Arc<Rendered>>,
    bytes: usize,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::default();
}

/// `manifest` rendered for a part with context `ctx`: from the memo when a
/// render with the same reads is kept, else by `render` (which says what
/// it read), kept when it read no per-slot variable.
pub(super) fn rendered(
    engine: &Engine,
    manifest: &Path,
    ctx: &Value,
    prints: &Fingerprints,
    render: impl FnOnce() -> Result<(Rendered, Access), Diagnostic>,
) -> Result<Rendered, Diagnostic> {
    let hit = MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        if memo.engine != engine.id() {
            *memo = Memo { engine: engine.id(), ..Memo::default() };
        }
        let reads = memo.reads.get(manifest)?;
        reads.iter().find_map(|access| memo.entries.get(&prints.key(ctx, manifest, *access)?).cloned())
    });
    if let Some(hit) = hit {
        return Ok(Rendered::clone(&hit));
    }
    let (out, access) = render()?;
    if !access.reads_any(&PER_SLOT) {
        MEMO.with(|memo| {
            let mut memo = memo.borrow_mut();
            if memo.engine != engine.id() || memo.bytes + out.len > MAX_BYTES {
                return;
            }
            let Some(key) = prints.key(ctx, manifest, access) else { return };
            let reads = memo.reads.entry(manifest.to_path_buf()).or_default();
            if !reads.contains(&access) {
                reads.push(access);
            }
            memo.bytes += out.len;
            memo.entries.insert(key, Arc::new(out.clone()));
        });
    }
    Ok(out)
}
