#!/usr/bin/env bash
# Tools of images/build and test/images/build.test.ts: mmdebstrap (Debian root file systems), umoci
# (OCI layouts), catatonit (the pause image), skopeo (reads and pushes the layouts), rsync (layer
# differences), containerd (its `ctr` imports the layouts; images/README.md). No-op when installed.
set -euo pipefail
dpkg-query -W -f='${Status}' containerd 2>/dev/null | grep -q 'install ok installed' && fresh=false || fresh=true
bash "$(dirname "$0")/../apt-install-missing.sh" mmdebstrap umoci catatonit skopeo rsync containerd
# Debian's containerd may start a daemon where an init system runs; the tests start their own.
if $fresh; then
  systemctl disable --now containerd >/dev/null 2>&1 || service containerd stop >/dev/null 2>&1 || true
fi
