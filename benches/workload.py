#!/usr/bin/env python3
"""Deterministic benchmark workload: the bundled example scaled to C components
and S slots.

    python3 benches/workload.py --bin target/release/codex-k8s \
        --out /tmp/w1000 --slots 1000 --components 12 --seed 1

Creates OUT/ holding a copy of the bundled example project (services.yaml,
environments/, manifests/, partials/) with

* `environments/ai.yaml`'s `maxSlots` raised to S;
* C components in slot targets: the example's own first, then clones of the
  `users` Go service (`users-c1`, `users-c2`, ...; its text in services.yaml
  with only the name changed) until there are C (C = 12 gives about 25 objects per slot target);
  C smaller than the example's count keeps the example as it is;
* the slots `s-0001` .. `s-<S>` rendered by codex-k8s into OUT/rendered (in
  batches; each batch gets an agent run id drawn from the seed), then the
  plain environments with `render --all`;
* OUT/targets.txt: one `env slot run-id` line per target (`-` for no slot),
  the list the Python baseline renders in one process;
* OUT/workload.json: the parameters and counts.

With `--git` OUT becomes a git repository whose one commit holds all of it
(packed, automatic gc off), ready for a one-slot `render --commit`.

Everything depends only on the arguments: the same seed gives the same tree.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 50


def count_components(services_text: str) -> int:
    """Components (infrastructure + services) of services.yaml that slot
    targets of `ai` can render: those without an `envs:` list leaving `ai` out."""
    body = services_text.split("\nagent:", 1)[0]
    blocks = re.split(r"(?m)^  - name: ", body)[1:]
    count = 0
    for b in blocks:
        envs = re.search(r"(?m)^    envs:\s*\[([^\]]*)\]", b)
        if not envs or "ai" in [e.strip() for e in envs.group(1).split(",")]:
            count += 1
    return count


def users_block(services_text: str) -> str:
    """The text of the example's `users` component, up to the next component."""
    m = re.search(r"(?ms)^  - name: users\n.*?(?=^  - name: |^\S|^\s*$)", services_text)
    if not m:
        raise SystemExit("workload: services.yaml has no `users` component to clone")
    return m.group(0)


def clone_block(template: str, i: int) -> str:
    return template.replace("  - name: users\n", f"  - name: users-c{i}\n", 1)


def make_project(out: str, components: int) -> int:
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    shutil.copy(os.path.join(REPO, "services.yaml"), out)
    for d in ("environments", "manifests", "partials"):
        shutil.copytree(os.path.join(REPO, d), os.path.join(out, d))
    path = os.path.join(out, "services.yaml")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    base = count_components(text)
    extra = max(0, components - base)
    if extra:
        head, tail = text.split("\nagent:", 1)
        block = users_block(text)
        text = head.rstrip("\n") + "\n\n" + "".join(clone_block(block, i + 1) for i in range(extra)) + "\nagent:" + tail
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return base + extra


def raise_max_slots(out: str, slots: int) -> None:
    path = os.path.join(out, "environments", "ai.yaml")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text, n = re.subn(r"(?m)^maxSlots:.*$", f"maxSlots: {max(slots, 1)}", text)
    if not n:
        text += f"\nmaxSlots: {max(slots, 1)}\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def run(cmd, cwd, quiet=True):
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE if quiet else None, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.stderr.write(f"$ {' '.join(cmd[:8])}{' ...' if len(cmd) > 8 else ''}\n{r.stderr}\n")
        raise SystemExit(f"workload: command failed with {r.returncode}")
    return r.stdout


def slot_names(slots: int) -> list[str]:
    width = max(4, len(str(slots)))
    return [f"s-{i:0{width}d}" for i in range(1, slots + 1)]


def generate(binary: str, out: str, slots: int, components: int, seed: int, git: bool) -> dict:
    binary = os.path.abspath(binary)
    out = os.path.abspath(out)
    comps = make_project(out, components)
    raise_max_slots(out, slots)
    rng = random.Random(seed)
    names = slot_names(slots)
    targets = []
    for start in range(0, len(names), BATCH):
        batch = names[start:start + BATCH]
        run_id = f"r{rng.randrange(1, 10**6)}"
        cmd = [binary, "render", "--env", "ai", "--run-id", run_id]
        for s in batch:
            cmd += ["--slot", s]
        run(cmd, out)
        targets += [("ai", s, run_id) for s in batch]
    run([binary, "render", "--all"], out)
    plain = sorted(
        d for d in os.listdir(os.path.join(out, "rendered"))
        if d not in ("ai", "argocd", "flux") and os.path.isfile(os.path.join(out, "rendered", d, "kustomization.yaml"))
    )
    targets = [(e, "-", "-") for e in plain] + targets
    with open(os.path.join(out, "targets.txt"), "w", encoding="utf-8") as f:
        for t in targets:
            f.write(" ".join(t) + "\n")
    files = objects = 0
    size = 0
    for root, _dirs, fs in os.walk(os.path.join(out, "rendered")):
        for name in fs:
            files += 1
            size += os.path.getsize(os.path.join(root, name))
            if name.endswith(".yaml") and name != "kustomization.yaml" and "/argocd" not in root and "/flux" not in root:
                objects += 1
    info = {
        "slots": slots,
        "components": comps,
        "seed": seed,
        "targets": len(targets),
        "files": files,
        "objects": objects,
        "bytes": size,
        "objectsPerSlot": round(objects / max(len(targets), 1), 1),
    }
    with open(os.path.join(out, "workload.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    if git:
        env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com",
                   GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com")
        # Packed like a long-lived repository, and no background `gc --auto`
        # racing with the measurements.
        for cmd in (["git", "init", "-q", "-b", "main"], ["git", "config", "gc.auto", "0"],
                    ["git", "config", "maintenance.auto", "false"], ["git", "add", "-A"],
                    ["git", "commit", "-q", "-m", f"workload S={slots} C={comps} seed={seed}"],
                    ["git", "repack", "-adq"]):
            r = subprocess.run(cmd, cwd=out, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                raise SystemExit(f"workload: {' '.join(cmd)} failed: {r.stderr}")
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default=os.path.join(REPO, "target", "release", "codex-k8s"))
    p.add_argument("--out", required=True)
    p.add_argument("--slots", type=int, default=100)
    p.add_argument("--components", type=int, default=12)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--git", action="store_true", help="make OUT a git repository with one commit of everything")
    a = p.parse_args(argv)
    info = generate(a.bin, a.out, a.slots, a.components, a.seed, a.git)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
