#!/usr/bin/env bash
# Debian packages: nginx (HTTP origin), fuse3 (fusermount3), fio and sqlite3 (real FUSE clients),
# openssl (test certificates), iproute2 (network namespaces); containerd, runc, the CNI plugins and
# iptables for the test cluster's real node (test/k8s/real-node.ts), at the versions bookworm pins.
set -euo pipefail
dpkg-query -W -f='${Status}' nginx 2>/dev/null | grep -q 'install ok installed' && fresh_nginx=false || fresh_nginx=true
bash "$(dirname "$0")/../apt-install-missing.sh" nginx fuse3 fio sqlite3 openssl iproute2 psmisc containerd runc containernetworking-plugins iptables
# Debian starts nginx on port 80 when it installs it; the tests start their own instances.
if $fresh_nginx; then
  systemctl disable --now nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true
fi
# The real test nodes are checked against these release lines (test/k8s/real-node.ts and
# docs/decisions/2026-12-07-real-test-nodes.md): a Debian point release may bump the patch, not
# the line, and a different line must be looked at before the tests trust it.
for pinned in containerd:1.6. runc:1.1. containernetworking-plugins:1.1.; do
  package=${pinned%%:*} line=${pinned#*:}
  version=$(dpkg-query -W -f='${Version}' "$package")
  case "$version" in
    "$line"*) ;;
    *) echo "10-debian: $package $version is not on the $line* line the real test nodes are checked with" >&2; exit 1 ;;
  esac
done
