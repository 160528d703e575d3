#!/usr/bin/env python3
"""The hand-written baseline that codex-k8s is benchmarked against.

A straightforward renderer of the same inventory (services.yaml plus
environments/*.yaml) and the same templates for ONE target, written the way a
platform team would script it with Jinja2 and PyYAML and nothing else:

    python3 benches/baseline/render.py --root . --env ai --slot pr-1 --out /tmp/x
    kubectl kustomize /tmp/x

or many targets in one process (services.yaml, the environments and the
compiled templates are loaded once), as the benchmark runner does:

    python3 benches/baseline/render.py --root DIR --targets DIR/targets.txt --out /tmp/tree

It follows the codex-k8s contract closely enough to produce the same objects
(same files, labels, waves, overlays), but it does not validate the inventory
beyond what it needs and reports errors as Python exceptions. Byte-for-byte equality with codex-k8s is not a goal: the hashed
Job-name suffix and YAML formatting may differ.
"""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import glob
import hashlib
import json
import os
import re
import shutil
import sys

import jinja2
import yaml
from jinja2 import nodes

DEFAULT_STAGES = ["stateful", "migrations", "internal", "edge", "frontend"]
MANAGED_BY = "codex-k8s"

# Kinds that are not namespaced (no metadata.namespace; refused in slot envs).
CLUSTER_SCOPED = {
    "Namespace", "Node", "PersistentVolume", "StorageClass", "ClusterRole",
    "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "IngressClass", "RuntimeClass", "CSIDriver", "CSINode", "VolumeAttachment",
    "APIService", "ClusterIssuer", "ClusterSecretStore",
}


class RenderError(Exception):
    pass


# --------------------------------------------------------------------------
# inventory

def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def deep_merge(base, override):
    """Maps merge recursively, everything else (lists included) replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def load_environments(root, stack):
    envs = dict(stack.get("environments") or {})
    for path in sorted(glob.glob(os.path.join(root, "environments", "*.yaml"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if name in envs:
            raise RenderError(f"environment {name} defined inline and in {path}")
        envs[name] = load_yaml(path) or {}
    return envs


def resolve_environment(envs, name, seen=()):
    if name not in envs:
        raise RenderError(f"unknown environment {name!r}")
    if name in seen:
        raise RenderError("environment inheritance cycle: " + " -> ".join(seen + (name,)))
    env = envs[name]
    parent = env.get("from")
    merged = deep_merge(resolve_environment(envs, parent, seen + (name,)), env) if parent else copy.deepcopy(env)
    merged.pop("from", None)
    return merged


# --------------------------------------------------------------------------
# template engine

def nindent(value, width):
    pad = " " * width
    return "\n" + pad + str(value).replace("\n", "\n" + pad)


def to_yaml(value):
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def b64encode(value):
    return base64.b64encode(str(value).encode()).decode()


def sha256(value):
    return hashlib.sha256(str(value).encode()).hexdigest()


def dns_label(value):
    label = re.sub(r"[^a-z0-9-]+", "-", str(value).lower()).strip("-")
    return label[:63].rstrip("-")


def make_engine(root, stack):
    engine = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    templates = stack.get("templates") or {}
    allowed = templates.get("env") or []

    def env_or(name, default):
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed):
            raise RenderError(f"env_or: {name} is not allowed by templates.env {allowed}")
        return os.environ.get(name, default)

    def required(value, message):
        if value is None or isinstance(value, jinja2.Undefined) or value == "":
            raise RenderError(message)
        return value

    def fail(message):
        raise RenderError(message)

    macros = {}

    def include(name, *args, **kwargs):
        if name not in macros:
            raise RenderError(f"include: no partial macro named {name!r}")
        return str(macros[name](*args, **kwargs))

    engine.globals.update(env_or=env_or, required=required, fail=fail, include=include)
    engine.filters.update(nindent=nindent, to_yaml=to_yaml, b64encode=b64encode,
                          sha256=sha256, dns_label=dns_label)

    # Every top-level macro of every partial is a global. Jinja2 resolves the
    # free names of a module when it is created, so first register a forwarding
    # stub per macro name, then build the modules.
    partial_files = []
    for pattern in templates.get("partials") or ["partials/**/*.j2"]:
        partial_files += glob.glob(os.path.join(root, pattern), recursive=True)
    partial_files = sorted({os.path.relpath(p, root) for p in partial_files})
    owners = {}
    for rel in partial_files:
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            tree = engine.parse(f.read(), name=rel)
        for node in tree.body:
            if isinstance(node, nodes.Macro):
                if node.name in owners:
                    raise RenderError(f"macro {node.name} defined in {owners[node.name]} and {rel}:{node.lineno}")
                if node.name in engine.globals:
                    raise RenderError(f"macro {node.name} ({rel}) shadows a helper")
                owners[node.name] = f"{rel}:{node.lineno}"
                engine.globals[node.name] = (lambda n: lambda *a, **k: macros[n](*a, **k))(node.name)
    for rel in partial_files:
        module = engine.get_template(rel).module
        for name in owners:
            if owners[name].startswith(rel + ":"):
                macros[name] = getattr(module, name)
    return engine


def render_string(engine, source, context):
    return engine.from_string(source).render(context)


def render_strings(engine, value, context):
    """Render every string inside a nested structure (overlays)."""
    if isinstance(value, str):
        return render_string(engine, value, context)
    if isinstance(value, list):
        return [render_strings(engine, v, context) for v in value]
    if isinstance(value, dict):
        return {k: render_strings(engine, v, context) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------
# rendering

def pod_specs(obj):
    """The pod specs inside a workload object."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        return [spec]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [spec.get("template", {}).get("spec", {})]
    if kind == "CronJob":
        return [spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})]
    return []


