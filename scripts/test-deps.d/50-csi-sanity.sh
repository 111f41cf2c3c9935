#!/usr/bin/env bash
# csi-sanity, the CSI community's conformance suite, for test/csi/sanity.test.ts: built from its Go
# module at a pinned version into ~/.cache/tide-peers/ (no-op when present). Without Go the sanity
# test skips, so this step only says so.
set -euo pipefail
version=v5.6.0
dir="${TIDE_PEERS_DIR:-$HOME/.cache/tide-peers}/csi-sanity-$version"
[ -x "$dir/csi-sanity" ] && exit 0
if ! command -v go >/dev/null 2>&1; then
  echo "50-csi-sanity: go is not installed: the csi-sanity test will be skipped" >&2
  exit 0
fi
mkdir -p "$dir"
# nice: the build shares two cores with whatever else runs.
GOBIN="$dir" GOFLAGS=-buildvcs=false CGO_ENABLED=0 nice -n 10 go install "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$version"
"$dir/csi-sanity" --ginkgo.dry-run >/dev/null 2>&1 || "$dir/csi-sanity" -h >/dev/null 2>&1 || true
