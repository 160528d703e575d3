#!/usr/bin/env python3
"""Whole-process benchmarks of codex-k8s against its peers, in one run.

    bash benches/run.sh            # full: S = 100 and 1000 slots, 5 repetitions
    bash benches/run.sh --quick    # S = 100, 3 repetitions

(run.sh installs the tools and builds the release binary, then calls this.)

Every figure is the median wall time over the repetitions (n in the table),
measured around one child process started by this script; the CPU time
(user + sys) and the peak RSS come from the kernel's rusage of that child
(`wait4`), the same numbers `/usr/bin/time -v` prints. Preparation steps
(restoring a tree, resetting a repository, `sync`) are not timed.

What is measured, on workloads made by benches/workload.py (the bundled
example scaled to C = 12 components, about 25 objects per target):

* codex-k8s: cold `render --all` into a tree holding only the slots'
  `.codex-k8s/target.json` files (the slot registry, no manifest), the same
  with RAYON_NUM_THREADS=1, `render --all` again with no input change,
  `render --all --check`, `render --all --force` (re-render everything in
  memory, nothing to write) at 1 and 2 threads; in a git repository holding
  every slot committed: `render --env ai --slot s-0001 --set
  versions.users=X --commit`, then `diff --base HEAD~1 --head HEAD`;
* peers on the same workload: `cp -r` of the rendered tree (the disk's floor),
  `git add -A && git commit` of the same one-slot change (the change itself
  is written untimed by codex-k8s first), `git diff HEAD~1 HEAD` of it,
  `kubectl kustomize` of sampled targets, `helm template` of an equivalent
  chart for sampled slots, the Python baseline (benches/baseline/render.py,
  Jinja2 + PyYAML, one process for a sample of targets, extrapolated per
  target), make-argocd-fly on an equivalent project (one environment per
  slot, a sample of slots, extrapolated per target); see benches/peers.py.

Results: a table on stdout and in benches/results/latest.md, raw figures in
benches/results/latest.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import peers  # noqa: E402
import workload  # noqa: E402

DEVNULL = subprocess.DEVNULL
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


# --------------------------------------------------------------------------
# measuring

GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_once(cmd, cwd, env=None, shell=False, ok=(0,)):
    """Runs one child; returns (wall s, cpu s, max rss KiB).

    Wall and CPU come from `wait4` on the child. The peak RSS comes from GNU
    time wrapped around the command when it is installed: the child of a
    Python process is counted with Python's own pages until it execs, which
    would floor every figure at the size of this script."""
    full_env = dict(os.environ, **(env or {}))
    rss_file = None
    if GNU_TIME:
        fd, rss_file = tempfile.mkstemp(prefix="rss-")
        os.close(fd)
        argv = ["sh", "-c", cmd] if shell else list(cmd)
        cmd, shell = [GNU_TIME, "-q", "-f", "%M", "-o", rss_file] + argv, False
    start = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=full_env, shell=shell, stdout=DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stderr.close()
    rss = ru.ru_maxrss
    if rss_file:
        try:
            with open(rss_file) as f:
                rss = int(f.read().split()[-1])
        except (OSError, ValueError, IndexError):
            pass
        os.unlink(rss_file)
    if p.returncode not in ok:
        shown = cmd if isinstance(cmd, str) else " ".join(cmd)
        raise SystemExit(f"bench: `{shown}` in {cwd} exited {p.returncode}:\n{err.decode(errors='replace')[-2000:]}")
    return wall, ru.ru_utime + ru.ru_stime, rss


def sh(cmd, cwd, env=None):
    r = subprocess.run(cmd, cwd=cwd, shell=isinstance(cmd, str), env=dict(os.environ, **(env or {})),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bench: prepare step `{cmd}` failed:\n{r.stderr[-2000:]}")
    return r.stdout


class Suite:
    def __init__(self, reps, log):
        self.reps = reps
        self.results = {}
        self.log = log
        self.prefix = ""  # `disk.` or `tmpfs.`: where the workload of the measurements lives

    def measure(self, key, cmd, cwd, env=None, shell=False, prepare=None, reps=None, budget=None, ok=(0,),
                per=1, note=""):
        """Median over `reps` runs (fewer once `budget` seconds are spent, at least one).
        `per` divides every figure (per-target costs of a sampled peer)."""
        reps = reps or self.reps
        walls, cpus, rsss = [], [], []
        for i in range(reps):
            if prepare:
                prepare(i)
            c = cmd(i) if callable(cmd) else cmd
            w, t, m = run_once(c, cwd, env=env, shell=shell, ok=ok)
            walls.append(w / per)
            cpus.append(t / per)
            rsss.append(m)
            if budget and sum(walls) * per > budget:
                break
        r = {"wall": statistics.median(walls), "cpu": statistics.median(cpus), "rssKiB": max(rsss),
             "n": len(walls), "walls": [round(w, 5) for w in walls], "per": per, "note": note}
        key = self.prefix + key
        self.results[key] = r
        self.log(f"  {key:<34} {fmt_s(r['wall']):>9}  cpu {fmt_s(r['cpu']):>9}  rss {r['rssKiB'] / 1024:7.1f} MiB"
                 f"  n={r['n']}{'  ' + note if note else ''}")
        return r


    def measure_interleaved(self, specs, reps=None):
        """Several measurements run round-robin, so that a change in the
        machine's load during the run hits them alike (paired comparisons)."""
        reps = reps or self.reps
        samples = {spec["key"]: ([], [], []) for spec in specs}
        for i in range(reps):
            for spec in specs:
                if spec.get("prepare"):
                    spec["prepare"](i)
                w, t, m = run_once(spec["cmd"], spec["cwd"], env=spec.get("env"))
                for lst, v in zip(samples[spec["key"]], (w, t, m)):
                    lst.append(v)
        for spec in specs:
            walls, cpus, rsss = samples[spec["key"]]
            r = {"wall": statistics.median(walls), "cpu": statistics.median(cpus), "rssKiB": max(rsss),
                 "n": len(walls), "walls": [round(w, 5) for w in walls], "per": 1, "note": "interleaved"}
            self.results[self.prefix + spec["key"]] = r
            self.log(f"  {spec['key']:<34} {fmt_s(r['wall']):>9}  cpu {fmt_s(r['cpu']):>9}"
                     f"  rss {r['rssKiB'] / 1024:7.1f} MiB  n={r['n']}  interleaved")


