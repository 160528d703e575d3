//! Stamps the binary with a digest of its own source (and locked
//! dependencies), so a target rendered by a different build of codex-k8s is
//! never mistaken for current by the inputs-digest shortcut.

use std::path::Path;

fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            visit(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.lock");
    let mut files = Vec::new();
    visit(Path::new("src"), &mut files);
    files.push("Cargo.lock".into());
    files.sort();
    // FNV-1a: no dependency needed, and collisions only cost a re-render.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for f in files {
        for byte in f.to_string_lossy().bytes().chain(std::fs::read(&f).unwrap_or_default()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=CODEX_K8S_BUILD_ID={hash:016x}");
    // For the test that locates k8s-openapi's source with `cargo metadata`.
    println!("cargo:rustc-env=CODEX_K8S_TARGET={}", std::env::var("TARGET").unwrap_or_default());
}
