//! The rendered tree's path scheme, in one place: target directories, stage
//! directories, object files, the Argo CD and Flux glue files, target
//! metadata, the writer's own staging/trash/build/lock names, and the names
//! an environment may not take. A base module: it imports nothing of the
//! crate, so every layer (inventory, tree, diff, git, watch, cli) can use it.

/// Top-level directory of the Argo CD glue (`argocd/<env>.yaml`).
pub const ARGOCD_DIR: &str = "argocd";
/// Top-level directory of the Flux glue (`flux/<env>[/<slot>].yaml`).
pub const FLUX_DIR: &str = "flux";
/// Directory of a target's metadata, inside the target directory.
pub const META_DIR: &str = ".codex-k8s";
/// Where the protected render records the walls, relative to the tree root.
pub const WALLS_JSON: &str = ".codex-k8s/walls.json";
/// Where a target's metadata lives, relative to the target directory.
pub const TARGET_JSON: &str = ".codex-k8s/target.json";
/// The writer's staging directory, at the tree root.
pub const STAGING: &str = ".codex-k8s-staging";
/// The writer's trash directory, at the tree root.
pub const TRASH: &str = ".codex-k8s-trash";
/// Build marker, at the tree root (fallback when the git dir is unknown).
pub const BUILD_MARKER: &str = ".codex-k8s-build";
/// Lock file, at the tree root (fallback when the git dir is unknown).
pub const LOCK: &str = ".codex-k8s.lock";
/// A kustomization file's name.
pub const KUSTOMIZATION: &str = "kustomization.yaml";

/// Names the tree itself uses at its top level (next to the environment
/// directories). An environment with one of these names would share its
/// directory with the tree's own files, so the inventory refuses them.
pub const RESERVED_DIRS: &[&str] = &[ARGOCD_DIR, FLUX_DIR, META_DIR, STAGING, TRASH, BUILD_MARKER, LOCK];

/// Why `env` cannot name an environment, if it cannot: it collides with a
/// directory or file of the tree's own layout ([`RESERVED_DIRS`]).
pub fn reserved_env_problem(env: &str) -> Option<String> {
    RESERVED_DIRS.contains(&env).then(|| {
        format!(
            "`{env}` is reserved: the rendered tree keeps its own files under `{env}` (reserved: {})",
            RESERVED_DIRS.join(", ")
        )
    })
}

/// Directory of a target inside the tree: `env` or `env/slot`.
pub fn target_dir(env: &str, slot: Option<&str>) -> String {
    match slot {
        Some(s) => format!("{env}/{s}"),
        None => env.to_owned(),
    }
}

/// Stage directory: `<NN>-<stage>`, `NN` being ten times the stage's index.
pub fn stage_dir(stage_index: usize, stage: &str) -> String {
    format!("{:02}-{stage}", stage_index * 10)
}

/// True for a path segment shaped like a stage directory (`NN-name`).
pub fn is_stage_dir(segment: &str) -> bool {
    let b = segment.as_bytes();
    b.len() > 3 && b[..2].iter().all(u8::is_ascii_digit) && b[2] == b'-'
}

/// An object's file name: `<kind lower-case>-<name>.yaml`.
pub fn object_file(kind: &str, name: &str) -> String {
    format!("{}-{name}.yaml", kind.to_lowercase())
}

/// An object's path inside its target directory: `<stage dir>/<component>/<file>`.
pub fn object_path(stage_dir: &str, component: &str, file: &str) -> String {
    format!("{stage_dir}/{component}/{file}")
}

/// Path of an environment's Argo CD file, relative to the tree root.
pub fn argocd_path(env: &str) -> String {
    format!("{ARGOCD_DIR}/{env}.yaml")
}

/// Path of a target's Flux file, relative to the tree root.
pub fn flux_path(env: &str, slot: Option<&str>) -> String {
    format!("{FLUX_DIR}/{}.yaml", target_dir(env, slot))
}

/// True when the first segment of a tree path is a glue directory.
pub fn is_glue_dir(segment: &str) -> bool {
    segment == ARGOCD_DIR || segment == FLUX_DIR
}

/// `rest` below `prefix`: the tree's path inside its repository joined with
/// a path inside the tree. An empty prefix or `.` is the repository root.
pub fn join(prefix: &str, rest: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() || prefix == "." {
        rest.to_owned()
    } else {
        format!("{prefix}/{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(target_dir("ai", Some("pr-1")), "ai/pr-1");
        assert_eq!(stage_dir(2, "apps"), "20-apps");
        assert_eq!(object_file("ConfigMap", "x"), "configmap-x.yaml");
        assert_eq!(argocd_path("dev"), "argocd/dev.yaml");
        assert_eq!(flux_path("ai", Some("pr-1")), "flux/ai/pr-1.yaml");
        assert_eq!(flux_path("dev", None), "flux/dev.yaml");
        assert_eq!(join("", "a"), "a");
        assert_eq!(join(".", "a"), "a");
        assert_eq!(join("rendered/", "a"), "rendered/a");
        assert!(is_stage_dir("00-base") && !is_stage_dir("ai") && !is_stage_dir("00-"));
        assert!(reserved_env_problem("flux").is_some() && reserved_env_problem("dev").is_none());
    }
}
