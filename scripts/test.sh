#!/usr/bin/env bash
# The whole test suite: unit tests and end-to-end tests with the real tools (needs root for debootstrap).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

npm run lint
npm run typecheck
report="$(mktemp)"
status=0
$SUDO npx vitest run --reporter=default --reporter=json --outputFile="$report" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report" || true
rm -f "$report"
exit "$status"
