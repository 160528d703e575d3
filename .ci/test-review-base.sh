#!/usr/bin/env bash
# The review diff is taken against the merge-base (slot.yml, job `review`):
# a pull request branched from main, main moves on (users 1.4.0 -> 1.5.0), the
# pull request changes orders (1.2.3 -> 1.2.4). Against the merge-base the
# diff shows the pull request's change only; against main's tip (the event's
# `base.sha`) it would also show main's change reverted.
#   .ci/test-review-base.sh PATH_TO_CODEX_K8S
set -euo pipefail
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
git clone -q "$root" "$work/repo" && cd "$work/repo"
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.test GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.test
git checkout -q -B main
git checkout -q -b pr
sed -i 's/^  orders: "1.2.3"/  orders: "1.2.4"/' services.yaml && git commit -qam "pr: orders 1.2.4"
git checkout -q main
sed -i 's/^  users: "1.4.0"/  users: "1.5.0"/' services.yaml && git commit -qam "main: users 1.5.0"
base_sha=$(git rev-parse main) head_sha=$(git rev-parse pr)
git checkout -q pr
mb=$("$root/.github/scripts/merge-base.sh" "$base_sha" "$head_sha")
[ "$mb" = "$(git rev-parse pr~1)" ] || { echo "merge-base: got $mb"; exit 1; }
"$bin" diff --source-base "$mb" --format markdown > good.md
"$bin" diff --source-base "$base_sha" --format markdown > tip.md
grep -q 'orders:1.2.4' good.md || { echo "the pull request's own change is missing:"; cat good.md; exit 1; }
if grep -q 'users:1.5.0' good.md; then echo "main's later change shows in the review diff:"; cat good.md; exit 1; fi
grep -q 'users:1.5.0' tip.md || { echo "the fixture does not reproduce the base.sha problem"; exit 1; }
echo "review diff against the merge-base: the pull request's change only ($(grep -c '<details>' good.md) object(s); against base.sha: $(grep -c '<details>' tip.md))"
