#!/usr/bin/env python3
"""Third-party notices for a codex-k8s binary, from the lock file.

    python3 .ci/notices.py [--features F1,F2] [--target TRIPLE] --output FILE

Walks `cargo metadata`'s resolve graph from the codex-k8s package along
normal dependencies (what is compiled into the binary; build and dev
dependencies are not shipped) for the given features and target, and writes
one file: each crate with its version, licence expression and repository,
then the licence texts each crate ships (identical texts once, with the crates
that carry them), then the licences of the C libraries linked in statically
(libgit2, GPL-2.0 with the linking exception; libssh2, OpenSSL, zlib) from the
sources their -sys crates vendor. Release archives and the container image
carry its output next to LICENSE; `.ci/run` checks it.

Standard library only: it runs in the image's build stage too.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

# The bundled C sources a -sys crate builds and links statically, and where
# each keeps its licence, relative to the crate's directory.
BUNDLED = {
    "libgit2-sys": ("libgit2", ["libgit2/COPYING"]),
    "libssh2-sys": ("libssh2", ["libssh2/COPYING"]),
    "openssl-src": ("OpenSSL", ["openssl/LICENSE.txt"]),
    "libz-sys": ("zlib", ["src/zlib/LICENSE", "src/zlib/README"]),
}
LICENSE_NAMES = ("license", "licence", "copying", "notice", "unlicense")


def metadata(features, target):
    cmd = ["cargo", "metadata", "--format-version", "1", "--locked"]
    if features:
        cmd += ["--features", features]
    if target:
        cmd += ["--filter-platform", target]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)


def shipped(meta, root_name):
    """Packages reachable from `root_name` along normal dependencies, plus the
    build dependencies that vendor a C library linked in (openssl-src)."""
    by_id = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = next(i for i in meta["workspace_members"] if by_id[i]["name"] == root_name)
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            if None in kinds or ("build" in kinds and by_id[dep["pkg"]]["name"] in BUNDLED):
                todo.append(dep["pkg"])
    seen.discard(root)
    return sorted((by_id[i] for i in seen), key=lambda p: (p["name"], p["version"]))


def licence_files(pkg):
    d = os.path.dirname(pkg["manifest_path"])
    files = []
    if pkg.get("license_file"):
        files.append(os.path.join(d, pkg["license_file"]))
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if os.path.isfile(path) and name.lower().startswith(LICENSE_NAMES) and path not in files:
            files.append(path)
    return files


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().strip() + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", default="")
    ap.add_argument("--target", default="")
    ap.add_argument("--output", required=True)
    args = ap.parse_args()
    meta = metadata(args.features, args.target)
    pkgs = shipped(meta, "codex-k8s")
    out = []
    w = out.append
    w("Third-party software in codex-k8s\n")
    w("==================================\n\n")
    w("codex-k8s is licensed under the Apache License 2.0 (LICENSE). The binary\n")
    w("contains the following crates, and C libraries that some of them build\n")
    w("from bundled sources and link statically. Their licences follow.\n\n")
    w(f"Features: {args.features or '(default)'}; target: {args.target or '(all)'}\n\n")
    w("Crates\n------\n\n")
    texts = {}  # digest -> (text, [crate])
    missing = []
    for p in pkgs:
        w(f"- {p['name']} {p['version']}: {p.get('license') or 'see its licence file'}")
        w(f" ({p['repository']})\n" if p.get("repository") else "\n")
        files = licence_files(p)
        if not files:
            missing.append(f"{p['name']} {p['version']}")
        for f in files:
            text = read(f)
            key = hashlib.sha256(text.encode()).hexdigest()
            texts.setdefault(key, (text, []))[1].append(f"{p['name']} {p['version']} ({os.path.basename(f)})")
    w("\nBundled C libraries, linked statically\n--------------------------------------\n\n")
    bundled = []
    for p in pkgs:
        if p["name"] in BUNDLED:
            lib, rels = BUNDLED[p["name"]]
            d = os.path.dirname(p["manifest_path"])
            paths = [os.path.join(d, r) for r in rels if os.path.isfile(os.path.join(d, r))]
            if not paths:
                sys.exit(f"notices: {p['name']} {p['version']} has none of {rels}")
            bundled.append((lib, p, paths[0]))
            w(f"- {lib}, built by {p['name']} {p['version']} ({rels[0]})\n")
    if not bundled:
        w("(none for these features and target)\n")
    for lib, p, path in bundled:
        w(f"\n\n===== {lib} (bundled by {p['name']} {p['version']}) =====\n\n")
        w(read(path))
    for text, owners in sorted(texts.values(), key=lambda t: t[1][0]):
        w("\n\n===== " + "; ".join(owners) + " =====\n\n")
        w(text)
    if missing:
        w("\n\nCrates that ship no licence file (their licence expression is above):\n")
        w("".join(f"- {m}\n" for m in missing))
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("".join(out))
    print(f"notices: {len(pkgs)} crates, {len(texts)} licence texts, "
          f"{len(bundled)} bundled C libraries -> {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
