// Helpers to write image-set files into a temporary directory for tests.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll } from 'vitest';
import { loadImageSet } from '../../src/builder/plan/load.js';
import { ConfigError } from '../../src/core/errors.js';

const made: string[] = [];
// removed after the test file that made them (vitest evaluates this module once per file: the hook is that
// file's; a worker's process 'exit' does not run when vitest ends its workers)
afterAll(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A temp dir holding `files` (relative path → content); returns its path. Removed at exit. */
export function tempTree(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ost-test-'));
  made.push(dir);
  for (const [rel, content] of Object.entries(files)) {
    const abs = path.join(dir, rel);
    mkdirSync(path.dirname(abs), { recursive: true });
    writeFileSync(abs, content);
  }
  return dir;
}

export { REPO_ROOT } from './repo-root.js';

/** The ConfigError that loading `file` as an image set throws (fails the test when it loads). */
export function setProblems(file: string): ConfigError {
  try {
    loadImageSet(file);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`${file} loaded without a problem`);
}
