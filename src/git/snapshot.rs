//! A revision's project files written out of git into a private temporary
//! directory, so the inventory loader reads them exactly as it reads a work
//! tree: same sandbox, same messages. Used to render the sources of two
//! revisions without checking either out (`diff --source-base`).
//!
//! Blobs are written as files (executable bit kept), a symlink entry (mode
//! 120000) as a symlink — a pull request can commit one, and the loader must
//! refuse it as it does on disk — and a submodule entry is skipped (its
//! commit is not in this repository). Every directory and file is created
//! new (`O_EXCL`), so no entry can write through a link another entry made.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use git2::{ObjectType, Oid, Repository, Tree};

use super::{Error, Result};

/// The files of one revision's project directory, on disk until dropped.
#[derive(Debug)]
pub struct SourceSnapshot {
    /// The private temporary directory (removed on drop).
    dir: PathBuf,
    /// The project directory inside it: where `services.yaml` is, if the
    /// revision has one.
    pub root: PathBuf,
    /// The commit the revision names.
    pub commit: Oid,
    /// Files written (blobs and symlinks).
    pub files: usize,
    /// Whether the project directory exists at that revision.
    pub has_project_dir: bool,
}

impl Drop for SourceSnapshot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Resolves `rev` to a commit, with an error that says what to do: in a
/// shallow clone a missing revision is usually history that was not fetched.
pub fn resolve_commit(repo: &Repository, rev: &str) -> Result<Oid> {
    let found = repo.revparse_single(rev).and_then(|o| o.peel_to_commit());
    match found {
        Ok(c) => Ok(c.id()),
        Err(e) => {
            let dir = repo.workdir().unwrap_or(repo.path()).display().to_string();
            if repo.is_shallow() {
                return Err(Error::Refused(format!(
                    "revision `{rev}` is not in {dir}, a shallow clone ({}): fetch more history with `git fetch --deepen=50` (repeat until it is found) or `git fetch --unshallow`, or check out with full history (actions/checkout: `fetch-depth: 0`)",
                    e.message()
                )));
            }
            Err(Error::Refused(format!(
                "revision `{rev}` does not exist in {dir} ({}): check it with `git rev-parse {rev}`, or fetch it first (`git fetch origin {rev}`)",
                e.message()
            )))
        }
    }
}

/// Writes the files under `project` (a repository path, `""` for the root)
/// at `rev` into a new private temporary directory. Directories whose path
/// relative to `project` is in `skip` (the rendered tree) are not written.
///
/// The directory is made in `TMPDIR` when that is set; else in `/dev/shm`
/// when it exists (memory: creating thousands of files there costs a
/// fraction of a disk's time), falling back to the system's temporary
/// directory when that fails (a small `/dev/shm` in a container).
pub fn export_project(repo: &Repository, rev: &str, project: &str, skip: &[String]) -> Result<SourceSnapshot> {
    let commit = repo.find_commit(resolve_commit(repo, rev)?)?;
    let mut bases = Vec::new();
    if std::env::var_os("TMPDIR").is_none() && Path::new("/dev/shm").is_dir() {
        bases.push(PathBuf::from("/dev/shm"));
    }
    bases.push(std::env::temp_dir());
    let mut last = None;
    for base in &bases {
        match export_into(repo, &commit, rev, project, skip, base) {
            Err(Error::Refused(m)) if m.starts_with(WRITE_FAILED) => last = Some(m),
            other => return other,
        }
    }
    Err(Error::Refused(last.unwrap_or_default()))
}

/// How an I/O failure while writing the copy starts (another directory may work).
const WRITE_FAILED: &str = "cannot write";

