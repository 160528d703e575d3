//! Values given for one run from outside the reviewed files: `--set`,
//! `--set-string` and `--values FILE` with Helm's grammar, and the same
//! overrides read back from a target's `target.json`.
//!
//! Each flag is parsed once, at the border, into [`Override`]s (a typed path
//! and a typed value). They are applied in command-line order onto an
//! override layer ([`Overrides`]), exactly as Helm builds its user values from
//! `-f` files and `--set`s; the layer is then laid over the inventory's values
//! of each component ([`Overrides::lay_over`]), as Helm lays user values over
//! a chart's `values.yaml`: maps merge, anything else replaces (lists
//! included), and `null` removes a key the inventory defines.

use std::collections::BTreeMap;
use std::fmt;

use serde_yaml::{Mapping, Value};

use super::model::{Component, Environment, Inventory};
use super::names::value_problem;
use super::resolve::deep_merge;
use super::yaml::Segment;
use crate::diagnostic::did_you_mean;

/// Largest list index `--set` accepts (Helm's limit).
pub const MAX_INDEX: usize = 65_536;
/// Most steps one `--set` path may have (Helm allows 30 nested names).
pub const MAX_STEPS: usize = 31;

/// A path into the values: the first step is `versions` or `vars`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ValuePath(pub Vec<Segment>);

impl fmt::Display for ValuePath {
    /// The form `--set` reads back: keys joined by `.`, `\` before `.`,
    /// `[`, `]`, `=`, `,` and `\` inside a key, indices as `[n]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    for c in k.chars() {
                        if matches!(c, '.' | '[' | ']' | '=' | ',' | '\\') {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                }
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One override, parsed: where it goes, what it sets, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// Where.
    pub path: ValuePath,
    /// What (a map from a values file merges into a map already there).
    pub value: Value,
    /// How messages name its source: `--set vars.a=1`, `--values prod.yaml`.
    pub origin: String,
}

mod file;
mod set;
#[cfg(test)]
mod tests;

pub use file::read_values_file;
use set::{parse_path, Scanner};
pub use set::{parse_set, typed};

/// A YAML value as one line of text (a string as is).
pub(super) fn yaml_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other).unwrap_or_default().trim_end().to_owned(),
    }
}

/// Why `v` (from `--set` or a `target.json`) is not data: a string with a
/// line break or a control character, in a value or a key.
fn data_problem(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => value_problem(s),
        Value::Sequence(items) => items.iter().find_map(data_problem),
        Value::Mapping(m) => m.iter().find_map(|(k, v)| match k {
            // `target.json` records a path per leaf: an empty key has none.
            Value::String(k) if k.is_empty() => Some("has an empty key, which target.json cannot record".into()),
            Value::String(k) => value_problem(k).or_else(|| data_problem(v)),
            _ => Some("has a key that is not a string".into()),
        }),
        // JSON (and so target.json) has no infinity or NaN.
        Value::Number(n) if n.as_f64().is_some_and(|f| !f.is_finite()) => {
            Some(format!("is `{n}`, not a finite number, which target.json cannot record; quote it to pass the text"))
        }
        Value::Tagged(_) => Some("is a tagged value".into()),
        _ => None,
    }
}

impl Override {
    /// Checks the override against the inventory: `versions.<known name>` or
    /// `vars.<path>`, and values that are data (one line of text).
    pub fn check(&self, inventory: &Inventory) -> Result<(), String> {
        let path = &self.path;
        let root = match path.0.first() {
            Some(Segment::Key(k)) => k.as_str(),
            _ => "",
        };
        match (root, &path.0[1..]) {
            ("versions", [Segment::Key(name)]) => {
                if !inventory.versions.contains_key(name) {
                    let hint = did_you_mean(name, inventory.versions.keys().map(String::as_str))
                        .map(|s| format!(" (did you mean `versions.{s}`?)"))
                        .unwrap_or_default();
                    return Err(format!("{}: no version `{name}` in services.yaml{hint}", self.origin));
                }
                if !self.value.is_string() {
                    return Err(format!("{}: a version is text, e.g. versions.{name}=1.5.0", self.origin));
                }
            }
            ("versions", _) => {
                return Err(format!("{}: a version is set as `versions.<name>=VALUE`", self.origin));
            }
            ("vars", []) if self.value.is_mapping() => {}
            ("vars", [_, ..]) => {}
            _ => {
                return Err(format!(
                    "{}: only `versions.<name>` and `vars.<path>` can be overridden (`{path}` is neither)",
                    self.origin
                ))
            }
        }
        if let Some(problem) = data_problem(&self.value) {
            return Err(format!("--set {path}: the value {problem} (from {})", self.origin));
        }
        Ok(())
    }
}

