//! The repository a project lives in, found from a directory inside it, and
//! the clone a watcher starts from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use git2::{build::RepoBuilder, FetchOptions, Repository};

use super::{Error, Result, SourceSnapshot};

/// A repository with a work tree, and that work tree's canonical path.
pub struct Checkout {
    repo: Repository,
    workdir: PathBuf,
}

impl Checkout {
    /// The repository holding `dir` (searching upwards), refused when bare.
    pub fn discover(dir: &Path) -> Result<Self> {
        let repo = Repository::discover(dir)?;
        let workdir = repo
            .workdir()
            .ok_or(Error::Bare)?
            .canonicalize()
            .map_err(|e| Error::Refused(format!("cannot open the work tree: {e}")))?;
        Ok(Checkout { repo, workdir })
    }

    /// `path` (canonical, inside the work tree) relative to it, with `/`
    /// separators: the prefix git trees are read under.
    pub fn rel(&self, path: &Path) -> Result<String> {
        path.strip_prefix(&self.workdir)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .map_err(|_| Error::Refused(format!("{} is not inside the repository", path.display())))
    }

    /// Paths under `prefix` that differ between `base` and `head` (a revision,
    /// or `None` for the work tree); see [`super::changed_paths`].
    pub fn changed_paths(&self, base: &str, head: Option<&str>, prefix: &str) -> Result<Vec<String>> {
        super::changed_paths(&self.repo, base, head, prefix)
    }

    /// The files of `parts` under `prefix` at `rev`; see [`super::read_tree_parts`].
    pub fn read_tree_parts(&self, rev: &str, prefix: &str, parts: &[String]) -> Result<BTreeMap<String, Vec<u8>>> {
        super::read_tree_parts(&self.repo, rev, prefix, parts)
    }

    /// The project directory at `rev` written to a temporary directory; see
    /// [`super::export_project`].
    pub fn export_project(&self, rev: &str, project: &str, skip: &[String]) -> Result<SourceSnapshot> {
        super::export_project(&self.repo, rev, project, skip)
    }
}

/// Whether `dir` lies inside a git repository.
pub fn is_repository(dir: &Path) -> bool {
    Repository::discover(dir).is_ok()
}

/// Clones `url` into `dir` unless `dir` already lies in a repository, with
/// the credentials pushes use; returns whether it cloned.
pub fn clone_if_missing(url: &str, dir: &Path) -> Result<bool> {
    if is_repository(dir) {
        return Ok(false);
    }
    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(super::push::callbacks());
    RepoBuilder::new().fetch_options(fetch).clone(url, dir)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git").arg("-C").arg(dir).args(args).status().expect("git runs").success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn clones_once_and_finds_the_project_inside_the_clone() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let origin = tmp.path().join("origin");
        std::fs::create_dir_all(origin.join("app")).expect("mkdir");
        std::fs::write(origin.join("app/services.yaml"), "project: p\n").expect("write");
        git(&origin, &["init", "-q", "-b", "main"]);
        git(&origin, &["add", "."]);
        git(&origin, &["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "init"]);

        let here = tmp.path().join("here");
        std::fs::create_dir_all(&here).expect("mkdir");
        let url = origin.to_string_lossy().into_owned();
        assert!(clone_if_missing(&url, &here).expect("clone"), "an empty directory is cloned into");
        assert!(here.join("app/services.yaml").is_file());
        assert!(
            !clone_if_missing(&url, &here.join("app")).expect("no clone"),
            "a directory inside a clone is left alone"
        );

        let checkout = Checkout::discover(&here.join("app")).expect("discover");
        let project = here.join("app").canonicalize().expect("canonical");
        assert_eq!(checkout.rel(&project).expect("inside"), "app");
        assert!(checkout.rel(tmp.path()).is_err(), "a path outside the work tree is refused");
    }

    #[test]
    fn a_bare_repository_is_refused_with_what_to_do() {
        let tmp = tempfile::tempdir().expect("temp dir");
        git(tmp.path(), &["init", "-q", "--bare"]);
        let err = Checkout::discover(tmp.path()).err().expect("bare is refused");
        assert!(err.to_string().contains("--branch"), "{err}");
    }
}
