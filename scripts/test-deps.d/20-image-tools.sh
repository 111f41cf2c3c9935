#!/usr/bin/env bash
# Tools of images/build and test/images/build.test.ts: mmdebstrap (Debian root file systems), umoci
# (OCI layouts), catatonit (the pause image), skopeo (reads and pushes the layouts), rsync (layer
# diffs). containerd's `ctr` imports the layouts (images/README.md). No-op when installed.
set -euo pipefail
packages=(mmdebstrap umoci catatonit skopeo rsync containerd)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's containerd package may start a daemon where an init system runs; the tests start their own.
systemctl disable --now containerd >/dev/null 2>&1 || service containerd stop >/dev/null 2>&1 || true
