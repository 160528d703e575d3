//! One minijinja `Environment` per inventory, built once and shared by all
//! render threads: every manifest and partial compiled up front, helpers and
//! filters registered, every partial macro callable by its bare name.
//!
//! Partial calls: minijinja binds a macro to the template state that defined
//! it, so a bare-name call `metadata(name)` is a Rust function that evaluates
//! the defining partial with the caller's context and calls the macro there.
//! A thread-local depth counter bounds recursion across partials and a call
//! counter bounds fan-out, on top of minijinja's fuel.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use minijinja::value::{Kwargs, Rest, Value};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};

use super::access::{self, Access, Tracked};
use super::context::CONTEXT_VARS;
use super::helpers;
use super::partials::{self, MacroDef};
use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::inventory::{read_source, Inventory, Limits};

/// Partial calls allowed in one top-level render (fan-out bound).
const MAX_PARTIAL_CALLS: u32 = 100_000;

thread_local! {
    static PARTIAL_DEPTH: Cell<u32> = const { Cell::new(0) };
    static PARTIAL_CALLS: Cell<u32> = const { Cell::new(0) };
}

/// minijinja's recursion limit for a given `limits.maxPartialDepth`.
///
/// A macro that calls itself inside its own partial file resolves to its
/// local definition, not to our counted bare-name function, so only
/// minijinja's limit stops it. Each such call costs minijinja 4 plus the
/// frames open at the call site (about 6 for a call inside an `if`), so a
/// fixed limit of 100 cut self-recursion off at 15 levels whatever
/// `maxPartialDepth` said. 16 per level plus headroom keeps the documented
/// depth reachable with calls nested in up to ten `for`/`with` blocks; the
/// `stacker` feature grows the Rust stack on the heap instead of overflowing.
pub fn recursion_limit(max_partial_depth: u32) -> usize {
    16 * max_partial_depth as usize + 100
}

/// Engines made so far: each gets its own [`Engine::id`].
static ENGINES: AtomicU64 = AtomicU64::new(0);

/// The compiled templates of one project.
pub struct Engine {
    id: u64,
    env: Environment<'static>,
    /// Inline templates of the inventory (namespaces, images, overlays),
    /// compiled once: text → template name.
    inline: BTreeMap<String, String>,
    sources: BTreeMap<String, String>,
    macros: Arc<BTreeMap<String, MacroDef>>,
    limits: Limits,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("templates", &self.sources.keys().collect::<Vec<_>>()).finish()
    }
}

