#!/usr/bin/env bash
# The whole test suite: unit tests and end-to-end tests with the real tools (needs root for debootstrap).
# The e2e files share one debian12 image set, built once per content key into /var/cache/ost-test
# (OST_TEST_CACHE moves it; test/e2e/shared-images.ts). At the end: each file's wall time and the counts.
# The set's base is a debootstrap from the Debian mirror, mostly waiting on the network: it is built in the
# background (test/e2e/prepare-shared.ts) while the lint, the type check, the unit tests and the e2e files
# that need no image set run; the files that use the set run after it is ready. (Two streams of e2e files
# side by side were measured on 2 cores in 2026-12-03 at 45.2 min against 44.2 for one: TCG guests and
# appliances keep both cores busy, so only the network wait is overlapped.)
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
./scripts/install-deps.sh
deps_done=$(date +%s)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

tmp="$(mktemp -d)"
shared_pid=""
cleanup() {
  if [ -n "$shared_pid" ]; then kill -- -"$shared_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
# the background build has no terminal: sudo asks for a password (if it must) here, once
if [ -n "$SUDO" ]; then sudo -v; fi
# dist/ was built by install-deps.sh: the e2e processes must not rewrite it under each other
export OST_E2E_PREBUILT=1
# its own session, so an early exit stops the whole build (trap above)
setsid $SUDO env OST_E2E_PREBUILT=1 OST_E2E_TIMINGS="$tmp/timings-shared-set" npx vite-node test/e2e/prepare-shared.ts \
  > "$tmp/shared-set.log" 2>&1 &
shared_pid=$!

npm run lint
npm run typecheck
# the e2e files that use the shared set (test/e2e/shared-images.ts)
SHARED_FILES=()
for f in test/e2e/*.test.ts; do
  if grep -q sharedImages "$f"; then SHARED_FILES+=("$f"); fi
done
vitest() {  # vitest NAME [args]: one run, its JSON report in $tmp/NAME.json
  local name="$1"; shift
  $SUDO env OST_E2E_PREBUILT=1 OST_E2E_TIMINGS="$tmp/timings-$name" npx vitest run --reporter=default \
    --reporter=json --outputFile="$tmp/$name.json" --reporter=./test/file-times-reporter.ts "$@"
}
status=0
excludes=()
for f in "${SHARED_FILES[@]}"; do excludes+=(--exclude "$f"); done
vitest early "${excludes[@]}" || status=$?
echo "---- the shared e2e image set (built in the background) ----"
if wait "$shared_pid"; then
  shared_pid=""
  cat "$tmp/shared-set.log"
  vitest shared "${SHARED_FILES[@]}" || status=$?
else
  shared_pid=""
  cat "$tmp/shared-set.log"
  echo "error: the shared e2e image set could not be built (above); its ${#SHARED_FILES[@]} e2e files did not run" >&2
  status=1
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
