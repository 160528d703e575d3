//! The shape of the code, checked: no source file over 600 lines and no
//! function over 100 (test code aside), data flowing one way between the
//! library's modules, and no git or product rule in `cli/` (it only turns
//! flags into typed requests and prints). See docs/architecture.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 100;

/// Known excesses still being split, as the exact problem line the check
/// prints without its figures. The check fails on any excess not listed
/// here AND on a listed one that is gone, so this list only shrinks.
const KNOWN: &[&str] = &[];
/// Known imports against the flow (same rule).
const KNOWN_IMPORTS: &[&str] = &[];
/// Known files of `cli/` that still use git2 (same rule).
const KNOWN_GIT_IN_CLI: &[&str] = &[];

/// What identifies a problem across edits: the text before ` — ` (file,
/// function, import), not its figures or line numbers.
fn key(problem: &str) -> &str {
    problem.split(" — ").next().unwrap_or(problem)
}

/// Fails on problems not in `known`, and on entries of `known` that no
/// longer occur.
fn ratchet(problems: &[String], known: &[&str], what: &str) {
    let keys: Vec<&str> = problems.iter().map(|p| key(p)).collect();
    let new: Vec<&String> = problems.iter().zip(&keys).filter(|(_, k)| !known.contains(k)).map(|(p, _)| p).collect();
    let gone: Vec<&&str> = known.iter().filter(|k| !keys.contains(k)).collect();
    assert!(new.is_empty(), "{what}:\n{}", new.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"));
    assert!(gone.is_empty(), "fixed, so remove from KNOWN in tests/architecture.rs: {gone:?}");
}

/// The library's modules in the order data flows through them: a module may
/// use its own rank and lower ones, never a later one. `cli` knows them all.
const RANKS: &[(&str, u8)] = &[
    ("diagnostic", 0),
    ("layout", 0),
    ("inventory", 1),
    ("template", 2),
    ("render", 3),
    ("tree", 4),
    ("git", 5),
    ("diff", 6),
    ("publish", 7),
    ("watch", 8),
    ("cli", 9),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(src())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

/// Test code is aside: a file named `tests.rs`, or a `#[cfg(test)]` module.
fn is_test_file(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "tests.rs") || path.components().any(|c| c.as_os_str() == "tests")
}

/// The text of `line` with string and char literals and comments blanked,
/// so braces inside them are not counted. `in_block` carries an open
/// `/* … */` across lines; raw strings are assumed to close on their line
/// or hold no braces that matter (checked: none in `src/` do).
fn code_of(line: &str, in_block: &mut bool) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if *in_block {
            if c == '*' && chars.get(i + 1) == Some(&'/') {
                *in_block = false;
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        match c {
            '/' if chars.get(i + 1) == Some(&'/') => break,
            '/' if chars.get(i + 1) == Some(&'*') => {
                *in_block = true;
                i += 2;
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            '\'' => {
                // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
                if chars.get(i + 1) == Some(&'\\') {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
                out.push_str("' '");
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// A source file's lines with the `#[cfg(test)]` items removed, each with
/// its code-only text.
fn non_test_lines(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut skip_depth: Option<i64> = None;
    let mut pending_cfg_test = false;
    let mut depth: i64 = 0;
    for (n, line) in text.lines().enumerate() {
        let code = code_of(line, &mut in_block);
        let opens = code.matches('{').count() as i64;
        let closes = code.matches('}').count() as i64;
        if let Some(d) = skip_depth {
            depth += opens - closes;
            if depth <= d {
                skip_depth = None;
            }
            continue;
        }
        if code.trim() == "#[cfg(test)]" {
            pending_cfg_test = true;
            continue;
        }
        if pending_cfg_test {
            pending_cfg_test = false;
            if code.trim_start().starts_with("mod ") && opens > closes {
                skip_depth = Some(depth);
                depth += opens - closes;
                continue;
            }
            if code.trim_start().starts_with("mod ") && code.trim_end().ends_with(';') {
                continue;
            }
        }
        depth += opens - closes;
        out.push((n + 1, line.to_owned(), code));
    }
    out
}

fn fn_name(code: &str) -> Option<String> {
    let t = code.trim_start();
    let t = t.strip_prefix("pub(crate) ").or_else(|| t.strip_prefix("pub(super) ")).unwrap_or(t);
    let t = t.strip_prefix("pub ").unwrap_or(t);
    let t = t.strip_prefix("const ").unwrap_or(t);
    let t = t.strip_prefix("async ").unwrap_or(t);
    let t = t.strip_prefix("unsafe ").unwrap_or(t);
    let rest = t.strip_prefix("fn ")?;
    Some(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect())
}

#[test]
fn no_source_file_is_over_600_lines_and_no_function_over_100() {
    let mut problems = Vec::new();
    for file in rust_files() {
        if is_test_file(&file) {
            continue;
        }
        let rel = file.strip_prefix(src()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = non_test_lines(&text);
        if lines.len() > MAX_FILE_LINES {
            problems.push(format!("src/{rel} — {} lines (at most {MAX_FILE_LINES}, tests aside)", lines.len()));
        }
        // A function runs from its `fn` line to the line where the depth
        // falls back to where it started.
        let mut open: Vec<(String, usize, i64)> = Vec::new();
        let mut depth: i64 = 0;
        for (n, _, code) in &lines {
            let before = depth;
            if let Some(name) = fn_name(code) {
                open.push((name, *n, before));
            }
            depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
            while let Some((name, start, at)) = open.last().cloned() {
                // A declaration without a body (trait method, `fn x();`).
                let ended = depth <= at && (*n > start || code.contains('}') || code.trim_end().ends_with(';'));
                if !ended {
                    break;
                }
                open.pop();
                let len = n - start + 1;
                if len > MAX_FN_LINES {
                    problems
                        .push(format!("src/{rel}: fn {name} — {len} lines at line {start} (at most {MAX_FN_LINES})"));
                }
            }
        }
    }
    ratchet(&problems, KNOWN, "split these");
}

fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    Some(first.trim_end_matches(".rs").to_owned())
}

#[test]
fn data_flows_one_way_between_modules() {
    let ranks: BTreeMap<&str, u8> = RANKS.iter().copied().collect();
    let mut problems = Vec::new();
    for file in rust_files() {
        let Some(module) = module_of(&file) else { continue };
        let Some(&rank) = ranks.get(module.as_str()) else { continue };
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, _, code) in non_test_lines(&text) {
            for (at, _) in code.match_indices("crate::") {
                let used: String = code[at + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                let Some(&used_rank) = ranks.get(used.as_str()) else { continue };
                if used != module && used_rank >= rank {
                    let rel = file.strip_prefix(src()).unwrap().display();
                    problems.push(format!("src/{rel}: `{module}` uses `{used}` — line {n}: a later or sibling stage"));
                }
            }
        }
    }
    ratchet(&problems, KNOWN_IMPORTS, "imports against the flow");
}

#[test]
fn cli_holds_no_git_plumbing() {
    let mut problems = Vec::new();
    for file in rust_files().into_iter().filter(|f| module_of(f).as_deref() == Some("cli")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, _, code) in non_test_lines(&text) {
            if code.contains("git2::") {
                let rel = file.strip_prefix(src()).unwrap().display();
                problems.push(format!("src/{rel}: git2 — line {n}: move it into the library"));
            }
        }
    }
    problems.sort();
    problems.dedup_by(|a, b| key(a) == key(b));
    ratchet(&problems, KNOWN_GIT_IN_CLI, "git in cli/");
}

#[test]
fn the_checker_sees_functions_and_skips_test_modules() {
    let text = "fn a() {\n    let s = \"}\";\n    let c = '{';\n}\n#[cfg(test)]\nmod tests {\n    fn b() {}\n}\nfn c<'a>(x: &'a str) {}\n";
    let lines = non_test_lines(text);
    let names: Vec<String> = lines.iter().filter_map(|(_, _, c)| fn_name(c)).collect();
    assert_eq!(names, ["a", "c"]);
    let mut depth = 0i64;
    for (_, _, code) in &lines {
        depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
    }
    assert_eq!(depth, 0, "{lines:?}");
}

/// The sibling modules of `src/watch/` a text refers to through `super::`
/// (`super::run::x`, `super::{lease, run::Config}`).
fn siblings_used(code: &str, siblings: &[String]) -> Vec<String> {
    let mut used = Vec::new();
    for (at, _) in code.match_indices("super::") {
        let rest = &code[at + 7..];
        let names: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += i32::from(c == '{') - i32::from(c == '}');
                    depth < 0
                })
                .map_or(group.len(), |(i, _)| i);
            let mut items = Vec::new();
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group[..end].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(group[start..i].trim().to_owned());
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            items.push(group[start..end].trim().to_owned());
            items
        } else {
            vec![rest.to_owned()]
        };
        for n in names {
            let ident: String = n.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if siblings.contains(&ident) && !used.contains(&ident) {
                used.push(ident);
            }
        }
    }
    used
}

/// No folder of `src/` has an import cycle between its files: shared nouns,
/// deadlines and helpers live below the files that use them, so each folder
/// reads in one order (issue 26, item 1).
#[test]
fn no_folder_has_an_import_cycle_between_its_files() {
    let mut dirs: Vec<PathBuf> = rust_files().iter().filter_map(|f| f.parent().map(Path::to_path_buf)).collect();
    dirs.sort();
    dirs.dedup();
    let mut problems = Vec::new();
    for dir in &dirs {
        problems.extend(folder_cycles(dir));
    }
    assert!(problems.is_empty(), "import cycles inside folders:\n{}", problems.join("\n"));
}

/// The files of `dir` (not its subfolders) that import each other in a loop.
fn folder_cycles(dir: &Path) -> Vec<String> {
    let files: Vec<PathBuf> = rust_files().into_iter().filter(|f| f.parent() == Some(dir)).collect();
    let stem = |f: &Path| f.file_stem().unwrap().to_string_lossy().into_owned();
    let siblings: Vec<String> =
        files.iter().map(|f| stem(f)).filter(|s| s != "mod" && s != "lib" && s != "main").collect();
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in files.iter().filter(|f| siblings.contains(&stem(f))) {
        let text = std::fs::read_to_string(f).unwrap();
        let code: String = non_test_lines(&text).into_iter().map(|(_, _, c)| c + "\n").collect();
        let used = siblings_used(&code, &siblings).into_iter().filter(|u| *u != stem(f)).collect();
        graph.insert(stem(f), used);
    }
    let shown = dir.strip_prefix(src().parent().unwrap()).unwrap_or(dir).display().to_string();
    let mut problems = Vec::new();
    for (a, uses) in &graph {
        // Every module reachable from `a`; a cycle when `a` is among them.
        let mut seen: Vec<String> = Vec::new();
        let mut todo: Vec<String> = uses.clone();
        while let Some(m) = todo.pop() {
            if seen.contains(&m) {
                continue;
            }
            todo.extend(graph.get(&m).cloned().unwrap_or_default());
            seen.push(m);
        }
        if seen.contains(a) {
            let back: Vec<&String> = uses.iter().filter(|u| graph.get(*u).is_some_and(|g| g.contains(a))).collect();
            problems.push(format!("{shown}/{a}.rs is in an import cycle (direct: {back:?})"));
        }
    }
    problems
}

#[test]
fn the_cycle_checker_reads_use_groups() {
    let siblings: Vec<String> = ["run", "lease", "bounded"].iter().map(|s| s.to_string()).collect();
    let code = "use super::run::{a, b};\nuse super::{lease::{self, x}, Clock, bounded};\nlet t = super::run::T;";
    assert_eq!(siblings_used(code, &siblings), ["run", "lease", "bounded"]);
}
