//! The tree lock: one exclusive file lock, taken by `render`, `slots` and
//! the watcher, so two runs never interleave on one tree or one clone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Error, Result};

/// How long a run waits for another one to release the lock.
const WAIT: Duration = Duration::from_secs(60);

/// An exclusive lock, released when dropped.
pub struct TreeLock(std::fs::File);

impl Drop for TreeLock {
    fn drop(&mut self) {
        let _ = fs2::FileExt::unlock(&self.0);
    }
}

/// Where the tree lock lives: `.git/codex-k8s.lock` in a repository, else
/// `.codex-k8s.lock` in the tree.
pub fn lock_path(root: &Path, out_dir: &Path) -> PathBuf {
    match git2::Repository::discover(root) {
        Ok(repo) => repo.path().join("codex-k8s.lock"),
        Err(_) => out_dir.join(crate::layout::LOCK),
    }
}

/// Takes the lock of the tree `out_dir` of the project at `root` (a file in
/// `.git/` when the project is a repository): the second run waits up to a
/// minute and then fails clearly.
pub fn lock_tree(root: &Path, out_dir: &Path) -> Result<TreeLock> {
    lock_file(&lock_path(root, out_dir))
}

/// Takes the same lock for the repository `repo` (the watcher's clone).
pub fn lock_repo(repo: &git2::Repository) -> Result<TreeLock> {
    lock_file(&repo.path().join("codex-k8s.lock"))
}

fn lock_file(path: &Path) -> Result<TreeLock> {
    use fs2::FileExt;
    let fail = |source| Error::LockFile { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let open = || std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(fail);
    let mut file = open()?;
    let deadline = Instant::now() + WAIT;
    loop {
        match file.try_lock_exclusive() {
            // A failed run without a repository removes the lock file it
            // created in the tree: a lock taken on that removed file locks
            // nothing, so take it again on the file now at the path.
            Ok(()) if !same_file(&file, path) => file = open()?,
            Ok(()) => return Ok(TreeLock(file)),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => return Err(Error::Busy { path: path.to_path_buf() }),
        }
    }
}

/// True when `file` is the file at `path` (always true off Unix).
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_lock_and_the_repository_lock_are_one_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(tmp.path()).unwrap();
        let out = tmp.path().join("rendered");
        assert_eq!(lock_path(tmp.path(), &out), repo.path().join("codex-k8s.lock"));
        let held = lock_repo(&repo).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(lock_path(tmp.path(), &out)).unwrap();
        assert!(
            fs2::FileExt::try_lock_exclusive(&file).is_err(),
            "the tree lock is free while the repository lock is held"
        );
        drop(held);
        assert!(lock_tree(tmp.path(), &out).is_ok());
    }
}