def fmt_s(s):
    if s is None:
        return "-"
    if s >= 10:
        return f"{s:.1f} s"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 0.001:
        return f"{s * 1000:.0f} ms" if s >= 0.1 else f"{s * 1000:.1f} ms"
    return f"{s * 1e6:.0f} µs"


# --------------------------------------------------------------------------
# workloads

def ensure_workload(binary, workdir, slots, seed, regen, log):
    """The generated project (a git repository), reused when its parameters match."""
    path = os.path.join(workdir, f"w{slots}")
    stamp_path = os.path.join(workdir, f"w{slots}.stamp.json")
    stamp = {"seed": seed, "bin": os.path.getmtime(binary), "workload.py": os.path.getmtime(workload.__file__)}
    if not regen and os.path.isfile(stamp_path) and os.path.isdir(os.path.join(path, ".git")):
        with open(stamp_path) as f:
            kept = json.load(f)
        if kept.get("stamp") == stamp:
            log(f"workload S={slots}: reusing {path}")
            return path, kept["info"]
    log(f"workload S={slots}: generating {path} ...")
    t = time.perf_counter()
    info = workload.generate(binary, path, slots, 12, seed, git=True)
    with open(stamp_path, "w") as f:
        json.dump({"stamp": stamp, "info": info}, f, indent=2)
    log(f"workload S={slots}: {info['targets']} targets, {info['objects']} objects, {info['files']} files,"
        f" {info['bytes'] / 1e6:.1f} MB in {time.perf_counter() - t:.0f} s")
    return path, info


