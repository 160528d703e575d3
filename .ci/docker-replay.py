#!/usr/bin/env python3
"""Replays the Dockerfile's build stages without a Docker daemon.

    python3 .ci/docker-replay.py [--stage plan|build] [--deps-only]

Reads the Dockerfile itself, so the replay cannot drift from it: the build
context is the tracked files less `.dockerignore`; every stage after the
toolchain stage (`chef`) gets a directory of its own standing for its
WORKDIR, and its `COPY . .`, `COPY --from=<stage> <WORKDIR>/<path> <path>`
and `RUN` lines are carried out there, in order, with bash. So the real
`cargo chef prepare`, `cargo chef cook` (the dependency layer, against a
directory holding nothing but the recipe) and `cargo build` commands run
as written.

What it cannot replay: the base images (the host's Rust stands in for
`rust:X.Y.Z-alpine`, glibc for musl; .ci/rust-version.py checks the pinned
version instead), the `apk add` line, and the distroless runtime stage. The
toolchain stage's `cargo install cargo-chef@V` runs here only when that
version is not installed yet.

The targets are cached under $HOME/.cache (CI_DOCKER_TARGET), so a machine
that ran it before rebuilds only what changed. `--stage plan` stops after the
recipe (seconds); `--deps-only` after the dependency layer (`cargo chef
cook`); the default runs through the build stage.
"""
import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def instructions(text):
    """(keyword, argument) pairs with continuation lines joined."""
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        cur += s[:-1] + " " if s.endswith("\\") else s
        if not s.endswith("\\"):
            kw, _, arg = cur.partition(" ")
            out.append((kw.upper(), arg.strip()))
            cur = ""
    return out


def stages(text):
    result, cur = [], None
    for kw, arg in instructions(text):
        if kw == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", arg, re.I)
            cur = {"from": m.group(1), "name": m.group(2), "steps": []}
            result.append(cur)
        elif cur is not None:
            cur["steps"].append((kw, arg))
    return result


def context_files():
    ignore = [l.strip() for l in open(os.path.join(ROOT, ".dockerignore")) if l.strip() and not l.startswith("#")]
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for f in files.decode().split("\0"):
        if not f or not os.path.isfile(os.path.join(ROOT, f)):
            continue
        parts = f.split("/")
        if any(fnmatch.fnmatch("/".join(parts[:i]), pat) for pat in ignore for i in range(1, len(parts) + 1)):
            continue
        yield f


def copy_context(dest):
    for f in context_files():
        os.makedirs(os.path.join(dest, os.path.dirname(f)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, f), os.path.join(dest, f))


def check_recipe(recipe_path):
    """Every target of every workspace member (cargo metadata) has a stub in
    the recipe: the dependency layer builds against the manifests as they
    are (the hand-written stubs this replaced lacked the `watch` bench)."""
    import json
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
                                     cwd=ROOT, check=True, capture_output=True).stdout)
    recipe = json.load(open(recipe_path))["skeleton"]["manifests"]
    stubbed = {(m["relative_path"], os.path.normpath(t["path"])) for m in recipe for t in m.get("targets", [])}
    missing = []
    for pkg in meta["packages"]:
        rel = os.path.relpath(pkg["manifest_path"], ROOT)
        for t in pkg["targets"]:
            path = os.path.relpath(t["src_path"], os.path.dirname(pkg["manifest_path"]))
            if (rel, os.path.normpath(path)) not in stubbed:
                missing.append(f"{rel}: {'/'.join(t['kind'])} `{t['name']}` ({path})")
    if missing:
        sys.exit("docker-replay: the recipe lacks targets of the manifests:\n  " + "\n  ".join(missing))
    print(f"docker-replay: the recipe stubs all {len(stubbed)} targets of {len(recipe)} manifest(s)")


def run(cmd, cwd):
    print(f"+ ({os.path.basename(cwd)}) {cmd}", flush=True)
    subprocess.run(["bash", "-euo", "pipefail", "-c", cmd], cwd=cwd, check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=["plan", "build"], default="build")
    ap.add_argument("--deps-only", action="store_true", help="stop after `cargo chef cook`")
    args = ap.parse_args()
    all_stages = stages(open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8").read())
    named = {s["name"]: s for s in all_stages if s["name"]}
    toolchain = named["chef"]
    workdir = next(a for k, a in toolchain["steps"] if k == "WORKDIR")
    # The toolchain stage: only the pinned cargo-chef matters here.
    install = next(a for k, a in toolchain["steps"] if k == "RUN" and "cargo-chef@" in a)
    want = re.search(r"cargo-chef@(\S+)", install).group(1)
    have = subprocess.run(["cargo", "chef", "--version"], capture_output=True, text=True).stdout.split()
    if have[-1:] != [want]:
        run(install, ROOT)
    cache = os.environ.get("CI_DOCKER_TARGET", os.path.expanduser("~/.cache/codex-k8s-ci-docker-target"))
    os.makedirs(cache, exist_ok=True)
    # A fixed directory (like the image's /src): the stage directories keep
    # their paths from run to run, so the cached target stays valid.
    work = os.environ.get("CI_DOCKER_WORK", os.path.expanduser("~/.cache/codex-k8s-ci-docker-work"))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    dirs = {}
    try:
        for st in all_stages:
            if st["from"] != "chef":
                continue  # the toolchain stage itself and the runtime stage
            d = dirs[st["name"]] = os.path.join(work, st["name"])
            os.makedirs(d)
            # The stage's WORKDIR/target is the cached target directory.
            os.symlink(cache, os.path.join(d, "target"))
            for kw, arg in st["steps"]:
                if kw == "COPY" and arg == ". .":
                    copy_context(d)
                elif kw == "COPY" and arg.startswith("--from="):
                    m = re.match(r"--from=(\S+)\s+(\S+)\s+(\S+)$", arg)
                    src = os.path.join(dirs[m.group(1)], os.path.relpath(m.group(2), workdir))
                    shutil.copy2(src, os.path.join(d, m.group(3)))
                elif kw == "RUN":
                    run(arg, d)
                    if args.deps_only and "cargo chef cook" in arg:
                        print(f"docker-replay: stopped after the dependency layer (--deps-only)")
                        return
                else:
                    sys.exit(f"docker-replay: cannot replay `{kw} {arg}` in stage {st['name']}")
            if os.path.exists(os.path.join(d, "recipe.json")) and st["name"] == "plan":
                check_recipe(os.path.join(d, "recipe.json"))
            if st["name"] == args.stage:
                break
        print(f"docker-replay: stages {', '.join(dirs)} replayed")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
