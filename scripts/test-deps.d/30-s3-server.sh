#!/usr/bin/env bash
# The S3-compatible server the ufs tests (and the cache, DataLoad and benchmark tests) run against:
# versitygw, an Apache-2.0 S3 gateway over a POSIX directory, built from its Go module at a pinned
# version into ~/.cache/tide-peers/ (SeaweedFS, the first choice, is not served by the Go module
# proxy). test/helpers/s3-server.ts finds it there or through $TIDE_VERSITYGW.
set -euo pipefail
version=v1.8.0
dir="${TIDE_PEERS_DIR:-$HOME/.cache/tide-peers}/versitygw-$version"
[ -x "$dir/versitygw" ] && exit 0
command -v go >/dev/null || { echo "30-s3-server: go is needed to build versitygw" >&2; exit 1; }
mkdir -p "$dir"
# nice: the build shares two cores with whatever else runs.
GOBIN="$dir" GOFLAGS=-buildvcs=false nice -n 10 go install "github.com/versity/versitygw/cmd/versitygw@$version"
"$dir/versitygw" --version >/dev/null