def registry_copy(w, dst):
    """dst/: the project files and a rendered/ tree with only the target.json files."""
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    for name in ("services.yaml",):
        shutil.copy(os.path.join(w, name), dst)
    for d in ("environments", "manifests", "partials"):
        shutil.copytree(os.path.join(w, d), os.path.join(dst, d))
    reg = dst + ".registry"
    if os.path.exists(reg):
        shutil.rmtree(reg)
    src = os.path.join(w, "rendered")
    for root, _dirs, files in os.walk(src):
        if "target.json" in files and root.endswith(".codex-k8s"):
            rel = os.path.relpath(root, src)
            os.makedirs(os.path.join(reg, rel))
            shutil.copy(os.path.join(root, "target.json"), os.path.join(reg, rel))
    return reg


# --------------------------------------------------------------------------
# the suite

def bench_size(s: Suite, binary, workdir, slots, seed, regen, full_peers, sample, log, with_git=True):
    w, info = ensure_workload(binary, workdir, slots, seed, regen, log)
    targets = info["targets"]
    tag = f"S{slots}"
    cold = os.path.join(workdir, f"cold{slots}")
    reg = registry_copy(w, cold)
    rendered = os.path.join(cold, "rendered")

    def empty_tree(_i):
        if os.path.exists(rendered):
            shutil.rmtree(rendered)
        shutil.copytree(reg, rendered)
        os.sync()

    log(f"{s.prefix}S={slots} ({targets} targets, {info['objects']} objects):")
    big_reps = min(s.reps, 3) if slots >= 2000 else None
    s.measure(f"{tag}.cold", [binary, "render", "--all"], cold, prepare=empty_tree, reps=big_reps)
    s.measure(f"{tag}.nochange", [binary, "render", "--all"], cold)
    s.measure(f"{tag}.check", [binary, "render", "--all", "--check"], cold)
    force = [binary, "render", "--all", "--force"]
    if slots <= 100:
        s.measure_interleaved([
            {"key": f"{tag}.cold.t1", "cmd": [binary, "render", "--all"], "cwd": cold, "prepare": empty_tree,
             "env": {"RAYON_NUM_THREADS": "1"}},
            {"key": f"{tag}.cold.t2", "cmd": [binary, "render", "--all"], "cwd": cold, "prepare": empty_tree,
             "env": {"RAYON_NUM_THREADS": "2"}}])
    s.measure_interleaved([
        {"key": f"{tag}.force.t1", "cmd": force, "cwd": cold, "env": {"RAYON_NUM_THREADS": "1"}},
        {"key": f"{tag}.force.t2", "cmd": force, "cwd": cold, "env": {"RAYON_NUM_THREADS": "2"}}],
        reps=min(s.reps, 3) if slots > 100 else None)
    copy = os.path.join(workdir, f"copy{slots}")

    def no_copy(_i):
        if os.path.exists(copy):
            shutil.rmtree(copy)
        os.sync()

    s.measure(f"{tag}.cp", ["cp", "-r", rendered, copy], workdir, prepare=no_copy, reps=big_reps)
    no_copy(0)
    # peers, per target (sampled)
    slot_rows = [line.split() for line in open(os.path.join(w, "targets.txt")) if line.strip()]
    slot_names = [r[1] for r in slot_rows if r[1] != "-"]
    step = max(1, len(slot_names) // sample)
    picked = slot_names[::step][:sample]
    kubectl = shutil.which("kubectl")
    if kubectl:
        s.measure(f"{tag}.kustomize", lambda i: [kubectl, "kustomize", os.path.join("rendered", "ai", picked[i])], w,
                  reps=len(picked), note=f"per target, {len(picked)} targets")
    if not with_git:
        return info

    # one-slot change, committed
    base = sh(["git", "rev-parse", "HEAD"], w).strip()

    def reset(_i=0):
        sh(["git", "reset", "-q", "--hard", base], w)
        sh(["git", "clean", "-qfd", "rendered"], w)

    s.measure(f"{tag}.commit",
              lambda i: [binary, "render", "--env", "ai", "--slot", "s-0001", "--set", f"versions.users=9.0.{i}",
                         "--commit"], w, prepare=reset, env=GIT_ENV)
    s.measure(f"{tag}.diff", [binary, "diff", "--base", "HEAD~1", "--head", "HEAD"], w,
              budget=60 if slots > 100 else None)
    s.measure(f"{tag}.gitdiff", ["git", "diff", "HEAD~1", "HEAD"], w)

    def change_uncommitted(i):
        reset()
        sh([binary, "render", "--env", "ai", "--slot", "s-0001", "--set", f"versions.users=9.1.{i}"], w)

    s.measure(f"{tag}.gitcommit", "git add -A && git commit -q -m change", w, shell=True,
              prepare=change_uncommitted, env=GIT_ENV)
    reset()

    if not full_peers:
        return info

    helm = shutil.which("helm")
    if helm:
        chart = os.path.join(workdir, "helm-chart")
        peers.make_helm(w, chart)
        hout = os.path.join(workdir, "helm-out")

        def clear_helm(_i):
            if os.path.exists(hout):
                shutil.rmtree(hout)

        s.measure(f"{tag}.helm",
                  lambda i: [helm, "template", picked[i], chart, "--set", f"slot={picked[i]}",
                             "--output-dir", hout], workdir, prepare=clear_helm, reps=len(picked),
                  note=f"per target, {len(picked)} slots")

    # the Python baseline, one process over a sample of targets
    n_py = min(targets, 100)
    tfile = os.path.join(workdir, f"targets-{slots}-sample.txt")
    with open(tfile, "w") as f:
        f.writelines(" ".join(r) + "\n" for r in slot_rows[:n_py])
    pyout = os.path.join(workdir, "baseline-out")

    def clear_py(_i):
        if os.path.exists(pyout):
            shutil.rmtree(pyout)
        os.sync()

    s.measure(f"{tag}.python", [sys.executable, os.path.join(HERE, "baseline", "render.py"), "--root", w,
                                "--targets", tfile, "--out", pyout], workdir, prepare=clear_py, per=n_py,
              budget=60, note=f"per target, one process over {n_py} targets")
    clear_py(0)

    maf = shutil.which("make-argocd-fly")
    if maf:
        n_maf = min(len(slot_names), max(sample * 2, 40))
        mdir = os.path.join(workdir, "maf")
        peers.make_maf(w, mdir, n_maf)

        def clear_maf(_i):
            for d in ("output", ".tmp"):
                if os.path.exists(os.path.join(mdir, d)):
                    shutil.rmtree(os.path.join(mdir, d))
            os.sync()

        s.measure(f"{tag}.maf", [maf, "--skip-latest-version-check", "--loglevel", "ERROR"], mdir,
                  prepare=clear_maf, per=n_maf, budget=90, note=f"per target, {n_maf} slots (one env each)")
        clear_maf(0)
    return info


# --------------------------------------------------------------------------
# report

def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    disk = "?"
    try:
        out = subprocess.run(["df", "--output=source,fstype", REPO], stdout=subprocess.PIPE, text=True).stdout
        src, fstype = out.strip().splitlines()[-1].split()[:2]
        dev = os.path.basename(src)
        rot = open(f"/sys/block/{dev}/queue/rotational").read().strip() if os.path.exists(
            f"/sys/block/{dev}/queue/rotational") else "?"
        disk = f"{src} ({fstype}, rotational={rot})"
    except Exception:  # noqa: BLE001 - best effort description
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "disk": disk, "memory": mem, "kernel": platform.release()}


