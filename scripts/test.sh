#!/usr/bin/env bash
# The whole test suite: unit tests and end-to-end tests with the real tools (needs root for debootstrap).
# The e2e files share one debian12 image set, built once per content key into /var/cache/ost-test
# (OST_TEST_CACHE moves it; test/e2e/shared-images.ts). At the end: each file's wall time and the counts.
# OST_TEST_PARALLEL=1 runs two streams side by side: the libvirt e2e files (one libvirtd at a time, so serial
# among themselves; the first builds the shared set), and beside them the files that need no shared set, then
# the other e2e files (which wait for the shared set's lock). Measured on 2 cores (2026-12-03): 45.2 min, vs
# 44.2 min for one stream with ~3 min more work in the shared set — the e2e files are TCG guests and
# appliances that keep both cores busy already — so the default is one stream.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
./scripts/install-deps.sh
deps_done=$(date +%s)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

npm run lint
npm run typecheck
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
LIBVIRT_FILES=(test/e2e/launcher.test.ts test/e2e/ost-harness.test.ts test/e2e/checkpoint.test.ts)
SHARED_FILES=(test/e2e/images.test.ts test/e2e/nightly.test.ts)  # need the shared set, no libvirtd
vitest() {  # vitest NAME [args]: one run, its JSON report in $tmp/NAME.json
  local name="$1"; shift
  $SUDO env OST_E2E_TIMINGS="$tmp/timings-$name" npx vitest run --reporter=default --reporter=json \
    --outputFile="$tmp/$name.json" --reporter=./test/file-times-reporter.ts "$@"
}
status=0
if [ "${OST_TEST_PARALLEL:-0}" = 1 ]; then
  vitest libvirt "${LIBVIRT_FILES[@]}" > "$tmp/libvirt.log" 2>&1 &
  pid=$!
  excludes=()
  for f in "${LIBVIRT_FILES[@]}" "${SHARED_FILES[@]}"; do excludes+=(--exclude "$f"); done
  vitest rest "${excludes[@]}" || status=$?
  vitest shared "${SHARED_FILES[@]}" || status=$?
  wait "$pid" || status=$?
  echo "---- libvirt e2e files (ran beside the above) ----"
  cat "$tmp/libvirt.log"
else
  vitest all || status=$?
fi
node -e '
  const fs = require("fs");
  const [tmp, started, depsDone] = process.argv.slice(1);
  const reports = fs.readdirSync(tmp).filter((f) => f.endsWith(".json")).map((f) => JSON.parse(fs.readFileSync(`${tmp}/${f}`, "utf8")));
  const sum = (k) => reports.reduce((n, r) => n + r[k], 0);
  const min = (s) => `${(s / 60).toFixed(1)} min`;
  for (const f of fs.readdirSync(tmp).filter((f) => f.startsWith("timings-")).sort())
    console.log(`\n${f.slice(8)}: ${fs.readFileSync(`${tmp}/${f}`, "utf8").trim()}`);
  console.log(`system packages and npm: ${min(depsDone - started)}; whole run: ${min(Date.now() / 1000 - started)}`);
  console.log(`${sum("numPassedTests")} passed, ${sum("numFailedTests")} failed, ${sum("numPendingTests") + sum("numTodoTests")} skipped`);
' "$tmp" "$started" "$deps_done" || true
exit "$status"
