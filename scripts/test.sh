#!/usr/bin/env bash
# The whole test suite, as README.md and .ci/run call it (through `npm test`, so `node` is Node 24
# from node_modules/.bin). Installs the test peers first, then type-checks, lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "installing test peers"
bash scripts/install-test-deps.sh

step "type-check"
tsc -p tsconfig.json

step "lint"
eslint --max-warnings 0 .

step "format"
prettier --check . >/dev/null || { prettier --check .; exit 1; }

step "tests"
node --test --test-concurrency=2 --test-timeout=900000 \
  "src/**/*.test.ts" "test/**/*.test.ts"
