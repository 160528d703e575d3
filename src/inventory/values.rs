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
use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::model::{Component, Environment, Inventory};
use super::names::value_problem;
use super::resolve::deep_merge;
use super::yaml::{Segment, YamlPath};
use crate::diagnostic::{did_you_mean, Diagnostic};

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

/// A scanner over one flag's text, with Helm's `\` escape.
struct Scanner {
    chars: Vec<char>,
    pos: usize,
}

impl Scanner {
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Text up to the first unescaped `stop` character, which is consumed
    /// and returned (`None` at the end of the text).
    fn until(&mut self, stop: &[char]) -> Result<(String, Option<char>), String> {
        let mut text = String::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            if stop.contains(&c) {
                return Ok((text, Some(c)));
            }
            if c == '\\' {
                match self.peek() {
                    Some(next) => {
                        self.pos += 1;
                        text.push(next);
                    }
                    None => return Err("it ends with a lone `\\`; write `\\\\` for a backslash".into()),
                }
                continue;
            }
            text.push(c);
        }
        Ok((text, None))
    }
}

/// Helm's typing of a `--set` value: `true`/`false` (any case) are bools,
/// `null` is null, a decimal integer not starting with `0` (or `0` itself)
/// is an integer; anything else (`1.5`, `007`, `1e3`, ``) is text.
/// `--set-string` keeps every value as text.
pub fn typed(text: &str, strings: bool) -> Value {
    if strings {
        return Value::String(text.to_owned());
    }
    if text.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if text.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    if text.eq_ignore_ascii_case("null") {
        return Value::Null;
    }
    if text == "0" {
        return Value::from(0);
    }
    if !text.is_empty() && !text.starts_with('0') {
        if let Ok(n) = text.parse::<i64>() {
            return Value::from(n);
        }
    }
    Value::String(text.to_owned())
}

/// Parses the path of one assignment, up to and including its `=`.
fn parse_path(sc: &mut Scanner) -> Result<Vec<Segment>, String> {
    let mut steps = Vec::new();
    'keys: loop {
        let (key, last) = sc.until(&['=', '[', ',', '.'])?;
        match last {
            None | Some(',') if key.is_empty() && steps.is_empty() => {
                return Err("expected PATH=VALUE".into());
            }
            None | Some(',') => {
                let mut p = steps.clone();
                p.push(Segment::Key(key));
                return Err(format!("`{}` has no value; expected PATH=VALUE", ValuePath(p)));
            }
            _ => {}
        }
        if key.is_empty() {
            return Err("a key in the path is empty (`..`, a leading `.` or `[` without a name)".into());
        }
        steps.push(Segment::Key(key));
        if steps.len() > MAX_STEPS {
            return Err(format!("the path is deeper than {MAX_STEPS} steps"));
        }
        match last {
            Some('.') => continue,
            Some('=') => return Ok(steps),
            _ => {}
        }
        // `[` opened: one or more indices.
        loop {
            let (text, last) = sc.until(&[']'])?;
            if last.is_none() {
                return Err(format!("`[{text}` is not closed with `]`"));
            }
            let index = match text.trim().parse::<i64>() {
                Ok(i) if i < 0 => return Err(format!("negative index `[{i}]`; indices count from 0")),
                Ok(i) if i as u64 > MAX_INDEX as u64 => {
                    return Err(format!("index `[{i}]` is larger than {MAX_INDEX}"));
                }
                Ok(i) => i as usize,
                Err(_) => return Err(format!("`[{text}]` is not a list index; write a number such as `[0]`")),
            };
            steps.push(Segment::Index(index));
            let (extra, last) = sc.until(&['[', '.', '='])?;
            if !extra.is_empty() {
                return Err(format!("unexpected `{extra}` after `[{index}]`"));
            }
            match last {
                Some('[') => continue,
                Some('.') => continue 'keys,
                Some('=') => return Ok(steps),
                _ => return Err(format!("`{}` has no value; expected PATH=VALUE", ValuePath(steps))),
            }
        }
    }
}

/// Parses the value of one assignment: a `{a,b}` list or text up to an
/// unescaped `,`.
fn parse_value(sc: &mut Scanner, strings: bool) -> Result<Value, String> {
    if sc.peek() != Some('{') {
        let (text, _) = sc.until(&[','])?;
        return Ok(typed(&text, strings));
    }
    sc.pos += 1;
    let mut items = Vec::new();
    loop {
        let (text, last) = sc.until(&[',', '}'])?;
        match last {
            None => return Err("a list must end with `}`".into()),
            Some('}') => {
                // `{}` is an empty list (Helm 3 reads it as a list of one empty string; see docs/cli.md).
                if !(text.is_empty() && items.is_empty()) {
                    items.push(typed(&text, strings));
                }
                if sc.peek() == Some(',') {
                    sc.pos += 1;
                }
                return Ok(Value::Sequence(items));
            }
            _ => items.push(typed(&text, strings)),
        }
    }
}

