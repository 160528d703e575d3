#!/usr/bin/env python3
"""Checks that `rust-version` in Cargo.toml is true, and that the image uses it.

    python3 .ci/rust-version.py

- the highest `rust-version` declared by any package in the lock file (every
  feature, every platform, so `vendored-openssl` and the macOS-only crates
  count) must not exceed Cargo.toml's `rust-version`: a Rust older than that
  cannot build the locked dependencies;
- Cargo.toml's `rust-version` must not exceed that maximum either unless
  RUST_VERSION_OWN names why (our own code needing a newer Rust): an inflated
  `rust-version` turns users away for nothing; clippy's `incompatible_msrv`
  lint (in `cargo clippy -D warnings`) checks our own use of the standard
  library against it;
- the Dockerfile's `FROM rust:X.Y.Z-…` must be exactly `rust-version`, so
  each image build is a build with the minimum supported Rust.
"""
import json
import os
import re
import subprocess
import sys


def ver(s):
    parts = [int(x) for x in s.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def show(v):
    return ".".join(map(str, v))


def main():
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--all-features"],
        check=True, capture_output=True).stdout)
    members = set(meta["workspace_members"])
    deps = [(ver(p["rust_version"]), f"{p['name']} {p['version']}")
            for p in meta["packages"] if p.get("rust_version") and p["id"] not in members]
    need = max(v for v, _ in deps)
    by = sorted(n for v, n in deps if v == need)
    root = next(p for p in meta["packages"] if p["name"] == "codex-k8s" and p["id"] in members)
    if not root.get("rust_version"):
        sys.exit("rust-version: Cargo.toml declares no rust-version")
    declared = ver(root["rust_version"])
    errors = []
    if declared < need:
        errors.append(f"Cargo.toml says rust-version = \"{root['rust_version']}\", but the lock file "
                      f"needs {show(need)} ({', '.join(by)}): raise it")
    elif declared > need and not os.environ.get("RUST_VERSION_OWN"):
        errors.append(f"Cargo.toml says rust-version = \"{root['rust_version']}\", but the lock file "
                      f"needs only {show(need)}: lower it, or set RUST_VERSION_OWN to the reason")
    with open(os.path.join(os.path.dirname(root["manifest_path"]), "Dockerfile"), encoding="utf-8") as f:
        images = re.findall(r"^FROM\s+(?:\S+/)?rust:(\d+\.\d+\.\d+)\S*", f.read(), re.M)
    if not images:
        errors.append("Dockerfile: no `FROM rust:X.Y.Z-…` stage")
    for image in images:
        if ver(image) != declared:
            errors.append(f"Dockerfile builds with rust:{image}, Cargo.toml's rust-version is "
                          f"{root['rust_version']}: make them equal (the image build is the MSRV build)")
    if errors:
        sys.exit("rust-version:\n  " + "\n  ".join(errors))
    print(f"rust-version {root['rust_version']}: the lock file's highest ({', '.join(by)}); "
          f"Dockerfile rust:{images[0]}")


if __name__ == "__main__":
    main()
