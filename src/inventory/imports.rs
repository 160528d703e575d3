//! `imports:` — services.yaml split into fragment files.
//!
//! Each file may list globs of fragments, relative to itself; matches are
//! sorted, a glob matching nothing is an error, and so is a cycle (the chain
//! is printed). A file imported along two ways is read once. Fragments hold
//! any top-level section but `apiVersion`, `kind` and `project`; they merge
//! into one document: maps deep-merge, the `infrastructure` and `services`
//! lists concatenate (in import order, after the importing file's), and a
//! value defined in two files is an error naming both. Every path of the
//! merged document remembers the file that wrote it, so later errors keep
//! the fragment's own `file:line`.

use std::collections::BTreeMap;
use std::path::{Component as PathPart, Path, PathBuf};

use globset::Glob;
use serde_yaml::Value;

use super::load::{self, SourceFile};
use super::yaml::{Document, Segment, YamlPath};
use crate::diagnostic::Diagnostic;

/// One parsed file of the inventory.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The file.
    pub source: SourceFile,
    /// Its document.
    pub doc: Document,
}

/// The inventory's files merged into one document.
#[derive(Debug, Clone)]
pub struct Merged {
    /// services.yaml first, then every fragment in import order.
    pub files: Vec<Parsed>,
    /// The merged document (positions of the file that wrote each path).
    pub doc: Document,
    /// Index into `files` of the file that wrote a path (absent: services.yaml).
    pub origins: BTreeMap<YamlPath, usize>,
}

/// Sections a fragment may not hold.
pub const ROOT_ONLY: [&str; 3] = ["apiVersion", "kind", "project"];
/// Lists that concatenate.
const LISTS: [&str; 2] = ["infrastructure", "services"];

/// Reads every fragment `main` imports (transitively) and merges them.
pub fn load_all(root: &Path, main: Parsed, walk: &dyn Fn() -> Vec<PathBuf>) -> Result<Merged, Vec<Diagnostic>> {
    let mut files = vec![main];
    let mut diags = Vec::new();
    let mut stack = vec![files[0].source.path.clone()];
    let first: std::collections::BTreeSet<PathBuf> = stack.iter().cloned().collect();
    let index = ProjectIndex {
        walk,
        sorted: std::cell::OnceCell::new(),
        on_stack: std::cell::RefCell::new(first.clone()),
        seen: std::cell::RefCell::new(first),
    };
    import(root, &mut files, 0, &mut stack, &index, &mut diags);
    if !diags.is_empty() {
        return Err(diags);
    }
    merge(files)
}

fn error_at(file: &Parsed, path: &YamlPath, message: String, help: &str) -> Diagnostic {
    Diagnostic::error(&file.source.path, Some(file.doc.value_location(path)), message)
        .with_source(&file.source.text)
        .with_help(help.to_owned())
}

/// The project's files for glob imports: walked once, on the first glob,
/// and kept sorted as text, so each glob looks only at the files that
/// start with its literal prefix (imports stay linear in their number).
struct ProjectIndex<'w> {
    walk: &'w dyn Fn() -> Vec<PathBuf>,
    sorted: std::cell::OnceCell<Vec<(String, PathBuf)>>,
    /// The files of the import chain being read (cycle check), as a set.
    on_stack: std::cell::RefCell<std::collections::BTreeSet<PathBuf>>,
    /// Every file read so far.
    seen: std::cell::RefCell<std::collections::BTreeSet<PathBuf>>,
}

impl ProjectIndex<'_> {
    /// The files `glob` (a pattern relative to the root) matches.
    fn matches(&self, rel: &str, glob: &globset::GlobMatcher) -> Vec<PathBuf> {
        let sorted = self.sorted.get_or_init(|| {
            let mut v: Vec<(String, PathBuf)> =
                (self.walk)().into_iter().map(|p| (p.to_string_lossy().replace('\\', "/"), p)).collect();
            v.sort();
            v
        });
        let literal = &rel[..rel.find(['*', '?', '[', '{', '\\']).unwrap_or(rel.len())];
        let start = sorted.partition_point(|(text, _)| text.as_str() < literal);
        sorted[start..]
            .iter()
            .take_while(|(text, _)| text.starts_with(literal))
            .filter(|(_, path)| glob.is_match(path))
            .map(|(_, path)| path.clone())
            .collect()
    }
}