/// The overrides of one target, in effect: `versions` set, and the `vars`
/// layer laid over the inventory's values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    versions: BTreeMap<String, String>,
    vars: Mapping,
    /// Key paths below `vars` (up to a first index) and who set them, in order.
    origins: Vec<(Vec<String>, String)>,
}

impl Eq for Overrides {}

/// How a value reads in a message: `a map`, `the number 3`.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the bool `{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("the text `{s}`"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a map".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

/// Sets `value` at `steps` below `cur`, creating maps and lists on the way
/// and padding lists with null (Helm's `--set`). A map meeting a map
/// merges (a values file); anything else replaces.
fn set_at(cur: &mut Value, steps: &[Segment], value: &Value, walked: &mut ValuePath) -> Result<(), String> {
    let Some((step, rest)) = steps.split_first() else {
        match (cur, value) {
            (Value::Mapping(base), Value::Mapping(over)) => merge_maps(base, over),
            (cur, _) => *cur = value.clone(),
        }
        return Ok(());
    };
    match step {
        Segment::Key(key) => {
            if cur.is_null() {
                *cur = Value::Mapping(Mapping::new());
            }
            let Value::Mapping(map) = cur else {
                return Err(format!("`{walked}` is {}, so it has no key `{key}`", describe(cur)));
            };
            walked.0.push(step.clone());
            let entry = map.entry(Value::String(key.clone())).or_insert(Value::Null);
            set_at(entry, rest, value, walked)
        }
        Segment::Index(i) => {
            if cur.is_null() {
                *cur = Value::Sequence(Vec::new());
            }
            let Value::Sequence(list) = cur else {
                return Err(format!("`{walked}` is {}, so it cannot be indexed with `[{i}]`", describe(cur)));
            };
            if list.len() <= *i {
                list.resize(*i + 1, Value::Null);
            }
            walked.0.push(step.clone());
            set_at(&mut list[*i], rest, value, walked)
        }
    }
}

/// Helm's merge of values files: maps merge recursively, anything else
/// (null and lists included) replaces.
fn merge_maps(base: &mut Mapping, over: &Mapping) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Mapping(b)), Value::Mapping(o)) => merge_maps(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

impl Overrides {
    /// Applies one (checked) override on top of those already applied.
    pub fn apply(&mut self, o: &Override) -> Result<(), String> {
        match o.path.0.as_slice() {
            [Segment::Key(root), Segment::Key(name)] if root == "versions" => {
                let text = o.value.as_str().map(str::to_owned).unwrap_or_else(|| yaml_text(&o.value));
                self.versions.insert(name.clone(), text);
                Ok(())
            }
            [Segment::Key(root), rest @ ..] if root == "vars" => {
                let mut layer = Value::Mapping(std::mem::take(&mut self.vars));
                let mut walked = ValuePath(vec![Segment::Key("vars".into())]);
                let result = set_at(&mut layer, rest, &o.value, &mut walked);
                self.vars = match layer {
                    Value::Mapping(m) => m,
                    _ => Mapping::new(),
                };
                result.map_err(|e| format!("{}: {e}", o.origin))?;
                let keys =
                    rest.iter().map_while(|s| if let Segment::Key(k) = s { Some(k.clone()) } else { None }).collect();
                self.origins.push((keys, o.origin.clone()));
                Ok(())
            }
            _ => Err(format!("{}: only `versions.<name>` and `vars.<path>` can be overridden", o.origin)),
        }
    }

    /// The versions set.
    pub fn versions(&self) -> &BTreeMap<String, String> {
        &self.versions
    }

    /// Who set the key path `keys` (below `vars`), or a part of it.
    fn origin_of(&self, keys: &[String]) -> String {
        self.origins
            .iter()
            .rev()
            .find(|(p, _)| p.starts_with(keys) || keys.starts_with(p))
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| "an override".into())
    }

    /// Lays the `vars` layer over `defaults` (Helm's coalescing of user
    /// values over a chart's): maps merge; `null` removes a key `defaults`
    /// has; anything else replaces. A map meeting a non-map (either way) is
    /// an error naming the override: it cannot be applied as written.
    pub fn lay_over(&self, defaults: &mut Mapping) -> Result<(), String> {
        self.lay(defaults, &self.vars, &mut Vec::new())
    }

    fn lay(&self, defaults: &mut Mapping, layer: &Mapping, at: &mut Vec<String>) -> Result<(), String> {
        for (k, v) in layer {
            let key = k.as_str().unwrap_or_default().to_owned();
            at.push(key.clone());
            let shown = || {
                ValuePath(
                    std::iter::once("vars")
                        .chain(at.iter().map(String::as_str))
                        .map(|s| Segment::Key(s.into()))
                        .collect(),
                )
            };
            match (defaults.get_mut(k), v) {
                (Some(Value::Mapping(d)), Value::Mapping(o)) => self.lay(d, o, at)?,
                (Some(_), Value::Null) => {
                    defaults.remove(k);
                }
                (Some(Value::Mapping(_)), other) => {
                    return Err(format!(
                        "{}: `{}` is a map in the inventory; it cannot be replaced by {} (set keys below it, or remove it with null)",
                        self.origin_of(at),
                        shown(),
                        describe(other)
                    ));
                }
                (Some(d), Value::Mapping(_)) if !d.is_null() => {
                    return Err(format!(
                        "{}: `{}` is {} in the inventory, so it has no keys to set",
                        self.origin_of(at),
                        shown(),
                        describe(d)
                    ));
                }
                _ => {
                    defaults.insert(k.clone(), v.clone());
                }
            }
            at.pop();
        }
        Ok(())
    }

    /// The form kept in `target.json`: one entry per leaf of the layer
    /// (`vars.a.b` → 3, `vars.hosts` → the whole list) and per version.
    pub fn recorded(&self) -> BTreeMap<String, serde_json::Value> {
        let mut out = BTreeMap::new();
        for (name, v) in &self.versions {
            let path = ValuePath(vec![Segment::Key("versions".into()), Segment::Key(name.clone())]);
            out.insert(path.to_string(), serde_json::Value::String(v.clone()));
        }
        fn leaves(m: &Mapping, path: &mut ValuePath, out: &mut BTreeMap<String, serde_json::Value>) {
            for (k, v) in m {
                path.0.push(Segment::Key(k.as_str().unwrap_or_default().to_owned()));
                match v {
                    Value::Mapping(inner) if !inner.is_empty() => leaves(inner, path, out),
                    _ => {
                        let json = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
                        out.insert(path.to_string(), json);
                    }
                }
                path.0.pop();
            }
        }
        leaves(&self.vars, &mut ValuePath(vec![Segment::Key("vars".into())]), &mut out);
        out
    }

    /// The target-level and per-component `vars` the overrides give, each
    /// checked: the first override that cannot be applied is the error.
    pub fn check_against(&self, inventory: &Inventory, env: &Environment) -> Result<(), String> {
        component_vars(env, None, self)?;
        for c in inventory.components.iter().chain(inventory.agent.as_ref()) {
            component_vars(env, Some(c), self)?;
        }
        Ok(())
    }
}

