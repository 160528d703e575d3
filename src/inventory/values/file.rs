//! `--values FILE`: a YAML file of `versions:` and `vars:`, read into
//! [`Override`]s with positioned errors.

use std::path::Path;

use serde_yaml::Value;

use super::{yaml_text, Override, ValuePath};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::inventory::load;
use crate::inventory::names::value_problem;
use crate::inventory::yaml::{Segment, YamlPath};

/// `file` relative to `project`, when its directory (links followed) lies
/// inside the project directory; else an error naming `file` (unread).
fn project_relative(file: &Path, project: &Path) -> Result<std::path::PathBuf, Diagnostic> {
    let name = file.file_name().map(Path::new).unwrap_or(file);
    let real_dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).canonicalize();
    match (real_dir, project.canonicalize()) {
        (Ok(dir), Ok(project)) => match dir.strip_prefix(&project) {
            Ok(dir) => Ok(dir.join(name)),
            Err(_) => Err(Diagnostic::error(
                file,
                None,
                "the values file leads outside the project directory (the directory of services.yaml); it is not read",
            )),
        },
        (Err(e), _) | (_, Err(e)) => Err(Diagnostic::error(file, None, format!("cannot read file: {e}"))),
    }
}

/// Reads a `--values FILE`: YAML with `versions:` and/or `vars:`. Errors
/// are positioned in the file. The file must be a regular file inside
/// `project` (the directory of services.yaml), links followed: one that
/// leads elsewhere is refused unread.
pub fn read_values_file(file: &Path, project: &Path) -> Result<Vec<Override>, Vec<Diagnostic>> {
    let origin = format!("--values {}", file.display());
    let help = "pass a YAML file inside the project directory to --values";
    let rel = project_relative(file, project).map_err(|d| vec![d.with_help(help)])?;
    let source = load::read_source(project, &rel)
        .map_err(|d| vec![Diagnostic { file: file.to_path_buf(), ..d }.with_help(help)])?;
    let source = load::SourceFile { path: file.to_path_buf(), text: source.text };
    let doc = load::parse_document(&source).map_err(|d| vec![d])?;
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
                        format!(
                            "`{}` is not a section of a values file (it holds `versions:` and `vars:`)",
                            yaml_text(k)
                        ),
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