/// Parses one `--set` (or, with `strings`, `--set-string`) argument with
/// Helm's grammar: `PATH=VALUE[,PATH=VALUE…]`, keys separated by `.`, `\`
/// escaping the next character (`iam\.gke\.io/role`, `a\,b`), `[n]` list
/// indices, `{a,b}` lists. `flag` names the flag in messages.
pub fn parse_set(flag: &str, text: &str, strings: bool) -> Result<Vec<Override>, String> {
    let fail = |e: String| format!("{flag} {text}: {e}, e.g. {flag} versions.users=1.5.0 or {flag} vars.hosts[0]=a");
    let mut sc = Scanner { chars: text.chars().collect(), pos: 0 };
    let mut out = Vec::new();
    loop {
        let start = sc.pos;
        let path = ValuePath(parse_path(&mut sc).map_err(fail)?);
        let versions = matches!(path.0.first(), Some(Segment::Key(k)) if k == "versions");
        // A version is text as written, whatever it looks like.
        let value = parse_value(&mut sc, strings || versions).map_err(fail)?;
        let written: String = sc.chars[start..sc.pos].iter().collect();
        let origin = format!("{flag} {}", written.trim_end_matches(','));
        out.push(Override { path, value, origin });
        if sc.at_end() {
            return Ok(out);
        }
    }
}

/// Reads a `--values FILE`: YAML with `versions:` and/or `vars:`. Errors
/// are positioned in the file.
pub fn read_values_file(file: &Path) -> Result<Vec<Override>, Vec<Diagnostic>> {
    let origin = format!("--values {}", file.display());
    let root = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = Path::new(file.file_name().unwrap_or(file.as_os_str()));
    let source = super::load::read_source(root, name).map_err(|d| {
        vec![Diagnostic { file: file.to_path_buf(), ..d }.with_help("pass an existing YAML file to --values")]
    })?;
    let source = super::load::SourceFile { path: file.to_path_buf(), text: source.text };
    let doc = super::load::parse_document(&source).map_err(|d| vec![d])?;
    let at = |path: &YamlPath, message: String, help: &str| {
        Diagnostic::error(&source.path, Some(doc.value_location(path)), message)
            .with_source(&source.text)
            .with_help(help.to_owned())
    };
    let top = YamlPath::default();
    let map = match &doc.value {
        Value::Null => return Ok(Vec::new()),
        Value::Mapping(m) => m,
        _ => {
            return Err(vec![at(
                &top,
                "a values file is a mapping with `versions:` and/or `vars:`".into(),
                "write e.g. `vars: {replicas: 3}`",
            )])
        }
    };
    let mut diags = load::typed_strings(&source, &doc, &["versions.*"]);
    let mut out = Vec::new();
    for (k, v) in map {
        let key = k.as_str().unwrap_or_default();
        match key {
            "vars" | "versions" => {}
            _ => {
                let help = match did_you_mean(key, ["vars", "versions"]) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "a values file holds `versions:` and `vars:` only".into(),
                };
                diags.push(
                    Diagnostic::error(
                        &source.path,
                        Some(doc.key_location(&top.key(key))),
                        format!("`{}` is not a section of a values file (it holds `versions:` and `vars:`)", yaml_text(k)),
                    )
                    .with_source(&source.text)
                    .with_help(help),
                );
                continue;
            }
        }
        let path = top.key(key);
        match v {
            Value::Null => continue,
            Value::Mapping(_) => {}
            _ => {
                diags.push(at(&path, format!("`{key}` must be a mapping"), "write e.g. `vars: {replicas: 3}`"));
                continue;
            }
        }
        check_file_value(v, &path, &mut |p, m| diags.push(at(p, m, "values are one line of text with string keys")));
        if key == "versions" {
            for (name, version) in v.as_mapping().into_iter().flatten() {
                let name = name.as_str().unwrap_or_default().to_owned();
                let value = match version {
                    Value::String(s) => Value::String(s.clone()),
                    Value::Number(n) => Value::String(n.to_string()),
                    Value::Bool(b) => Value::String(b.to_string()),
                    _ => {
                        diags.push(at(
                            &path.key(&name),
                            format!("`versions.{name}` must be a string"),
                            "write the version as text, e.g. \"1.5.0\"",
                        ));
                        continue;
                    }
                };
                let line = doc.value_location(&path.key(&name)).line;
                out.push(Override {
                    path: ValuePath(vec![Segment::Key("versions".into()), Segment::Key(name)]),
                    value,
                    origin: format!("{origin} (line {line})"),
                });
            }
        } else {
            let line = doc.value_location(&path).line;
            out.push(Override {
                path: ValuePath(vec![Segment::Key("vars".into())]),
                value: v.clone(),
                origin: format!("{origin} (line {line})"),
            });
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

use super::load;

fn yaml_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other).unwrap_or_default().trim_end().to_owned(),
    }
}