/// Parses overrides recorded in a `target.json` (`origin` names the file).
pub fn from_recorded(recorded: &BTreeMap<String, serde_json::Value>, origin: &str) -> Result<Vec<Override>, String> {
    let mut out = Vec::new();
    for (path, value) in recorded {
        let mut sc = Scanner { chars: path.chars().chain(std::iter::once('=')).collect(), pos: 0 };
        let steps = parse_path(&mut sc)
            .ok()
            .filter(|_| sc.at_end())
            .ok_or_else(|| format!("{origin}: `sets` holds the path `{path}`, which is not a value path"))?;
        let value: Value = serde_yaml::to_value(value).map_err(|e| format!("{origin}: `sets.{path}`: {e}"))?;
        out.push(Override { path: ValuePath(steps), value, origin: format!("{origin} (sets.{path})") });
    }
    Ok(out)
}

/// The `vars` a component's templates see in environment `env`: its own
/// `vars` (defaults), the environment's `vars` over them, its
/// `overlays.<env>.vars` over both, and the run's overrides over all.
/// Without a component: the environment's `vars` and the overrides.
pub fn component_vars(
    env: &Environment,
    component: Option<&Component>,
    overrides: &Overrides,
) -> Result<Mapping, String> {
    let mut vars = match component {
        Some(c) if !c.vars.is_empty() => {
            let mut v = c.vars.clone();
            deep_merge(&mut v, &env.vars);
            v
        }
        _ => env.vars.clone(),
    };
    if let Some(o) = component.and_then(|c| c.overlays.get(&env.name)) {
        if let Some(over) = &o.vars {
            deep_merge(&mut vars, over);
        }
    }
    overrides.lay_over(&mut vars)?;
    Ok(vars)
}

/// Whether a component has values of its own in environment `env`.
pub fn has_own_vars(env: &Environment, component: &Component) -> bool {
    !component.vars.is_empty()
        || component.overlays.get(&env.name).is_some_and(|o| o.vars.as_ref().is_some_and(|v| !v.is_empty()))
}