fn export_into(
    repo: &Repository,
    commit: &git2::Commit<'_>,
    rev: &str,
    project: &str,
    skip: &[String],
    base: &Path,
) -> Result<SourceSnapshot> {
    let dir = private_temp_dir(base)?;
    let root = dir.join("project");
    let mut snap = SourceSnapshot { dir, root: root.clone(), commit: commit.id(), files: 0, has_project_dir: false };
    mkdir(&root).map_err(|e| Error::Refused(format!("{WRITE_FAILED} {}: {e}", root.display())))?;
    let tree = commit.tree()?;
    let sub = if project.is_empty() {
        Some(tree)
    } else {
        match tree.get_path(Path::new(project)) {
            Ok(e) if e.kind() == Some(ObjectType::Tree) => Some(repo.find_tree(e.id())?),
            _ => None,
        }
    };
    if let Some(sub) = sub {
        snap.has_project_dir = true;
        let mut w = Writer { repo, rev, project, skip, files: 0 };
        // Counted before anything is written: a tree can name one blob or
        // one subtree millions of times (a "git bomb" of a few objects).
        let mut census = Census::default();
        w.census(&sub, "", 0, &mut census)?;
        w.write_tree(&sub, "", &root)?;
        snap.files = w.files;
    }
    Ok(snap)
}

struct Writer<'a> {
    repo: &'a Repository,
    rev: &'a str,
    project: &'a str,
    skip: &'a [String],
    files: usize,
}

/// Most files an exported revision may hold.
pub const MAX_EXPORT_FILES: usize = 100_000;
/// Most bytes the files of an exported revision may hold together.
pub const MAX_EXPORT_BYTES: u64 = 512 * 1024 * 1024;
/// Deepest directory nesting of an exported revision.
pub const MAX_EXPORT_DEPTH: usize = 64;

/// What a revision would write: files and bytes so far.
#[derive(Default)]
struct Census {
    files: usize,
    bytes: u64,
}

