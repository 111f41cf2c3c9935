#!/usr/bin/env bash
# Helm, for `helm lint` and `helm template` of charts/tide in test/k8s/helm.test.ts: built from its Go
# module at a pinned version into ~/.cache/tide-peers/ (no-op when present). Without Go the chart
# tests skip, so this step only says so.
set -euo pipefail
version=v3.21.4
dir="${TIDE_PEERS_DIR:-$HOME/.cache/tide-peers}/helm-$version"
[ -x "$dir/helm" ] && exit 0
if ! command -v go >/dev/null 2>&1; then
  echo "45-helm: go is not installed: the Helm chart tests will be skipped" >&2
  exit 0
fi
mkdir -p "$dir"
# nice: the build shares two cores with whatever else runs.
GOBIN="$dir" GOFLAGS=-buildvcs=false CGO_ENABLED=0 nice -n 10 go install "helm.sh/helm/v3/cmd/helm@$version"
"$dir/helm" version --short >/dev/null
