#!/usr/bin/env bash
# Regenerates the pinned wrapper modules. Run only when bumping a version, then
# commit go.mod/go.sum of hack/k8s-bins, hack/k8s-bins/etcd and hack/k8s-bins/kwok.
#
#   hack/k8s-bins/gen-gomod.sh [k8s-version] [etcd-version] [kwok-version]
#
# k8s.io/kubernetes maps its staging modules (k8s.io/api, …) to ./staging with
# directory replaces and requires them at v0.0.0, so `go install …@v1.33.x` is
# refused (golang/go#44840). A consumer must pin every staging module itself:
# k8s.io/X => k8s.io/X v0.<minor>.<patch>. The list is read from the kubernetes
# go.mod of the pinned version rather than hand-maintained.
set -euo pipefail
K=${1:-1.33.13}; E=${2:-3.5.35}; W=${3:-0.8.0}
S="v0.${K#1.}"
cd "$(dirname "$0")"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

# k8s: download the module's go.mod outside any module on purpose.
( cd "$(mktemp -d)" && go mod download "k8s.io/kubernetes@v$K" )
KMOD="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$K.mod"
rm -f go.mod go.sum
go mod init tide-k8s-bins >/dev/null 2>&1
go mod edit -go=1.26 -require="k8s.io/kubernetes@v$K"
for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*#\1#p' "$KMOD"); do
  go mod edit -replace="$m=$m@$S"
done
# godebug applies only to the main module: copy upstream's, else Go 1.26 defaults
# (TLS/x509 behaviour) would apply to binaries built for go1.24.
gd=$(sed -n 's/^godebug default=\(.*\)$/\1/p' "$KMOD")
[ -z "$gd" ] || go mod edit -godebug="default=$gd"
go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K" \
  "k8s.io/kubernetes/cmd/kube-controller-manager@v$K" "k8s.io/kubernetes/cmd/kube-scheduler@v$K"
go mod tidy

# etcd: server/v3 has directory replaces too, hence its own wrapper module.
( cd etcd && rm -f go.mod go.sum && go mod init tide-k8s-bins/etcd >/dev/null 2>&1 &&
  go mod edit -go=1.26 && go get -tool "go.etcd.io/etcd/server/v3@v$E" && go mod tidy )

# kwok has no replaces; a wrapper still gives us a committed go.sum.
( cd kwok && rm -f go.mod go.sum && go mod init tide-k8s-bins/kwok >/dev/null 2>&1 &&
  go mod edit -go=1.26 && go get -tool "sigs.k8s.io/kwok/cmd/kwok@v$W" && go mod tidy )