def apply_overlay(objects, overlay):
    drop = set(overlay.get("dropKinds") or [])
    objects = [o for o in objects if o.get("kind") not in drop]
    for obj in objects:
        for pod in pod_specs(obj):
            for mount in overlay.get("pvcMounts") or []:
                volume = dns_label(mount["claimName"])
                volumes = pod.setdefault("volumes", [])
                if not any(v.get("name") == volume for v in volumes):
                    volumes.append({"name": volume, "persistentVolumeClaim": {"claimName": mount["claimName"]}})
                for container in pod.get("containers", []):
                    entry = {"name": volume, "mountPath": mount["mountPath"]}
                    if mount.get("subPath"):
                        entry["subPath"] = mount["subPath"]
                    if mount.get("readOnly"):
                        entry["readOnly"] = True
                    container.setdefault("volumeMounts", []).append(entry)
            for name, value in sorted((overlay.get("env") or {}).items()):
                for container in pod.get("containers", []):
                    env = container.setdefault("env", [])
                    for item in env:
                        if item.get("name") == name:
                            item.pop("valueFrom", None)
                            item["value"] = str(value)
                            break
                    else:
                        env.append({"name": name, "value": str(value)})
    return objects


def stage_depths(components):
    """Depth of each component's dependsOn chain inside its own stage."""
    by_name = {c["name"]: c for c in components}
    depth = {}

    def visit(name, path=()):
        if name in depth:
            return depth[name]
        if name in path:
            raise RenderError("dependency cycle: " + " -> ".join(path + (name,)))
        comp = by_name[name]
        d = 0
        for dep in comp.get("dependsOn") or []:
            if dep in by_name and by_name[dep]["stage"] == comp["stage"]:
                d = max(d, visit(dep, path + (name,)) + 1)
        depth[name] = d
        return d

    for c in components:
        visit(c["name"])
    return depth


def render_manifests(engine, root, patterns, context, label):
    objects = []
    files = []
    for pattern in patterns:
        matched = sorted(glob.glob(os.path.join(root, pattern), recursive=True))
        if not matched:
            raise RenderError(f"{label}: {pattern} matches nothing")
        files += [os.path.relpath(p, root) for p in matched]
    for rel in files:
        text = engine.get_template(rel).render(context)
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as e:
            numbered = "\n".join(f"{i + 1:4} | {line}" for i, line in enumerate(text.splitlines()))
            raise RenderError(f"{rel}: rendered output is not YAML: {e}\n{numbered}") from e
        objects += [d for d in docs if d]
    return objects


_PROJECTS = {}


def load_project(root):
    """services.yaml, the environments and the engine; loaded once per process."""
    if root not in _PROJECTS:
        stack = load_yaml(os.path.join(root, "services.yaml"))
        _PROJECTS[root] = (stack, load_environments(root, stack), make_engine(root, stack))
    return _PROJECTS[root]