/// Template name of a project file: its relative path with forward slashes.
pub fn template_name(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

impl Engine {
    /// Reads and compiles every partial and manifest of `inventory`, and
    /// every inline template (namespaces, domains, images, overlays).
    /// All syntax errors and partial conflicts are reported together.
    pub fn new(inventory: &Inventory) -> Result<Engine, Diagnostics> {
        let mut diags = Diagnostics::default();
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_fuel(Some(inventory.limits.fuel));
        env.set_recursion_limit(recursion_limit(inventory.limits.max_partial_depth));
        env.set_debug(false);
        // minijinja JSON-escapes `*.yaml.j2` output by default; manifests are plain text.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // Values print as YAML writes them (`true`, not Python's `True`).
        env.set_formatter(helpers::format_output);

        let read = |path: &PathBuf, diags: &mut Diagnostics| match read_source(&inventory.root, path) {
            Ok(s) => Some(s.text),
            Err(d) => {
                diags.push(d);
                None
            }
        };
        let mut partial_sources = Vec::new();
        for p in &inventory.partials {
            if let Some(text) = read(p, &mut diags) {
                partial_sources.push((p.clone(), text));
            }
        }
        let macros = match partials::index(&partial_sources) {
            Ok(m) => m,
            Err(errs) => {
                diags.0.extend(errs);
                BTreeMap::new()
            }
        };
        let mut sources = BTreeMap::new();
        for (p, text) in partial_sources {
            sources.insert(template_name(&p), text);
        }
        for p in inventory.manifest_files() {
            if let Some(text) = read(&p, &mut diags) {
                sources.insert(template_name(&p), text);
            }
        }
        for (name, text) in &sources {
            // `{{ }}` inside a quoted scalar prints through a quoting filter
            // (`super::quoting::mark_quoted`); messages show the text as written.
            let compiled = super::quoting::mark_quoted(text).unwrap_or_else(|| text.clone());
            let added = match env.add_template_owned(name.clone(), compiled) {
                Ok(()) => Ok(()),
                // A syntax error is reported on the text as written.
                Err(e) => env.add_template_owned(name.clone(), text.clone()).and(Err(e)),
            };
            if let Err(e) = added {
                diags.push(diagnostic_from(&e, &sources, Path::new(name)));
            }
        }
        let mut inline = BTreeMap::new();
        for text in inline_templates(inventory) {
            if inline.contains_key(&text) || !(text.contains("{{") || text.contains("{%")) {
                continue;
            }
            let name = format!("<inline {}>", inline.len());
            // A broken inline template is reported with its position when it renders.
            if env.add_template_owned(name.clone(), text.clone()).is_ok() {
                inline.insert(text, name);
            }
        }
        let macros = Arc::new(macros);
        register_helpers(&mut env, inventory);
        register_partials(&mut env, &macros, inventory.limits);

        let id = ENGINES.fetch_add(1, Ordering::Relaxed);
        let engine = Engine { id, env, inline, sources, macros, limits: inventory.limits };
        if diags.has_errors() {
            diags.sort();
            return Err(diags);
        }
        Ok(engine)
    }

    /// Names of the partial macros, sorted.
    pub fn partial_names(&self) -> impl Iterator<Item = &str> {
        self.macros.keys().map(String::as_str)
    }

    /// The compiled sandbox limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// This engine's identity, unique in the process: what a cache of its
    /// renders is valid for.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The text of the manifest or partial file `path`, as compiled.
    pub fn source(&self, path: &Path) -> Option<&str> {
        self.sources.get(&template_name(path)).map(String::as_str)
    }

    /// Renders the manifest or partial file `path` with `ctx`.
    pub fn render_file(&self, path: &Path, ctx: &Value) -> Result<String, Diagnostic> {
        self.render_file_tracked(path, ctx).map(|(text, _)| text)
    }

    /// Renders `path` with `ctx`, and says which context variables the
    /// render (its partial calls included) read.
    pub fn render_file_tracked(&self, path: &Path, ctx: &Value) -> Result<(String, Access), Diagnostic> {
        let name = template_name(path);
        reset_partial_counters();
        let tmpl = self.env.get_template(&name).map_err(|e| diagnostic_from(&e, &self.sources, path))?;
        access::start();
        let text = tmpl.render(Tracked::wrap(ctx.clone())).map_err(|e| diagnostic_from(&e, &self.sources, path))?;
        Ok((text, access::finish()))
    }

    /// Renders an inline template (`namespace`, image tags, overlay strings).
    /// Errors carry minijinja's message; callers add the inventory position.
    pub fn render_inline(&self, text: &str, ctx: &Value) -> Result<String, Error> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text.to_owned());
        }
        reset_partial_counters();
        match self.inline.get(text) {
            Some(name) => self.env.get_template(name)?.render(ctx),
            None => self.env.render_str(text, ctx),
        }
    }

    /// Evaluates a `when` expression; it must yield a boolean.
    pub fn eval_bool(&self, expr: &str, ctx: &Value) -> Result<bool, Error> {
        reset_partial_counters();
        let value = self.env.compile_expression(expr)?.eval(ctx)?;
        match value.kind() {
            minijinja::value::ValueKind::Bool => Ok(value.is_true()),
            kind => Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("`when` must yield a boolean, but `{expr}` yielded {kind} `{value}`"),
            )),
        }
    }

    /// Checks that an expression compiles (for `validate`).
    pub fn check_expression(&self, expr: &str) -> Result<(), Error> {
        self.env.compile_expression(expr).map(|_| ())
    }

    /// Checks that an inline template compiles (for `validate`).
    pub fn check_inline(&self, text: &str) -> Result<(), Error> {
        self.env.template_from_str(text).map(|_| ())
    }
}

/// Every templated string of the inventory outside manifest files.
fn inline_templates(inventory: &Inventory) -> Vec<String> {
    let mut out = Vec::new();
    for e in inventory.environments.values() {
        out.push(e.namespace.clone());
        out.extend(e.domain.clone());
    }
    for i in inventory.images.values() {
        out.push(i.repository.clone());
        out.push(i.tag.clone());
    }
    for c in inventory.components.iter().chain(inventory.agent.as_ref()) {
        for o in c.overlays.values() {
            out.extend(o.templates().into_iter().map(|(_, t)| t.to_owned()));
        }
    }
    out
}

fn reset_partial_counters() {
    PARTIAL_DEPTH.with(|d| d.set(0));
    PARTIAL_CALLS.with(|c| c.set(0));
}

