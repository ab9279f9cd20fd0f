#!/usr/bin/env bash
# The whole test suite: unit tests and end-to-end tests with the real tools (needs root for debootstrap).
# The e2e files share one debian12 image set, built once per content key into /var/cache/ost-test
# (OST_TEST_CACHE moves it; test/e2e/shared-images.ts). At the end: counts, and the wall time of each file.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
./scripts/install-deps.sh
deps_done=$(date +%s)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

npm run lint
npm run typecheck
report="$(mktemp)"
timings="$(mktemp)"
status=0
$SUDO env OST_E2E_TIMINGS="$timings" npx vitest run --reporter=default --reporter=json --outputFile="$report" \
  --reporter=./test/file-times-reporter.ts || status=$?
node -e '
  const fs = require("fs");
  const [reportFile, timingsFile, started, depsDone] = process.argv.slice(1);
  const r = JSON.parse(fs.readFileSync(reportFile, "utf8"));
  const min = (s) => `${(s / 60).toFixed(1)} min`;
  const extra = fs.existsSync(timingsFile) ? fs.readFileSync(timingsFile, "utf8").trim() : "";
  if (extra) console.log(`\n${extra}`);
  const now = Date.now() / 1000;
  console.log(`system packages and npm: ${min(depsDone - started)}; whole run: ${min(now - started)}`);
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report" "$timings" "$started" "$deps_done" || true
rm -f "$report" "$timings"
exit "$status"