def render_target(root, env_name, slot, run_id):
    stack, envs, engine = load_project(root)
    project = stack["project"]
    stages = stack.get("stages") or DEFAULT_STAGES
    env = resolve_environment(envs, env_name)
    if env.get("slots") and not slot:
        raise RenderError(f"{env_name} is a slot environment: pass --slot")
    if slot and not env.get("slots"):
        raise RenderError(f"{env_name} is not a slot environment")

    ctx = {
        "project": project,
        "env": env_name,
        "slot": slot,
        "versions": stack.get("versions") or {},
        "vars": env.get("vars") or {},
        "tls": env.get("tls"),
        "run": None,
        "component": None,
    }
    ctx["namespace"] = render_string(engine, env["namespace"], ctx)
    ctx["host"] = render_string(engine, env["domain"], ctx) if env.get("domain") else None
    ctx["images"] = {
        name: render_string(engine, image["repository"], ctx) + ":" + render_string(engine, image["tag"], ctx)
        for name, image in (stack.get("images") or {}).items()
    }

    components = []
    for section, default_stage in (("infrastructure", stages[0]), ("services", "internal")):
        for comp in stack.get(section) or []:
            comp = dict(comp, stage=comp.get("stage", default_stage))
            if "envs" in comp and env_name not in comp["envs"]:
                continue
            if "when" in comp:
                result = engine.compile_expression(comp["when"], undefined_to_none=False)(**ctx)
                if not isinstance(result, bool):
                    raise RenderError(f"{comp['name']}: when must yield a boolean, got {result!r}")
                if not result:
                    continue
            components.append(comp)
    depth = stage_depths(components)
    order = {c["name"]: i for i, c in enumerate(components)}
    components.sort(key=lambda c: (stages.index(c["stage"]), depth[c["name"]], order[c["name"]]))

    common_labels = {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": project,
        "codex-k8s.io/env": env_name,
    }
    if slot:
        common_labels["codex-k8s.io/slot"] = slot

    placed = []  # (stage dir, component, object)

    def finish(objects, comp_name, stage, wave, stage_dir, agent=False):
        for obj in objects:
            meta = obj.setdefault("metadata", {})
            kind = obj.get("kind")
            if kind == "Job" and not agent:
                digest = hashlib.sha256(json.dumps(obj.get("spec"), sort_keys=True,
                                                   separators=(",", ":")).encode()).hexdigest()
                meta["name"] = f"{meta['name']}-{digest[:8]}"
            if kind in CLUSTER_SCOPED:
                if slot and kind != "Namespace":
                    raise RenderError(f"{comp_name}: cluster-scoped {kind} in slot environment")
            else:
                if slot and meta.get("namespace") not in (None, ctx["namespace"]):
                    raise RenderError(f"{comp_name}: {kind}/{meta['name']} sets namespace {meta['namespace']}")
                meta["namespace"] = ctx["namespace"]
            labels = meta.setdefault("labels", {})
            labels.update(common_labels)
            labels["codex-k8s.io/component"] = comp_name
            labels["codex-k8s.io/stage"] = stage
            if agent:
                labels["codex-k8s.io/role"] = "agent"
            meta.setdefault("annotations", {})["argocd.argoproj.io/sync-wave"] = str(wave)
            # metadata keys in the order name, namespace, then the template's own
            ordered = {k: meta[k] for k in ("name", "namespace") if k in meta}
            ordered.update((k, v) for k, v in meta.items() if k not in ordered)
            obj["metadata"] = ordered
            placed.append((stage_dir, comp_name, obj))

    for comp in components:
        stage_index = stages.index(comp["stage"])
        wave = 10 * stage_index + depth[comp["name"]]
        image = comp.get("image")
        context = dict(ctx, component={
            "name": comp["name"],
            "stage": comp["stage"],
            "wave": wave,
            "image": ctx["images"][image] if image else None,
            "dependsOn": list(comp.get("dependsOn") or []),
        })
        objects = render_manifests(engine, root, comp["manifests"], context, comp["name"])
        overlay = (comp.get("overlays") or {}).get(env_name)
        if overlay:
            objects = apply_overlay(objects, render_strings(engine, overlay, context))
        finish(objects, comp["name"], comp["stage"], wave, f"{10 * stage_index:02d}-{comp['stage']}")

    if not any(o.get("kind") == "Namespace" for _, _, o in placed):
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ctx["namespace"]}}
        finish([namespace], "namespace", stages[0], 0, f"00-{stages[0]}")
        placed.insert(0, placed.pop())

    agent = stack.get("agent")
    if agent and env_name in (agent.get("envs") or []):
        wave = 10 * len(stages)
        image = agent.get("image")
        context = dict(ctx, run={"id": run_id}, component={
            "name": "agent", "stage": "agent", "wave": wave,
            "image": ctx["images"][image] if image else None, "dependsOn": [],
        })
        objects = render_manifests(engine, root, agent["manifests"], context, "agent")
        finish(objects, "agent", "agent", wave, f"{wave:02d}-agent", agent=True)

    # policy
    seen = set()
    for _, comp_name, obj in placed:
        meta = obj["metadata"]
        key = (obj.get("apiVersion"), obj.get("kind"), meta.get("namespace"), meta.get("name"))
        if key in seen:
            raise RenderError(f"{comp_name}: duplicate object {key}")
        seen.add(key)
        if obj.get("kind") == "Secret" and (obj.get("data") or obj.get("stringData")):
            raise RenderError(f"{comp_name}: Secret/{meta['name']} carries data; use an ExternalSecret")
        if obj.get("kind") == "Job" and "ttlSecondsAfterFinished" in (obj.get("spec") or {}):
            raise RenderError(f"{comp_name}: Job/{meta['name']} sets ttlSecondsAfterFinished")
    return ctx, placed


