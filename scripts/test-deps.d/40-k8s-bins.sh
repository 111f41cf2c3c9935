#!/usr/bin/env bash
# Kubernetes components for test/k8s (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kwok), built once from the Go module proxy into ~/.cache/tide-k8s; a no-op when cached.
set -euo pipefail
if ! command -v go >/dev/null 2>&1; then
  echo "go is not installed: the Kubernetes suite will be skipped" >&2
  exit 0
fi
exec bash "$(dirname "$0")/../../hack/k8s-bins/build.sh"
