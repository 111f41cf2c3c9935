#!/usr/bin/env bash
# Installs what the tests run against, from the package registries only, and reuses what is there.
# Each file in test-deps.d/ installs one peer and is a no-op when it is already installed.
set -euo pipefail
cd "$(dirname "$0")"
for step in test-deps.d/*.sh; do
  [ -e "$step" ] || continue
  start=$SECONDS
  bash "$step"
  printf 'test peer %s ready (%ss)\n' "$(basename "$step" .sh)" "$((SECONDS - start))"
done