fn register_helpers(env: &mut Environment<'static>, inventory: &Inventory) {
    let allowed = inventory.env_allow.clone();
    env.add_function("env_or", move |name: String, default: Option<Value>| {
        helpers::env_or(&allowed, &name, default.unwrap_or(Value::from("")))
    });
    env.add_function("required", helpers::required);
    env.add_function("fail", helpers::fail);
    // Jinja's namespace(), under a name the `namespace` context variable does not hide.
    env.add_function("ns", minijinja::functions::namespace);
    env.add_filter("nindent", helpers::nindent);
    env.add_filter("quote", |v: Value| helpers::quote(&v));
    env.add_filter(super::quoting::IN_DQ, |v: Value| super::quoting::in_dq(&v));
    env.add_filter(super::quoting::IN_SQ, |v: Value| super::quoting::in_sq(&v));
    // minijinja's `tojson`, with the characters JSON keeps raw and YAML
    // reads otherwise (NEL, LS, PS, BOM, …) escaped.
    env.add_filter("tojson", |v: Value, indent: Option<Value>, kwargs: minijinja::value::Kwargs| {
        let json = minijinja::filters::tojson(&v, indent, kwargs)?;
        Ok::<_, minijinja::Error>(Value::from_safe_string(super::printing::json_for_yaml(&json.to_string())))
    });
    env.add_filter("squote", |v: Value| helpers::squote(&v));
    env.add_filter("to_yaml", helpers::to_yaml);
    env.add_filter("b64encode", helpers::b64encode);
    env.add_filter("sha256", helpers::sha256);
    env.add_filter("dns_label", helpers::dns_label);
}

fn register_partials(env: &mut Environment<'static>, macros: &Arc<BTreeMap<String, MacroDef>>, limits: Limits) {
    for (name, def) in macros.iter() {
        let name = name.clone();
        let file = template_name(&def.file);
        env.add_function(name.clone(), move |state: &State, args: Rest<Value>| {
            call_partial(state, &name, &file, &args, limits)
        });
    }
    let index = Arc::clone(macros);
    env.add_function("include", move |state: &State, name: String, args: Rest<Value>| {
        let Some(def) = index.get(&name) else {
            let known: Vec<&str> = index.keys().map(String::as_str).collect();
            let hint = match crate::diagnostic::did_you_mean(&name, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "define it as a `{% macro %}` in a partial file".into(),
            };
            return Err(Error::new(
                ErrorKind::UnknownFunction,
                format!("include(\"{name}\"): no partial macro `{name}`; {hint}"),
            ));
        };
        call_partial(state, &name, &template_name(&def.file), &args, limits)
    });
}

/// Calls partial macro `name` defined in template `file` with the caller's context.
fn call_partial(state: &State, name: &str, file: &str, args: &[Value], limits: Limits) -> Result<Value, Error> {
    let depth = PARTIAL_DEPTH.with(|d| d.get());
    if depth >= limits.max_partial_depth {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("partial `{name}` nested deeper than {} calls (runaway recursion?); raise limits.maxPartialDepth if this is intended", limits.max_partial_depth),
        ));
    }
    let calls = PARTIAL_CALLS.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    if calls > MAX_PARTIAL_CALLS {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("more than {MAX_PARTIAL_CALLS} partial calls in one template"),
        ));
    }
    // A map value built directly: a `BTreeMap` would go through serde
    // (`Value::from_serialize`) on every call.
    // Copying the caller's variables is not reading them: the partial's own
    // lookups in its (tracked) context are.
    let ctx: Value =
        access::unrecorded(|| CONTEXT_VARS.iter().filter_map(|var| Some((*var, state.lookup(var)?))).collect());
    let args = bind_caller(state, name, args)?;
    let tmpl = state.env().get_template(file)?;
    let captured = tmpl.render_captured(Tracked::wrap(ctx)).map_err(|e| called_from(e, name))?;
    let module = captured.state();
    let Some(mac) = module.lookup(name) else {
        return Err(Error::new(
            ErrorKind::UnknownFunction,
            format!("partial `{name}` is not a top-level macro of {file}"),
        ));
    };
    PARTIAL_DEPTH.with(|d| d.set(depth + 1));
    let result = mac.call(module, &args);
    PARTIAL_DEPTH.with(|d| d.set(depth));
    result.map_err(|e| called_from(e, name))
}