/// `dir/pattern` with `.` and `..` resolved, or `None` when it leaves the root.
fn join_inside(dir: &Path, pattern: &str) -> Option<PathBuf> {
    if pattern.is_empty() || Path::new(pattern).is_absolute() || pattern.starts_with(['/', '\\']) {
        return None;
    }
    let mut out = PathBuf::new();
    for part in dir.join(pattern).components() {
        match part {
            PathPart::Normal(p) => out.push(p),
            PathPart::CurDir => {}
            PathPart::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            PathPart::RootDir | PathPart::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn import(
    root: &Path,
    files: &mut Vec<Parsed>,
    idx: usize,
    stack: &mut Vec<PathBuf>,
    index: &ProjectIndex<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    let top = YamlPath::default().key("imports");
    let entries = match files[idx].doc.value.get("imports") {
        None | Some(Value::Null) => return,
        Some(Value::Sequence(s)) => s.clone(),
        Some(_) => {
            diags.push(error_at(
                &files[idx],
                &top,
                "`imports` must be a list of globs".into(),
                "write e.g. `imports: [\"services/*.yaml\"]`",
            ));
            return;
        }
    };
    let dir = files[idx].source.path.parent().map(Path::to_path_buf).unwrap_or_default();
    for (i, entry) in entries.iter().enumerate() {
        let at = top.index(i);
        let Some(pattern) = entry.as_str() else {
            diags.push(error_at(&files[idx], &at, "an import is a path or a glob".into(), "quote it"));
            continue;
        };
        let Some(joined) = join_inside(&dir, pattern) else {
            diags.push(error_at(
                &files[idx],
                &at,
                format!("import `{pattern}` leaves the project directory"),
                "import files inside the project, relative to the importing file",
            ));
            continue;
        };
        let rel = joined.to_string_lossy().replace('\\', "/");
        let mut matches: Vec<PathBuf> = if pattern.contains(['*', '?', '[', '{']) {
            match Glob::new(&rel) {
                Ok(g) => index.matches(&rel, &g.compile_matcher()),
                Err(e) => {
                    diags.push(error_at(
                        &files[idx],
                        &at,
                        format!("invalid glob `{pattern}`: {}", e.kind()),
                        "fix the glob syntax",
                    ));
                    continue;
                }
            }
        } else if root.join(&joined).symlink_metadata().is_ok() {
            vec![joined.clone()]
        } else {
            Vec::new()
        };
        matches.sort();
        if matches.is_empty() {
            diags.push(error_at(
                &files[idx],
                &at,
                format!("import `{pattern}` matches no file (looked for `{rel}`)"),
                "fix the path (relative to the importing file) or add the file",
            ));
            continue;
        }
        for m in matches {
            match root.join(&m).canonicalize() {
                Ok(real) if real.starts_with(root) && real.is_file() => {}
                Ok(real) if real.starts_with(root) => {
                    diags.push(error_at(
                        &files[idx],
                        &at,
                        format!("import `{}` is not a file", m.display()),
                        "import YAML files",
                    ));
                    continue;
                }
                _ => {
                    diags.push(error_at(
                        &files[idx],
                        &at,
                        format!("import `{}` is a symlink that leads outside the project directory", m.display()),
                        "copy the file into the project instead of linking to it",
                    ));
                    continue;
                }
            }
            if index.on_stack.borrow().contains(&m) {
                let mut chain: Vec<String> = stack.iter().map(|p| p.display().to_string()).collect();
                chain.push(m.display().to_string());
                diags.push(error_at(
                    &files[idx],
                    &at,
                    format!("import cycle: {}", chain.join(" -> ")),
                    "break the cycle: a file must not import itself, directly or through others",
                ));
                continue;
            }
            if index.seen.borrow().contains(&m) {
                continue;
            }
            let parsed = load::read_source(root, &m).and_then(|source| {
                let doc = load::parse_document(&source)?;
                Ok(Parsed { source, doc })
            });
            match parsed {
                Ok(p) => {
                    files.push(p);
                    let new = files.len() - 1;
                    index.seen.borrow_mut().insert(m.clone());
                    index.on_stack.borrow_mut().insert(m.clone());
                    stack.push(m);
                    import(root, files, new, stack, index, diags);
                    if let Some(done) = stack.pop() {
                        index.on_stack.borrow_mut().remove(&done);
                    }
                }
                Err(d) => diags.push(d),
            }
        }
    }
}

/// A path with its first index (below a concatenated list) moved by `offset`.
fn shifted(path: &YamlPath, offset: usize) -> YamlPath {
    let mut p = path.clone();
    if let (Some(Segment::Key(k)), Some(Segment::Index(i))) = (p.0.first(), p.0.get(1)) {
        if LISTS.contains(&k.as_str()) {
            p.0[1] = Segment::Index(i + offset);
        }
    }
    p
}

fn merge(files: Vec<Parsed>) -> Result<Merged, Vec<Diagnostic>> {
    let mut doc = files[0].doc.clone();
    let mut origins = BTreeMap::new();
    let mut diags = Vec::new();
    for (fi, f) in files.iter().enumerate().skip(1) {
        let map = match &f.doc.value {
            Value::Null => continue,
            Value::Mapping(m) => m,
            _ => {
                diags.push(error_at(
                    f,
                    &YamlPath::default(),
                    "a fragment is a mapping of sections".into(),
                    "write e.g. `services: [...]`",
                ));
                continue;
            }
        };
        let Value::Mapping(base) = &mut doc.value else { break };
        let mut offsets: BTreeMap<String, usize> = BTreeMap::new();
        let mut conflicts = Vec::new();
        for (k, v) in map {
            let key = k.as_str().unwrap_or_default().to_owned();
            let path = YamlPath::default().key(&key);
            if key == "imports" {
                continue;
            }
            if ROOT_ONLY.contains(&key.as_str()) {
                diags.push(
                    Diagnostic::error(
                        &f.source.path,
                        Some(f.doc.key_location(&path)),
                        format!("`{key}` belongs to {}, not to a fragment", files[0].source.path.display()),
                    )
                    .with_source(&f.source.text)
                    .with_help("remove it here"),
                );
                continue;
            }
            if LISTS.contains(&key.as_str()) {
                let list = base.entry(k.clone()).or_insert_with(|| Value::Sequence(Vec::new()));
                if list.is_null() {
                    *list = Value::Sequence(Vec::new());
                }
                if let (Value::Sequence(l), Value::Sequence(items)) = (list, v) {
                    offsets.insert(key.clone(), l.len());
                    l.extend(items.iter().cloned());
                }
                continue;
            }
            match base.get_mut(k) {
                Some(existing) => merge_value(existing, v, &path, &mut conflicts),
                None => {
                    base.insert(k.clone(), v.clone());
                }
            }
        }
        for c in conflicts {
            let first = file_of(&files, &doc.spans, &origins, &c);
            let line = doc.value_location(&c).line;
            diags.push(
                Diagnostic::error(
                    &f.source.path,
                    Some(f.doc.value_location(&c)),
                    format!("`{c}` is defined twice: here and in {}:{line}", first.display()),
                )
                .with_source(&f.source.text)
                .with_help("keep one of the two definitions"),
            );
        }
        for (p, span) in &f.doc.spans {
            let offset = p.0.first().and_then(|s| match s {
                Segment::Key(k) => offsets.get(k).copied(),
                _ => None,
            });
            let p = shifted(p, offset.unwrap_or(0));
            if p.0.is_empty() || doc.spans.contains_key(&p) {
                continue;
            }
            doc.spans.insert(p.clone(), *span);
            origins.insert(p, fi);
        }
    }
    if diags.is_empty() {
        Ok(Merged { files, doc, origins })
    } else {
        Err(diags)
    }
}

fn file_of(
    files: &[Parsed],
    spans: &BTreeMap<YamlPath, super::yaml::Span>,
    origins: &BTreeMap<YamlPath, usize>,
    path: &YamlPath,
) -> PathBuf {
    let mut p = path.clone();
    loop {
        if spans.contains_key(&p) {
            return files[origins.get(&p).copied().unwrap_or(0)].source.path.clone();
        }
        if p.0.pop().is_none() {
            return files[0].source.path.clone();
        }
    }
}

/// Merges `over` into `base`: maps key by key; anything else defined on both
/// sides is a conflict at its path.
fn merge_value(base: &mut Value, over: &Value, path: &YamlPath, conflicts: &mut Vec<YamlPath>) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                let p = path.key(k.as_str().unwrap_or_default());
                match b.get_mut(k) {
                    Some(existing) => merge_value(existing, v, &p, conflicts),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => conflicts.push(path.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of `n` fragments, each importing the next through a glob.
    fn chain(n: usize) -> (tempfile::TempDir, Parsed) {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("parts")).unwrap();
        for i in 0..n {
            let text = match i + 1 < n {
                true => format!("{{imports: [p{}.y*ml], versions: {{v{i}: \"1\"}}}}\n", i + 1),
                false => format!("versions: {{v{i}: \"1\"}}\n"),
            };
            std::fs::write(tmp.path().join(format!("parts/p{i}.yaml")), text).unwrap();
        }
        let source = load::SourceFile { path: "services.yaml".into(), text: "imports: [parts/p0.yaml]\n".into() };
        let doc = load::parse_document(&source).unwrap();
        (tmp, Parsed { source, doc })
    }

    #[test]
    fn glob_imports_walk_the_project_once_however_many_there_are() {
        let (tmp, main) = chain(200);
        let root = tmp.path().canonicalize().unwrap();
        let walks = std::cell::Cell::new(0);
        let walk = || {
            walks.set(walks.get() + 1);
            crate::inventory::resolve::walk_project_for_tests(&root)
        };
        let merged = load_all(&root, main, &walk).unwrap_or_else(|d| panic!("{d:?}"));
        assert_eq!(merged.files.len(), 201);
        assert_eq!(merged.doc.value["versions"].as_mapping().map(|m| m.len()), Some(200));
        assert_eq!(walks.get(), 1, "the project is walked once, not once per glob import");
    }
}
