#!/usr/bin/env bash
# The whole suite, as CI runs it: install, build, lint, proto drift check, unit and integration tests.
# Extra arguments go to vitest: `npm test -- --project unit`, `npm test -- test/agent.test.ts`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/install-deps.sh
npm run build
npm run lint
bash hack/verify-proto.sh
report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# One plain closing line with the counts, whatever the reporter above printed.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" || true
exit "$status"