/// `{% call partial() %}body{% endcall %}`: minijinja passes the body as a
/// `caller` macro bound to the calling template's state, which the partial
/// (evaluated in a state of its own) cannot call. So the body is rendered
/// here, in the caller's state, and the partial gets a `caller()` that
/// returns it. A body taking arguments (`{% call(item) … %}`) cannot be
/// rendered ahead and is refused.
fn bind_caller(state: &State, name: &str, args: &[Value]) -> Result<Vec<Value>, Error> {
    let Some(kwargs) = args.last().and_then(|v| Kwargs::try_from(v.clone()).ok()) else { return Ok(args.to_vec()) };
    if !kwargs.has("caller") {
        return Ok(args.to_vec());
    }
    let caller: Value = kwargs.get("caller")?;
    let takes_args = caller.get_attr("arguments").ok().and_then(|a| a.len()).unwrap_or(0) > 0;
    if takes_args {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("`{{% call(…) {name}(…) %}}`: a call block passing arguments to caller() is not supported for partial macros; pass the values to `{name}` as arguments, or loop in the calling template"),
        ));
    }
    let body = caller.call(state, &[])?;
    let body = body.as_str().map(str::to_owned).unwrap_or_else(|| body.to_string());
    let partial = name.to_owned();
    let bound = Value::from_function(move |args: Rest<Value>| -> Result<Value, Error> {
        if !args.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("partial `{partial}` calls caller() with arguments, which is not supported for partial macros; pass the values to `{partial}` as arguments instead"),
            ));
        }
        Ok(Value::from(body.clone()))
    });
    let rebuilt: Kwargs = kwargs
        .args()
        .map(|k| {
            let v = if k == "caller" { bound.clone() } else { kwargs.get::<Value>(k).unwrap_or_default() };
            (k.to_owned(), v)
        })
        .collect();
    let mut out = args[..args.len() - 1].to_vec();
    out.push(Value::from(rebuilt));
    Ok(out)
}

/// Wraps an error raised inside partial `name`: minijinja gives the new
/// error the caller's `file:line`, and [`diagnostic_from`] reports the
/// innermost one (the fault) with the chain of callers.
fn called_from(err: Error, name: &str) -> Error {
    Error::new(err.kind(), format!("in partial `{name}`")).with_source(err)
}

/// The error chain: the outermost (the top-level template) first, the
/// fault last.
fn error_chain(err: &Error) -> Vec<&Error> {
    let mut chain = vec![err];
    let mut cur = err;
    while let Some(inner) = std::error::Error::source(cur).and_then(|s| s.downcast_ref::<Error>()) {
        chain.push(inner);
        cur = inner;
    }
    chain
}

/// minijinja's message without its `(in <string>:1)` suffix: what an
/// error of an inline template (a namespace, an overlay string) says.
pub fn detail(err: &Error) -> String {
    err.detail().map(str::to_owned).unwrap_or_else(|| err.kind().to_string())
}

/// Turns a minijinja error into a diagnostic at the template's `file:line:col`
/// with the offending source line.
pub fn diagnostic_from(err: &Error, sources: &BTreeMap<String, String>, fallback: &Path) -> Diagnostic {
    let chain = error_chain(err);
    let callers: Vec<String> =
        chain[..chain.len() - 1].iter().rev().filter_map(|e| Some(format!("{}:{}", e.name()?, e.line()?))).collect();
    let err = *chain.last().expect("never empty");
    let file = err.name().map(PathBuf::from).unwrap_or_else(|| fallback.to_path_buf());
    let source = err.name().and_then(|n| sources.get(n)).map(String::as_str).or(err.template_source());
    let location = err.line().map(|line| {
        let col = match (err.range(), source) {
            (Some(range), Some(src)) if range.start <= src.len() => {
                let before = &src[..range.start];
                before.chars().rev().take_while(|c| *c != '\n').count() + 1
            }
            _ => 1,
        };
        Location { line, col }
    });
    let mut message = match (err.kind(), err.detail()) {
        // fail(), required() and env_or() speak for themselves.
        (ErrorKind::InvalidOperation, Some(detail)) => detail.to_owned(),
        (kind, Some(detail)) => format!("{kind}: {detail}"),
        (kind, None) => kind.to_string(),
    };
    if !callers.is_empty() {
        message = format!("{message} (called from {})", callers.join(", from "));
    }
    let not_callable = err.kind() == ErrorKind::InvalidOperation
        && err.detail().is_some_and(|d| d.contains("is not callable"))
        && err.range().zip(source).is_some_and(|(r, src)| {
            src.get(r.start.saturating_sub(12)..(r.end + 1).min(src.len())).is_some_and(|t| t.contains("namespace"))
        });
    if not_callable {
        message = format!("{message}: `namespace` is the target's namespace (a string) here, not Jinja's namespace(); use `ns(…)` to build values in a loop");
    }
    let help = match err.kind() {
        ErrorKind::UndefinedError => {
            "a variable or attribute is not defined; test it with `is defined`, or give a default with `| default(...)`"
        }
        ErrorKind::SyntaxError => "fix the template syntax (minijinja follows Jinja2)",
        ErrorKind::UnknownFunction => "define the partial macro, or check its spelling",
        ErrorKind::OutOfFuel => "the template ran too long (an endless loop?); raise limits.fuel if it is legitimate",
        ErrorKind::InvalidOperation if err.detail().is_some_and(|d| d.contains("recursion")) => {
            "runaway recursion between templates or partials; raise limits.maxPartialDepth if it is legitimate"
        }
        _ => "see docs/templates.md",
    };
    let mut d = Diagnostic::error(file, location, message).with_help(help);
    if let Some(src) = source {
        d = d.with_source(src);
    }
    d
}
