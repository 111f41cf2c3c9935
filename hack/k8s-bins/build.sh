#!/usr/bin/env bash
# Builds (once) the Kubernetes control-plane binaries the k8s test suite runs:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kwok, from
# the Go module proxy, pinned by the committed go.mod/go.sum in this directory.
#
# Output: ${TIDE_K8S_CACHE:-$HOME/.cache/tide-k8s}/<versions>/bin, outside the
# repository. A binary already present is reused, so a warm run does not even
# start the go command. The last line on stdout is the bin directory; progress
# and per-binary build seconds go to stderr.
#
#   hack/k8s-bins/build.sh            # build what is missing, print bin dir
#   hack/k8s-bins/build.sh --print    # print bin dir only, build nothing
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

# Versions come from the committed go.mod files (no `go` invocation needed).
modver() { sed -n "s#^[[:space:]]*\(require[[:space:]]\{1,\}\)\{0,1\}$2 \(v[^ ]*\).*#\2#p" "$1" | head -n1; }
K8S=$(modver "$HERE/go.mod" 'k8s.io/kubernetes')
ETCD=$(modver "$HERE/etcd/go.mod" 'go.etcd.io/etcd/server/v3')
KWOK=$(modver "$HERE/kwok/go.mod" 'sigs.k8s.io/kwok')
[ -n "$K8S" ] && [ -n "$ETCD" ] && [ -n "$KWOK" ] || { echo "build.sh: cannot read pinned versions from go.mod files" >&2; exit 1; }
OUT="${TIDE_K8S_CACHE:-$HOME/.cache/tide-k8s}/k8s-$K8S-etcd-$ETCD-kwok-$KWOK/bin"

BINS=(etcd kwok kube-apiserver kube-controller-manager kube-scheduler kubelet)
missing() { local b; for b in "${BINS[@]}"; do [ -x "$OUT/$b" ] || echo "$b"; done; }
if [ "${1:-}" = --print ] || [ -z "$(missing)" ]; then echo "$OUT"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: go is not installed; it is needed once to build $OUT" >&2; exit 127; }
mkdir -p "$OUT"
# Concurrent callers (two test files, a developer shell) wait for one builder.
exec 9>"$OUT/.build.lock"
flock 9
TODO=$(missing)
[ -n "$TODO" ] || { echo "$OUT"; exit 0; }

export CGO_ENABLED=0            # upstream builds these three statically too
export GOFLAGS="-mod=readonly -buildvcs=false"   # go.sum is committed; constant inputs => cache hits
MAJ=${K8S#v}; MAJ=${MAJ%%.*}; MIN=${K8S#v*.}; MIN=${MIN%%.*}
# What hack/lib/version.sh sets upstream, so /version, `kubectl version` and
# kwok report v1.33.x rather than v0.0.0-master. Constant commit/date keep
# the link cacheable.
X=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  X+=" -X $p.gitVersion=$K8S -X $p.gitMajor=$MAJ -X $p.gitMinor=$MIN -X $p.gitTreeState=clean"
  X+=" -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.buildDate=1970-01-01T00:00:00Z"
done

build() { # name module-dir package [extra ldflags]
  local name=$1 dir=$2 pkg=$3 ldx=${4:-} t0 t1
  grep -qx "$name" <<<"$TODO" || return 0
  echo "build.sh: building $name ($pkg) ..." >&2
  t0=$(date +%s)
  ( cd "$dir" && go build -trimpath -ldflags "-s -w$ldx" -o "$OUT/.$name.tmp" "$pkg" ) >&2
  mv -f "$OUT/.$name.tmp" "$OUT/$name"     # atomic: an interrupted build leaves no half binary
  t1=$(date +%s)
  echo "build.sh: built $name in $((t1 - t0)) s" >&2
}

T0=$(date +%s)
build etcd "$HERE/etcd" go.etcd.io/etcd/server/v3
build kwok "$HERE/kwok" sigs.k8s.io/kwok/cmd/kwok
build kube-apiserver "$HERE" k8s.io/kubernetes/cmd/kube-apiserver "$X"
build kube-controller-manager "$HERE" k8s.io/kubernetes/cmd/kube-controller-manager "$X"
build kube-scheduler "$HERE" k8s.io/kubernetes/cmd/kube-scheduler "$X"
build kubelet "$HERE" k8s.io/kubernetes/cmd/kubelet "$X"
echo "build.sh: all binaries built in $(( $(date +%s) - T0 )) s (go $(go env GOVERSION), GOMAXPROCS=$(nproc))" >&2
"$OUT/kube-apiserver" --version >&2
"$OUT/etcd" --version | head -n1 >&2
echo "$OUT"
