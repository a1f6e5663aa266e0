#!/usr/bin/env bash
# The whole suite, as CI runs it: install, build, lint, proto drift check, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/install-deps.sh
npm run build
npm run lint
bash hack/verify-proto.sh
npx vitest run "$@"
