#!/usr/bin/env bash
# Prints the commit a pull request's review diff is taken against: the
# merge-base of its base and head commits. `pull_request.base.sha` is the base
# branch's tip when the event fired; once main moves on, diffing against it
# shows main's newer changes as if the pull request reverted them.
#   .github/scripts/merge-base.sh BASE_SHA HEAD_SHA   (needs both in history: fetch-depth 0)
set -euo pipefail
base=$1 head=$2
if ! mb=$(git merge-base "$base" "$head"); then
  echo "no merge-base of ${base:0:7} and ${head:0:7} (unrelated histories, or a shallow checkout)" >&2
  exit 1
fi
echo "$mb"
