// A vitest reporter that appends each test file's wall time, hooks included (beforeAll builds count), to
// $OST_E2E_TIMINGS, which scripts/test.sh prints at the end of a run.
import { appendFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Reporter } from 'vitest/reporters';

type Files = Parameters<NonNullable<Reporter['onFinished']>>[0];

export default class FileTimesReporter implements Reporter {
  onFinished(files: Files = []): void {
    const out = process.env.OST_E2E_TIMINGS;
    if (!out) return;
    const rows = files
      .map((f) => ({ name: path.relative(process.cwd(), f.filepath), ms: f.result?.duration ?? 0 }))
      .sort((a, b) => b.ms - a.ms)
      .map((f) => `${(f.ms / 1000).toFixed(0).padStart(6)} s  ${f.name}`);
    appendFileSync(out, `wall time per test file (hooks included):\n${rows.join('\n')}\n`);
  }
}