def write_tree(out, ctx, placed, env_name, slot, run_id):
    if os.path.isdir(out):
        shutil.rmtree(out)
    stage_files = {}
    for stage_dir, comp_name, obj in placed:
        rel = f"{comp_name}/{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        path = os.path.join(out, stage_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(obj, f, sort_keys=False, default_flow_style=False)
        stage_files.setdefault(stage_dir, []).append(rel)

    def kustomization(path, resources):
        with open(os.path.join(path, "kustomization.yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                            "resources": resources}, f, sort_keys=False)

    for stage_dir, files in stage_files.items():
        kustomization(os.path.join(out, stage_dir), sorted(files))
    kustomization(out, sorted(stage_files))
    if slot:
        os.makedirs(os.path.join(out, ".codex-k8s"), exist_ok=True)
        with open(os.path.join(out, ".codex-k8s", "target.json"), "w", encoding="utf-8") as f:
            json.dump({"project": ctx["project"], "env": env_name, "slot": slot,
                       "namespace": ctx["namespace"], "host": ctx["host"], "runId": run_id},
                      f, indent=2, sort_keys=True)
            f.write("\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="directory holding services.yaml")
    parser.add_argument("--env")
    parser.add_argument("--slot")
    parser.add_argument("--run-id", default="1", help="agent run id (slot environments)")
    parser.add_argument("--out", required=True, help="target directory (replaced); the tree root with --targets")
    parser.add_argument("--targets", help="render many targets in one process (benchmarks): a file of "
                        "`env slot run-id` lines, `-` for none; each goes to OUT/env or OUT/env/slot")
    args = parser.parse_args(argv)
    root = os.path.abspath(args.root)
    if args.targets:
        with open(args.targets, encoding="utf-8") as f:
            jobs = [line.split() for line in f if line.strip()]
        jobs = [(e, None if s == "-" else s, None if r == "-" else r) for e, s, r in jobs]
    elif args.env:
        jobs = [(args.env, args.slot, args.run_id)]
    else:
        parser.error("pass --env or --targets")
    total = 0
    try:
        for env_name, slot, run_id in jobs:
            out = os.path.join(args.out, env_name, slot) if args.targets and slot else (
                os.path.join(args.out, env_name) if args.targets else args.out)
            ctx, placed = render_target(root, env_name, slot, run_id or "1")
            write_tree(out, ctx, placed, env_name, slot, run_id or "1")
            total += len(placed)
    except (RenderError, jinja2.TemplateError, yaml.YAMLError, OSError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{total} objects in {len(jobs)} targets -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
