#!/usr/bin/env bash
# Debian packages: nginx (HTTP origin), fuse3 (fusermount3), fio and sqlite3 (real FUSE clients),
# openssl (test certificates), iproute2 (network namespaces); containerd, runc, the CNI plugins and
# iptables for the test cluster's real node (test/k8s/real-node.ts), at the versions bookworm pins.
set -euo pipefail
packages=(nginx fuse3 fio sqlite3 openssl iproute2 psmisc containerd runc containernetworking-plugins iptables)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts nginx on port 80 when it installs it; the tests start their own instances.
systemctl disable --now nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true
