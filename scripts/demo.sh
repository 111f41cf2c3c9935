#!/usr/bin/env bash
# The main job on one machine. Until the embedded control plane lands, it shows the CLI and validates
# the seed examples; see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bin/tide version
for example in examples/*.yaml; do
  bin/tide apply --dry-run -f "$example"
done
