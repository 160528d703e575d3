//! The project's files: the walk that globs search, and the expansion of a
//! manifest or partial entry into files, sandboxed to the project directory
//! (no absolute paths, no `..`, no symlink leading out).

use std::collections::BTreeSet;
use std::path::{Component as PathPart, Path, PathBuf};

use globset::Glob;

use super::Resolver;
use crate::inventory::raw::RawTemplates;
use crate::inventory::yaml::YamlPath;

/// Directories never searched by manifest and partial globs.
const SKIPPED_DIRS: [&str; 5] = [".git", "target", "rendered", "node_modules", ".codex-k8s"];

impl Resolver {
    pub(super) fn project_files(&mut self) -> Vec<PathBuf> {
        if let Some(files) = &self.project {
            return files.clone();
        }
        let files = walk_project(&self.root);
        self.project = Some(files.clone());
        files
    }

    /// Expands one manifest or partial entry: a plain path or a glob, relative
    /// to the root, never escaping it.
    pub(super) fn expand(&mut self, path: &YamlPath, pattern: &str, what: &str, must_match: bool) -> Vec<PathBuf> {
        if let Some(problem) = escape_problem(pattern) {
            self.error_at_value(
                path,
                format!("{what} path `{pattern}` {problem}"),
                "use a path inside the project directory, relative to services.yaml",
            );
            return Vec::new();
        }
        let is_glob = pattern.contains(['*', '?', '[', '{']);
        let matches: Vec<PathBuf> = if is_glob {
            let glob = match Glob::new(pattern) {
                Ok(g) => g.compile_matcher(),
                Err(e) => {
                    self.error_at_value(path, format!("invalid glob `{pattern}`: {}", e.kind()), "fix the glob syntax");
                    return Vec::new();
                }
            };
            self.project_files().into_iter().filter(|f| glob.is_match(f)).collect()
        } else {
            let rel = PathBuf::from(pattern);
            if self.root.join(&rel).is_file() {
                vec![rel]
            } else {
                if must_match {
                    self.error_at_value(
                        path,
                        format!("{what} `{pattern}` does not exist"),
                        format!("create it, or fix the path (relative to {})", self.main.source.path.display()),
                    );
                }
                return Vec::new();
            }
        };
        if matches.is_empty() && must_match {
            self.error_at_value(path, format!("glob `{pattern}` matches no file"), "fix the pattern or add the files");
        }
        let mut kept = Vec::new();
        for m in matches {
            match self.root.join(&m).canonicalize() {
                Ok(real) if in_git_dir(&self.root, &real) => self.error_at_value(
                    path,
                    format!("{what} `{}` is inside `.git/`, which templates may never read", m.display()),
                    "`.git/` holds the repository's credentials (actions/checkout stores its token in .git/config); name the project's own files",
                ),
                Ok(real) if real.starts_with(&self.root) => {
                    self.sources.insert(m.clone());
                    kept.push(m);
                }
                Ok(_) => self.error_at_value(
                    path,
                    format!("{what} `{}` is a symlink that leads outside the project directory", m.display()),
                    "copy the file into the project instead of linking to it",
                ),
                Err(e) => {
                    self.error_at_value(path, format!("cannot read {what} `{}`: {e}", m.display()), "check the file")
                }
            }
        }
        kept
    }

    pub(super) fn resolve_partials(&mut self, templates: &RawTemplates) -> Vec<PathBuf> {
        let path = YamlPath::default().key("templates").key("partials");
        let (patterns, explicit) = match &templates.partials {
            Some(p) => (p.clone(), true),
            None => (vec!["partials/**/*.j2".to_owned()], false),
        };
        let mut files = BTreeSet::new();
        for (i, p) in patterns.iter().enumerate() {
            files.extend(self.expand(&path.index(i), p, "partial", explicit));
        }
        files.into_iter().collect()
    }

    pub(super) fn resolve_manifests(&mut self, path: &YamlPath, name: &str, patterns: &[String]) -> Vec<PathBuf> {
        if patterns.is_empty() {
            self.error_at_value(
                &path.key("manifests"),
                format!("component `{name}` has no manifests"),
                "list at least one manifest template",
            );
        }
        let mut out: Vec<PathBuf> = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            for f in self.expand(&path.key("manifests").index(i), p, "manifest", true) {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        out
    }
}

/// Every file of the project (relative to `root`), sorted, outside the
/// skipped directories; symlinks are listed, not followed.
pub(super) fn walk_project(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(root).follow_links(false).sort_by_file_name().into_iter();
    for entry in walker.filter_entry(|e| {
        !(e.file_type().is_dir() && e.depth() > 0 && SKIPPED_DIRS.iter().any(|s| e.file_name() == *s))
    }) {
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_dir() {
            continue;
        }
        if let Ok(rel) = entry.path().strip_prefix(root) {
            files.push(rel.to_path_buf());
        }
    }
    files
}

/// Whether `real` (a canonical path) is inside a `.git` directory below `root`.
fn in_git_dir(root: &Path, real: &Path) -> bool {
    real.strip_prefix(root).is_ok_and(|inner| inner.components().any(|c| c.as_os_str() == ".git"))
}

/// Why a relative path pattern would leave the project directory, if it would.
pub(super) fn escape_problem(pattern: &str) -> Option<&'static str> {
    let p = Path::new(pattern);
    if pattern.is_empty() {
        return Some("is empty");
    }
    if p.is_absolute() || pattern.starts_with('/') || pattern.starts_with('\\') {
        return Some("is absolute");
    }
    if p.components().any(|c| matches!(c, PathPart::ParentDir | PathPart::Prefix(_))) {
        return Some("escapes the project directory (`..`)");
    }
    None
}