impl Writer<'_> {
    /// Counts the files and bytes `tree` would write, refusing the revision
    /// past [`MAX_EXPORT_FILES`], [`MAX_EXPORT_BYTES`] or
    /// [`MAX_EXPORT_DEPTH`] (blob sizes come from object headers: nothing is
    /// loaded).
    fn census(&self, tree: &Tree<'_>, rel: &str, depth: usize, c: &mut Census) -> Result<()> {
        let too_big = |what: String| {
            Error::Refused(format!(
                "{} holds {what}; a source revision is a project's sources, not that big (refused before anything was written)",
                self.label(rel)
            ))
        };
        if depth > MAX_EXPORT_DEPTH {
            return Err(too_big(format!("directories nested deeper than {MAX_EXPORT_DEPTH}")));
        }
        let odb = self.repo.odb()?;
        for entry in tree.iter() {
            let path = crate::layout::join(rel, &String::from_utf8_lossy(entry.name_bytes()));
            match (entry.kind(), entry.filemode()) {
                (Some(ObjectType::Tree), _) if self.skip.contains(&path) => {}
                (Some(ObjectType::Tree), _) => self.census(&self.repo.find_tree(entry.id())?, &path, depth + 1, c)?,
                (Some(ObjectType::Blob), _) => {
                    c.files += 1;
                    c.bytes += odb.read_header(entry.id())?.0 as u64;
                    if c.files > MAX_EXPORT_FILES {
                        return Err(too_big(format!("more than {MAX_EXPORT_FILES} files")));
                    }
                    if c.bytes > MAX_EXPORT_BYTES {
                        return Err(too_big(format!("more than {MAX_EXPORT_BYTES} bytes of files")));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// How messages name `rel`: `REV:path` with the repository path.
    fn label(&self, rel: &str) -> String {
        format!("{}:{}", self.rev, crate::layout::join(self.project, rel))
    }

    fn write_tree(&mut self, tree: &Tree<'_>, rel: &str, dir: &Path) -> Result<()> {
        for entry in tree.iter() {
            // A name need not be UTF-8 (git stores bytes): it is written as
            // the bytes it is; messages show it lossily.
            let bytes = entry.name_bytes();
            let shown = String::from_utf8_lossy(bytes);
            if !is_plain_name(&shown) || bytes.contains(&0) {
                return Err(Error::Refused(format!(
                    "{} holds an entry named {:?}, which no checkout could write; the commit is malformed",
                    self.label(rel),
                    crate::diagnostic::escape_line(&shown, 80)
                )));
            }
            let path = crate::layout::join(rel, &shown);
            let full = dir.join(os_name(bytes));
            match (entry.kind(), entry.filemode()) {
                (Some(ObjectType::Tree), _) => {
                    if self.skip.contains(&path) {
                        continue;
                    }
                    self.create(&full, &path, mkdir)?;
                    self.write_tree(&self.repo.find_tree(entry.id())?, &path, &full)?;
                }
                // A submodule: its commit lives in another repository.
                (Some(ObjectType::Commit), _) => {}
                (Some(ObjectType::Blob), 0o120000) => {
                    let blob = self.repo.find_blob(entry.id())?;
                    let target = PathBuf::from(String::from_utf8_lossy(blob.content()).into_owned());
                    self.create(&full, &path, |p| symlink(&target, p))?;
                    self.files += 1;
                }
                (Some(ObjectType::Blob), mode) => {
                    let blob = self.repo.find_blob(entry.id())?;
                    self.create(&full, &path, |p| write_new(p, blob.content(), mode == 0o100755))?;
                    self.files += 1;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn create(&self, full: &Path, rel: &str, make: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
        make(full).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                return Error::Refused(format!(
                    "{} is named twice in its tree, which no checkout could write; the commit is malformed",
                    self.label(rel)
                ));
            }
            Error::Refused(format!(
                "{WRITE_FAILED} {} into a temporary directory: {e}; set TMPDIR to a directory with room",
                self.label(rel)
            ))
        })
    }
}

/// A name a checkout can write: not empty, `.`, `..`, and without separators.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

#[cfg(unix)]
fn os_name(bytes: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(bytes)
}

#[cfg(not(unix))]
fn os_name(bytes: &[u8]) -> std::ffi::OsString {
    String::from_utf8_lossy(bytes).into_owned().into()
}

fn mkdir(path: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(path)
}

fn write_new(path: &Path, content: &[u8], executable: bool) -> std::io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, if executable { 0o700 } else { 0o600 });
    #[cfg(not(unix))]
    let _ = executable;
    opts.open(path)?.write_all(content)
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "symlinks from git are only written on Unix"))
}

/// A new directory only this process can enter, under `base`.
fn private_temp_dir(base: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut last = None;
    for _ in 0..16 {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("codex-k8s-source-{}-{n}-{nanos:x}", std::process::id()));
        match mkdir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                return Err(Error::Refused(format!(
                    "{WRITE_FAILED} a temporary directory in {}: {e}; set TMPDIR to a writable directory",
                    base.display()
                )))
            }
        }
    }
    Err(Error::Refused(format!(
        "{WRITE_FAILED} a temporary directory in {}: {}",
        base.display(),
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_only() {
        for bad in ["", ".", "..", "a/b", "a\\b", "a\0b"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        for good in ["services.yaml", ".codex-k8s", "..a", "a..b"] {
            assert!(is_plain_name(good), "{good:?}");
        }
    }

    #[test]
    fn temporary_directories_are_new_private_and_removed() {
        let a = private_temp_dir(&std::env::temp_dir()).expect("temp dir");
        let b = private_temp_dir(&std::env::temp_dir()).expect("temp dir");
        assert_ne!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&a).expect("meta").permissions().mode() & 0o777, 0o700);
        }
        let snap = SourceSnapshot {
            dir: a.clone(),
            root: a.join("project"),
            commit: Oid::zero(),
            files: 0,
            has_project_dir: false,
        };
        drop(snap);
        assert!(!a.exists());
        let _ = fs::remove_dir_all(b);
    }
}