def rows_and_targets(res, infos, big, small):
    """The comparison table (peer ÷ codex-k8s) and the issue-6 target checklist."""
    R = res
    B, Sm = f"S{big}", f"S{small}"
    tb = infos[big]["targets"]
    rows = []

    def get(k):
        return R.get(k)

    def add(label, ours_key, peer_label, peer_key, ours_per=1, peer_total=None, note=""):
        o, p = get(ours_key), get(peer_key)
        if not o or not p:
            return
        ow = o["wall"] / ours_per
        pw = p["wall"] if peer_total is None else p["wall"] * peer_total
        rows.append({"what": label, "codex": ow, "codexRss": o["rssKiB"], "codexN": o["n"], "peer": peer_label,
                     "peerWall": pw, "peerN": p["n"], "ratio": pw / ow if ow else None, "note": note or p.get("note", "")})

    add(f"cold `render --all`, {tb} targets", f"{B}.cold", "`cp -r` of the tree (disk floor)", f"{B}.cp")
    add(f"cold `render --all`, {tb} targets", f"{B}.cold", "Python baseline (Jinja2 + PyYAML)", f"{B}.python",
        peer_total=tb, note=f"extrapolated: {R.get(f'{B}.python', {}).get('note', '')}")
    add(f"cold `render --all`, {tb} targets", f"{B}.cold", "make-argocd-fly", f"{B}.maf", peer_total=tb,
        note=f"extrapolated: {R.get(f'{B}.maf', {}).get('note', '')}")
    add("cold render, per target", f"{B}.cold", "`kubectl kustomize` of one target", f"{B}.kustomize", ours_per=tb)
    add("cold render, per target", f"{B}.cold", "`helm template` of one slot", f"{B}.helm", ours_per=tb)
    add("no-change `render --all`", f"{B}.nochange", "cold `render --all`", f"{B}.cold")
    add("`render --all --check`", f"{B}.check", "cold `render --all`", f"{B}.cold")
    add("one-slot `render --commit`", f"{B}.commit", "`git add -A && git commit`", f"{B}.gitcommit")
    add("`diff` of the one-slot commit", f"{B}.diff", "`git diff HEAD~1 HEAD`", f"{B}.gitdiff")
    add(f"`render --all --force`, {tb} targets, 2 threads", f"{B}.force.t2", "same, 1 thread", f"{B}.force.t1")
    if small == big:
        add(f"cold `render --all`, {tb} targets, 2 threads", f"{B}.cold.t2", "same, 1 thread", f"{B}.cold.t1")
    if small != big:
        ts = infos[small]["targets"]
        add(f"cold `render --all`, {ts} targets, 2 threads", f"{Sm}.cold.t2", "same, 1 thread", f"{Sm}.cold.t1")
        add(f"`render --all --force`, {ts} targets, 2 threads", f"{Sm}.force.t2", "same, 1 thread", f"{Sm}.force.t1")
        add(f"cold `render --all`, {ts} targets", f"{Sm}.cold", f"cold `render --all`, {tb} targets", f"{B}.cold",
            note="scaling: ratio = time(S=1000) ÷ time(S=100)")

    def ratio(a, b):
        ra, rb = get(a), get(b)
        return ra["wall"] / rb["wall"] if ra and rb and rb["wall"] else None

    checks = []

    def check(name, value, ok, shown):
        checks.append({"target": name, "value": value, "met": None if value is None else bool(ok), "shown": shown})

    r = ratio(f"{B}.cold", f"{B}.cp")
    check("cold render ≤ 3 × `cp -r`", r, r is not None and r <= 3, f"{r:.2f} ×" if r else "-")
    py = get(f"{B}.python")
    r = (py["wall"] * tb) / get(f"{B}.cold")["wall"] if py and get(f"{B}.cold") else None
    check("cold render ≥ 20 × faster than the Python baseline", r, r is not None and r >= 20,
          f"{r:.1f} ×" if r else "-")
    ku = get(f"{B}.kustomize")
    r = ku["wall"] / (get(f"{B}.cold")["wall"] / tb) if ku and get(f"{B}.cold") else None
    check("per target ≥ 20 × faster than `kubectl kustomize`", r, r is not None and r >= 20,
          f"{r:.0f} ×" if r else "-")
    for k, name in ((f"{B}.nochange", "no-change render ≤ 10 % of cold"), (f"{B}.check", "`--check` ≤ 10 % of cold")):
        r = ratio(k, f"{B}.cold")
        check(name, r, r is not None and r <= 0.10, f"{r * 100:.1f} %" if r is not None else "-")
    c = get(f"{B}.commit")
    check("one-slot commit ≤ 300 ms", c and c["wall"], c and c["wall"] <= 0.3, fmt_s(c and c["wall"]))
    r = ratio(f"{B}.gitcommit", f"{B}.commit")
    check("one-slot commit ≥ 5 × faster than `git add -A && git commit`", r, r is not None and r >= 5,
          f"{r:.1f} ×" if r else "-")
    d = get(f"{B}.diff")
    check("diff of a one-slot change ≤ 300 ms", d and d["wall"], d and d["wall"] <= 0.3, fmt_s(d and d["wall"]))
    ours = [v for k, v in R.items() if k.startswith(B + ".") and k.split(".", 1)[1] in
            ("cold", "nochange", "check", "cold.t1", "cold.t2", "force.t1", "force.t2", "commit", "diff")]
    peak = max((v["rssKiB"] for v in ours), default=None)
    check("peak RSS ≤ 300 MB (every codex-k8s command)", peak, peak is not None and peak * 1024 <= 300e6,
          f"{peak * 1024 / 1e6:.0f} MB" if peak else "-")
    if small != big:
        r = ratio(f"{B}.cold", f"{Sm}.cold")
        check(f"S={big} ≤ 11 × the time of S={small} (cold)", r, r is not None and r <= 11, f"{r:.1f} ×" if r else "-")
    for t1, t2, label in ((f"{B}.cold.t1", f"{B}.cold.t2", f"cold, S={big}"),
                          (f"{B}.force.t1", f"{B}.force.t2", f"--force, S={big}"),
                          (f"{Sm}.cold.t1", f"{Sm}.cold.t2", f"cold, S={small}"),
                          (f"{Sm}.force.t1", f"{Sm}.force.t2", f"--force, S={small}")):
        r = ratio(t1, t2)
        if r is not None:
            check(f"2 threads ≥ 1.6 × faster than 1 ({label})", r, r >= 1.6, f"{r:.2f} ×")
    # de-duplicate (small == big in quick mode)
    seen, uniq = set(), []
    for c in checks:
        if c["target"] not in seen:
            seen.add(c["target"])
            uniq.append(c)
    return rows, uniq


