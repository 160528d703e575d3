//! Which context variables a render read, and a fingerprint of each
//! variable's value: what a memo of rendered manifests keys on
//! (`render::memo`).
//!
//! A template is a pure function of what it reads: the engine's helpers and
//! partials are fixed per [`Engine`](super::Engine), `env_or` reads the
//! process environment (fixed per run). So two renders of one manifest whose
//! contexts agree on every variable the first render read follow the same
//! path, read the same variables and produce the same text. The engine
//! wraps each top-level context in an object that records the names looked
//! up in it ([`Tracked`]); a partial call carries the caller's values into
//! the partial's context without counting them as read, and the partial's
//! own reads count. Enumerating or printing the whole context (`debug()`)
//! counts as reading everything.

use std::cell::Cell;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, Value, ValueKind};
use sha2::{Digest, Sha256};

use super::context::CONTEXT_VARS;

/// A set of context variables (bit `i` is `CONTEXT_VARS[i]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Access(u16);

const ALL: u16 = (1 << CONTEXT_VARS.len()) - 1;

impl Access {
    /// Every context variable.
    pub const ALL: Access = Access(ALL);

    /// The variable `name`, if it is a context variable.
    fn of(name: &str) -> Access {
        CONTEXT_VARS.iter().position(|v| *v == name).map_or(Access(0), |i| Access(1 << i))
    }

    /// Whether the set holds any of `names`.
    pub fn reads_any(self, names: &[&str]) -> bool {
        names.iter().any(|n| self.0 & Access::of(n).0 != 0)
    }

    /// The variables of the set, in `CONTEXT_VARS` order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        CONTEXT_VARS.iter().enumerate().filter(move |(i, _)| self.0 & (1 << i) != 0).map(|(_, v)| *v)
    }
}

thread_local! {
    /// What the render running on this thread has read so far.
    static READ: Cell<Access> = const { Cell::new(Access(0)) };
    /// Set while a partial call copies the caller's variables.
    static PAUSED: Cell<bool> = const { Cell::new(false) };
}

fn note(access: Access) {
    if !PAUSED.with(Cell::get) {
        READ.with(|r| r.set(Access(r.get().0 | access.0)));
    }
}

/// Starts recording the reads of a top-level render on this thread.
pub(super) fn start() {
    READ.with(|r| r.set(Access(0)));
}

/// What the top-level render on this thread has read.
pub(super) fn finish() -> Access {
    READ.with(Cell::get)
}

/// Runs `f` without recording its reads (a partial call copying the
/// caller's variables into the partial's context).
pub(super) fn unrecorded<T>(f: impl FnOnce() -> T) -> T {
    let before = PAUSED.with(|p| p.replace(true));
    let out = f();
    PAUSED.with(|p| p.set(before));
    out
}

/// A context whose lookups are recorded.
#[derive(Debug)]
pub(super) struct Tracked(pub Value);

impl Tracked {
    pub(super) fn wrap(ctx: Value) -> Value {
        Value::from_object(Tracked(ctx))
    }
}

impl Object for Tracked {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str() {
            Some(name) => self.get_value_by_str(name),
            None => {
                note(Access::ALL);
                self.0.get_item(key).ok().filter(|v| !v.is_undefined())
            }
        }
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        note(Access::of(key));
        self.0.get_attr(key).ok().filter(|v| !v.is_undefined())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        note(Access::ALL);
        match self.0.try_iter() {
            Ok(keys) => Enumerator::Iter(Box::new(keys.collect::<Vec<_>>().into_iter())),
            Err(_) => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        self.0.len()
    }

    fn is_true(self: &Arc<Self>) -> bool {
        self.0.is_true()
    }
}

/// A digest of `value` as templates see it: kinds, numbers as printed,
/// strings, sequences and maps in iteration order. `None` for values of
/// other kinds (objects the digest cannot see into): never memoized.
pub fn fingerprint(value: &Value) -> Option<[u8; 32]> {
    let mut h = Sha256::new();
    walk(value, &mut h, 0)?;
    Some(h.finalize().into())
}

fn walk(v: &Value, h: &mut Sha256, depth: usize) -> Option<()> {
    if depth > 64 {
        return None;
    }
    let text = |h: &mut Sha256, tag: &[u8], s: &str| {
        h.update(tag);
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    match v.kind() {
        ValueKind::Undefined => h.update(b"U"),
        ValueKind::None => h.update(b"N"),
        ValueKind::Bool => h.update(if v.is_true() { b"T" } else { b"F" }),
        ValueKind::Number => text(h, if v.is_integer() { b"I" } else { b"R" }, &v.to_string()),
        ValueKind::String => text(h, if v.is_safe() { b"s" } else { b"S" }, v.as_str()?),
        ValueKind::Seq => {
            h.update(b"L");
            h.update((v.len()? as u64).to_le_bytes());
            for item in v.try_iter().ok()? {
                walk(&item, h, depth + 1)?;
            }
        }
        ValueKind::Map => {
            h.update(b"M");
            h.update((v.len()? as u64).to_le_bytes());
            for key in v.try_iter().ok()? {
                walk(&key, h, depth + 1)?;
                walk(&v.get_item(&key).ok()?, h, depth + 1)?;
            }
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_kinds_and_values_apart() {
        let fp = |v: Value| fingerprint(&v).unwrap();
        assert_ne!(fp(Value::from(1)), fp(Value::from(1.0)));
        assert_ne!(fp(Value::from(1)), fp(Value::from("1")));
        assert_ne!(fp(Value::from(true)), fp(Value::from(1)));
        assert_ne!(fp(Value::from(())), fp(Value::UNDEFINED));
        assert_ne!(fp(Value::from("ab")), fp(Value::from_safe_string("ab".into())));
        assert_ne!(fp(Value::from(vec!["a", "b"])), fp(Value::from(vec!["ab"])));
        assert_ne!(fp(Value::from(vec!["a", "b"])), fp(Value::from(vec!["b", "a"])));
        let map = |pairs: &[(&str, i32)]| Value::from_iter(pairs.iter().map(|(k, v)| (k.to_string(), *v)));
        assert_ne!(fp(map(&[("a", 1)])), fp(map(&[("a", 2)])));
        assert_eq!(fp(map(&[("a", 1), ("b", 2)])), fp(map(&[("a", 1), ("b", 2)])));
    }

    #[test]
    fn accesses_name_context_variables_only() {
        assert_eq!(Access::of("vars").names().collect::<Vec<_>>(), ["vars"]);
        assert_eq!(Access::of("metadata"), Access(0));
        assert!(Access::ALL.reads_any(&["slot"]));
        assert!(!Access::of("env").reads_any(&["slot", "namespace"]));
    }
}
