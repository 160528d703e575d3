#!/usr/bin/env python3
"""Equivalent projects for the peer tools, built from a workload's rendered tree.

make-argocd-fly and Helm cannot read services.yaml, the partial macros or the
codex-k8s helpers (`nindent`, `env_or`, overlays, labels, waves, policy), so
their projects are made from what codex-k8s rendered for one slot: every
object file becomes a template in which the slot name and the agent run id
are variables. Rendering that project for slot X gives the same files, with
the same bytes per object, as codex-k8s gives for X (the hashed Job names
aside). It is *less* templating work than the real templates (no macros, no
overlays, no policy), so ratios against these peers understate codex-k8s.

    python3 benches/peers.py maf  --workload W --out DIR --slots 100
    python3 benches/peers.py helm --workload W --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys


def slot_sources(workload: str, slot: str):
    """(stage dir, component, file name, text) of every object file of one slot."""
    root = os.path.join(workload, "rendered", "ai", slot)
    with open(os.path.join(root, ".codex-k8s", "target.json"), encoding="utf-8") as f:
        meta = json.load(f)
    out = []
    for stage in sorted(os.listdir(root)):
        sdir = os.path.join(root, stage)
        if stage.startswith(".") or not os.path.isdir(sdir):
            continue
        for comp in sorted(os.listdir(sdir)):
            cdir = os.path.join(sdir, comp)
            if not os.path.isdir(cdir):
                continue
            for name in sorted(os.listdir(cdir)):
                with open(os.path.join(cdir, name), encoding="utf-8") as f:
                    out.append((stage, comp, name, f.read()))
    return meta, out


def templated(text: str, slot: str, run_id: str | None, slot_var: str, run_var: str) -> str:
    if run_id:
        text = text.replace(run_id, run_var)
    return text.replace(slot, slot_var)


def slots_of(workload: str, count: int | None):
    with open(os.path.join(workload, "targets.txt"), encoding="utf-8") as f:
        rows = [line.split() for line in f if line.strip()]
    rows = [(s, r) for e, s, r in rows if s != "-"]
    return rows[:count] if count else rows


def make_maf(workload: str, out: str, count: int | None) -> int:
    """A make-argocd-fly project: one environment per slot, one app per component."""
    slots = slots_of(workload, count)
    first, run_id = slots[0]
    meta, files = slot_sources(workload, first)
    if os.path.exists(out):
        shutil.rmtree(out)
    apps = []
    for stage, comp, name, text in files:
        app = f"{stage}/{comp}"
        if app not in apps:
            apps.append(app)
        path = os.path.join(out, "source", stage, comp, name + ".j2")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(templated(text, first, meta.get("runId"), "{{ slot }}", "{{ run_id }}"))
    os.makedirs(os.path.join(out, "config"))
    lines = ["envs:"]
    for slot, rid in slots:
        lines.append(f"  {slot}:")
        lines.append("    apps:")
        lines += [f"      {a}: {{}}" for a in apps]
        lines.append(f"    vars: {{slot: {slot}, run_id: {rid}}}")
    with open(os.path.join(out, "config", "config.yml"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return len(slots)


def make_helm(workload: str, out: str) -> int:
    """A Helm chart rendering one slot: `helm template s chart --set slot=S,runId=R`."""
    slots = slots_of(workload, 1)
    first, _ = slots[0]
    meta, files = slot_sources(workload, first)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "templates"))
    with open(os.path.join(out, "Chart.yaml"), "w", encoding="utf-8") as f:
        f.write("apiVersion: v2\nname: shop-slot\nversion: 0.1.0\n")
    with open(os.path.join(out, "values.yaml"), "w", encoding="utf-8") as f:
        f.write(f"slot: {first}\nrunId: {meta.get('runId') or 'r1'}\n")
    for stage, comp, name, text in files:
        path = os.path.join(out, "templates", f"{stage}-{comp}-{name}")
        with open(path, "w", encoding="utf-8") as f:
            f.write(templated(text, first, meta.get("runId"), "{{ .Values.slot }}", "{{ .Values.runId }}"))
    return len(files)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=["maf", "helm"])
    p.add_argument("--workload", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--slots", type=int, help="maf: the first N slots only")
    a = p.parse_args(argv)
    n = make_maf(a.workload, a.out, a.slots) if a.kind == "maf" else make_helm(a.workload, a.out)
    print(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