/// Reports non-string keys and strings that are not one line of text.
fn check_file_value(v: &Value, path: &YamlPath, report: &mut dyn FnMut(&YamlPath, String)) {
    match v {
        Value::String(s) => {
            if let Some(problem) = value_problem(s) {
                report(path, format!("`{path}`: the value {problem}"));
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                check_file_value(item, &path.index(i), report);
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m {
                let Some(key) = k.as_str() else {
                    report(path, format!("`{path}` has the key `{}`, which is not a string; quote it", yaml_text(k)));
                    continue;
                };
                if let Some(problem) = value_problem(key) {
                    report(path, format!("a key in `{path}` {problem}"));
                    continue;
                }
                check_file_value(item, &path.key(key), report);
            }
        }
        Value::Tagged(t) => check_file_value(&t.value, path, report),
        _ => {}
    }
}

/// Why `v` (from `--set` or a `target.json`) is not data: a string with a
/// line break or a control character, in a value or a key.
fn data_problem(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => value_problem(s),
        Value::Sequence(items) => items.iter().find_map(data_problem),
        Value::Mapping(m) => m.iter().find_map(|(k, v)| match k {
            Value::String(k) => value_problem(k).or_else(|| data_problem(v)),
            _ => Some("has a key that is not a string".into()),
        }),
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

    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.vars.is_empty()
    }

    /// The versions set.
    pub fn versions(&self) -> &BTreeMap<String, String> {
        &self.versions
    }

    /// The `vars` layer.
    pub fn vars(&self) -> &Mapping {
        &self.vars
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
            let shown = || ValuePath(std::iter::once("vars").chain(at.iter().map(String::as_str)).map(|s| Segment::Key(s.into())).collect());
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
pub fn component_vars(env: &Environment, component: Option<&Component>, overrides: &Overrides) -> Result<Mapping, String> {
    let mut vars = match component {
        Some(c) if !c.vars.is_empty() => {
            let mut v = c.vars.clone();
            deep_merge(&mut v, &env.vars);
            v
        }
        _ => env.vars.clone(),
    };
    if let Some(o) = component.and_then(|c| c.overlays.get(&env.name)) {
        deep_merge(&mut vars, &o.vars);
    }
    overrides.lay_over(&mut vars)?;
    Ok(vars)
}

/// Whether a component has values of its own in environment `env`.
pub fn has_own_vars(env: &Environment, component: &Component) -> bool {
    !component.vars.is_empty() || component.overlays.get(&env.name).is_some_and(|o| !o.vars.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Override {
        let mut v = parse_set("--set", text, false).unwrap();
        assert_eq!(v.len(), 1, "{text}");
        v.remove(0)
    }

    fn keys(path: &ValuePath) -> Vec<String> {
        path.0
            .iter()
            .map(|s| match s {
                Segment::Key(k) => k.clone(),
                Segment::Index(i) => format!("[{i}]"),
            })
            .collect()
    }

    #[test]
    fn escaped_dots_stay_in_one_key() {
        let o = one(r"vars.sa.annotations.iam\.gke\.io/gcp-service-account=x@p.iam");
        assert_eq!(keys(&o.path), ["vars", "sa", "annotations", "iam.gke.io/gcp-service-account"]);
        assert_eq!(o.value, Value::from("x@p.iam"));
        assert_eq!(o.path.to_string(), r"vars.sa.annotations.iam\.gke\.io/gcp-service-account");
    }

    #[test]
    fn values_are_typed_as_helm_types_them() {
        for (text, want) in [
            ("true", Value::Bool(true)),
            ("FALSE", Value::Bool(false)),
            ("null", Value::Null),
            ("0", Value::from(0)),
            ("42", Value::from(42)),
            ("-7", Value::from(-7)),
            ("007", Value::from("007")),
            ("1.5", Value::from("1.5")),
            ("1e3", Value::from("1e3")),
            ("", Value::from("")),
            ("yes", Value::from("yes")),
        ] {
            assert_eq!(typed(text, false), want, "{text}");
        }
        assert_eq!(typed("true", true), Value::from("true"));
        assert_eq!(parse_set("--set-string", "vars.a=007,vars.b=true", true).unwrap()[1].value, Value::from("true"));
    }

    #[test]
    fn commas_lists_and_escapes() {
        let v = parse_set("--set", r"vars.a=1,vars.b={x,2,true},vars.c=a\,b", false).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].value, Value::from(1));
        assert_eq!(v[1].value, Value::Sequence(vec![Value::from("x"), Value::from(2), Value::Bool(true)]));
        assert_eq!(v[2].value, Value::from("a,b"));
        assert_eq!(v[1].origin, "--set vars.b={x,2,true}");
        assert_eq!(one("vars.e={}").value, Value::Sequence(vec![]));
        assert_eq!(one("vars.a==b").value, Value::from("=b"));
    }

    #[test]
    fn indices_parse_and_bad_syntax_is_an_error() {
        assert_eq!(keys(&one("vars.a[1].b=y").path), ["vars", "a", "[1]", "b"]);
        assert_eq!(keys(&one("vars.m[0][2]=y").path), ["vars", "m", "[0]", "[2]"]);
        for bad in [
            "vars.a",
            "vars.a[0]",
            "vars.a[x]=1",
            "vars.a[-1]=1",
            "vars.a[99999999]=1",
            "vars.a[0",
            "vars.a[0]b=1",
            "vars..a=1",
            "=1",
            "vars.a={x,y",
            "vars.a=1,b",
            "vars.a=x\\",
        ] {
            let e = parse_set("--set", bad, false);
            assert!(e.is_err(), "{bad} accepted: {e:?}");
            assert!(e.unwrap_err().starts_with(&format!("--set {bad}: ")), "{bad}");
        }
    }

    fn layer(sets: &[&str]) -> Result<Overrides, String> {
        let mut o = Overrides::default();
        for s in sets {
            for one in parse_set("--set", s, false)? {
                o.apply(&one)?;
            }
        }
        Ok(o)
    }

    fn yaml(text: &str) -> Mapping {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn indices_extend_lists_with_null_and_lists_replace_the_defaults() {
        let o = layer(&["vars.hosts[2]=c", "vars.hosts[0]=a", "vars.rules[0].port=80"]).unwrap();
        let mut d = yaml("hosts: [x, y, z, w]\nrules: [{port: 1, name: n}]\nkeep: 1\n");
        o.lay_over(&mut d).unwrap();
        assert_eq!(d, yaml("hosts: [a, null, c]\nrules: [{port: 80}]\nkeep: 1\n"));
    }

    #[test]
    fn maps_merge_null_removes_and_conflicts_name_the_flag() {
        let o = layer(&["vars.res.cpu=2", "vars.gone=null", "vars.extra=null"]).unwrap();
        let mut d = yaml("res: {cpu: 1, mem: 2}\ngone: 5\n");
        o.lay_over(&mut d).unwrap();
        assert_eq!(d, yaml("res: {cpu: 2, mem: 2}\nextra: null\n"));

        let e = layer(&["vars.replicas.x=1"]).unwrap().lay_over(&mut yaml("replicas: 3")).unwrap_err();
        assert!(e.starts_with("--set vars.replicas.x=1: `vars.replicas` is the number `3`"), "{e}");
        let e = layer(&["vars.sa[0]=1"]).unwrap().lay_over(&mut yaml("sa: {a: 1}")).unwrap_err();
        assert!(e.starts_with("--set vars.sa[0]=1: `vars.sa` is a map"), "{e}");
        let e = layer(&["vars.a=1", "vars.a.b=2"]).unwrap_err();
        assert!(e.starts_with("--set vars.a.b=2: `vars.a` is the number `1`, so it has no key `b`"), "{e}");
        let e = layer(&["vars.a.b=1", "vars.a[0]=2"]).unwrap_err();
        assert!(e.contains("`vars.a` is a map, so it cannot be indexed with `[0]`"), "{e}");
    }

    #[test]
    fn the_recorded_form_reads_back_to_the_same_layer() {
        let o = layer(&[r"vars.sa.annotations.iam\.gke\.io/x=a", "vars.hosts={a,b}", "vars.n=3", "vars.e=null"]).unwrap();
        let recorded = o.recorded();
        assert_eq!(recorded[r"vars.sa.annotations.iam\.gke\.io/x"], serde_json::json!("a"));
        assert_eq!(recorded["vars.hosts"], serde_json::json!(["a", "b"]));
        assert_eq!(recorded["vars.n"], serde_json::json!(3));
        let mut back = Overrides::default();
        for one in from_recorded(&recorded, "target.json").unwrap() {
            back.apply(&one).unwrap();
        }
        assert_eq!(back.vars, o.vars);
        assert!(from_recorded(&BTreeMap::from([("vars.a[".into(), serde_json::json!(1))]), "t").is_err());
    }
}