def issue14_table(R, infos, sizes, places):
    """Per place and slot count: cold render against `cp -r`, peak RSS, the
    forced re-render's CPU per target on one thread and the 2-thread speed-up;
    then the issue-14 targets."""
    out = ["| where | slots | targets | cold `render --all` | `cp -r` | cold ÷ `cp -r` | cold per target |"
           " peak RSS (cold / --force) | `--force` CPU per target, 1 thread | `--force` 1 ÷ 2 threads |"
           " `kubectl kustomize` per target |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    checks = []
    for place in places:
        def g(s, what):
            return R.get(f"{place}.S{s}.{what}")
        for s in sizes:
            t = infos[s]["targets"]
            cold, cp, f1, f2, ku = g(s, "cold"), g(s, "cp"), g(s, "force.t1"), g(s, "force.t2"), g(s, "kustomize")
            if not cold:
                continue
            cells = [place, str(s), str(t), fmt_s(cold["wall"]), fmt_s(cp and cp["wall"]),
                     f"{cold['wall'] / cp['wall']:.2f} ×" if cp else "-", fmt_s(cold["wall"] / t)]
            forced = [x["rssKiB"] for x in (f1, f2) if x]
            cells.append(f"{cold['rssKiB'] / 1024:.0f} / " + (f"{max(forced) / 1024:.0f} MiB" if forced else "-"))
            cells.append(fmt_s(f1["cpu"] / t) if f1 else "-")
            cells.append(f"{f1['wall'] / f2['wall']:.2f} ×" if f1 and f2 else "-")
            cells.append(fmt_s(ku["wall"]) if ku else "-")
            out.append("| " + " | ".join(cells) + " |")
        peak = max((v["rssKiB"] for k, v in R.items() if k.startswith(place + ".") and
                    k.split(".")[2] in ("cold", "nochange", "check", "force")), default=None)
        if peak:
            checks.append((f"peak RSS ≤ 100 MiB at every slot count ({place})", f"{peak / 1024:.0f} MiB",
                           peak / 1024 <= 100))
        cold, cp = g(1000, "cold"), g(1000, "cp")
        limit = 1.5 if place == "tmpfs" else 1.1
        if cold and cp:
            r = cold["wall"] / cp["wall"]
            checks.append((f"cold render ≤ {limit} × `cp -r` at 1000 slots ({place})", f"{r:.2f} ×", r <= limit))
        f1 = g(1000, "force.t1")
        if f1:
            ms = f1["cpu"] / infos[1000]["targets"] * 1000
            checks.append((f"`--force` ≤ 1 ms CPU per target, 1 thread, 1000 slots ({place})", f"{ms:.2f} ms",
                           ms <= 1))
        a, b = g(200, "cold"), g(2000, "cold")
        if a and b:
            r = (b["wall"] / infos[2000]["targets"]) / (a["wall"] / infos[200]["targets"])
            checks.append((f"per-target cold time, 2000 ÷ 200 slots ≤ 1.1 ({place})", f"{r:.2f} ×", r <= 1.1))
        f1, f2 = g(1000, "force.t1"), g(1000, "force.t2")
        if f1 and f2:
            r = f1["wall"] / f2["wall"]
            checks.append((f"2 threads ≥ 1.8 × 1 thread, `--force`, 1000 slots ({place})", f"{r:.2f} ×", r >= 1.8))
    out += ["", "| issue-14 target | measured | met |", "|---|---:|:---:|"]
    out += [f"| {name} | {shown} | {'yes' if ok else 'NO'} |" for name, shown, ok in checks]
    return "\n".join(out) + "\n"


def render_markdown(rows, checks, res, infos, meta):
    out = []
    out.append(f"Run {meta['date']} · {meta['mode']} · machine: {meta['machine']['nproc']} × {meta['machine']['cpu']},"
               f" {meta['machine']['memory']} RAM, {meta['machine']['disk']} · load average before/after:"
               f" {meta['loadBefore']} / {meta['loadAfter']} · codex-k8s {meta['commit']}")
    out.append("")
    for s, info in sorted(infos.items()):
        out.append(f"- workload S={s}: {info['targets']} targets ({info['components']} components),"
                   f" {info['objects']} objects, {info['files']} files, {info['bytes'] / 1e6:.1f} MB, seed {info['seed']}")
    out.append("")
    out.append("| measurement | codex-k8s | peak RSS | compared with | its time | peer ÷ codex-k8s | n (ours/peer) | note |")
    out.append("|---|---:|---:|---|---:|---:|---|---|")
    for r in rows:
        out.append(f"| {r['what']} | {fmt_s(r['codex'])} | {r['codexRss'] / 1024:.0f} MiB | {r['peer']} |"
                   f" {fmt_s(r['peerWall'])} | **{r['ratio']:.2f}** | {r['codexN']}/{r['peerN']} | {r['note']} |")
    out.append("")
    out.append("| issue-6 target | measured | met |")
    out.append("|---|---:|:---:|")
    for c in checks:
        out.append(f"| {c['target']} | {c['shown']} | {'yes' if c['met'] else ('-' if c['met'] is None else 'NO')} |")
    out.append("")
    out.append("<details><summary>every measurement (median wall, CPU = user + sys, max RSS)</summary>")
    out.append("")
    out.append("| key | wall | CPU | max RSS | n | note |")
    out.append("|---|---:|---:|---:|---:|---|")
    for k, v in res.items():
        out.append(f"| {k} | {fmt_s(v['wall'])} | {fmt_s(v['cpu'])} | {v['rssKiB'] / 1024:.0f} MiB | {v['n']} | {v['note']} |")
    out.append("")
    out.append("</details>")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="S = 100 only, 3 repetitions")
    p.add_argument("--slots", default=None, help="comma-separated slot counts (default 100,1000)")
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 5, --quick 3)")
    p.add_argument("--sample", type=int, default=20, help="targets sampled for per-target peers")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bin", default=os.path.join(REPO, "target", "release", "codex-k8s"))
    p.add_argument("--workdir", default=os.environ.get("CODEX_K8S_BENCH_DIR", "/tmp/codex-k8s-bench"))
    p.add_argument("--regen", action="store_true", help="regenerate the workloads even when reusable")
    p.add_argument("--results", default=os.path.join(HERE, "results"))
    p.add_argument("--tmpfs", default="/dev/shm/codex-k8s-bench" if os.path.isdir("/dev/shm") else "",
                   help="a directory on tmpfs: every measurement is repeated there (empty: disk only)")
    p.add_argument("--big", action="store_true", help="add the 5000-slot case (long: about an hour here)")
    a = p.parse_args(argv)
    sizes = [int(x) for x in (a.slots or ("200" if a.quick else "200,1000,2000")).split(",")]
    if a.big and 5000 not in sizes:
        sizes.append(5000)
    reps = a.reps or (3 if a.quick else 5)
    os.makedirs(a.workdir, exist_ok=True)
    # the binary under test is copied so that a concurrent `cargo build` cannot swap it mid-run
    binary = os.path.join(a.workdir, "codex-k8s")
    if not os.path.exists(binary) or os.path.getmtime(binary) < os.path.getmtime(a.bin):
        shutil.copy2(a.bin, binary)
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:6.0f}s] {msg}", flush=True)

    load_before = " ".join(open("/proc/loadavg").read().split()[:3])
    s = Suite(reps, log)
    infos = {}
    big = max(sizes)
    git_size = 1000 if 1000 in sizes else big
    places = [("disk", a.workdir)] + ([("tmpfs", a.tmpfs)] if a.tmpfs else [])
    for place, workdir in places:
        s.prefix = place + "."
        os.makedirs(workdir, exist_ok=True)
        place_bin = os.path.join(workdir, "codex-k8s")
        if place_bin != binary:
            shutil.copy2(binary, place_bin)
        for n in sorted(sizes):
            infos[n] = bench_size(s, place_bin, workdir, n, a.seed, a.regen, full_peers=(place == "disk" and n == big),
                                  sample=a.sample, log=log, with_git=(place == "disk" and n == git_size))
    load_after = " ".join(open("/proc/loadavg").read().split()[:3])
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=DEVNULL, text=True).stdout.strip() or "?"
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "mode": f"{'quick' if a.quick else 'full'}, S = {', '.join(map(str, sizes))}, {reps} repetitions",
            "machine": machine(), "loadBefore": load_before, "loadAfter": load_after, "commit": commit,
            "seconds": round(time.perf_counter() - t0)}
    md = ""
    for place, _ in places:
        res = {k[len(place) + 1:]: v for k, v in s.results.items() if k.startswith(place + ".")}
        rows, checks = rows_and_targets(res, infos, big, min(sizes))
        md += f"### {place}\n\n" + render_markdown(rows, checks, res, infos, meta) + "\n"
    md = issue14_table(s.results, infos, sorted(sizes), [p for p, _ in places]) + "\n" + md
    os.makedirs(a.results, exist_ok=True)
    with open(os.path.join(a.results, "latest.md"), "w") as f:
        f.write(md)
    with open(os.path.join(a.results, "latest.json"), "w") as f:
        json.dump({"meta": meta, "workloads": infos, "results": s.results, "comparisons": rows, "targets": checks},
                  f, indent=2, default=str)
        f.write("\n")
    print()
    print(md)
    log(f"done in {meta['seconds']} s; written to {os.path.relpath(a.results, REPO)}/latest.md and latest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
