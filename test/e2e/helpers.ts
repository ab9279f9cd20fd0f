// Helpers for end-to-end tests: run the real CLI (compiled) as a subprocess.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { run } from '../../src/core/exec.js';
import { REPO_ROOT } from '../helpers/repo-root.js';

export const OST = path.join(REPO_ROOT, 'bin/ost');

let built = false;

/**
 * Compile once per process so bin/ost runs the current sources — unless scripts/test.sh built dist/ already
 * (OST_E2E_PREBUILT=1): its test processes run side by side, and one must not rewrite dist/ under another.
 */
export function ensureBuilt(): void {
  if (built) return;
  if (process.env.OST_E2E_PREBUILT === '1' && existsSync(path.join(REPO_ROOT, 'dist/cli/main.js'))) {
    built = true;
    return;
  }
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: REPO_ROOT, stdio: 'inherit' });
  if (!existsSync(path.join(REPO_ROOT, 'dist/cli/main.js'))) throw new Error('tsc did not produce dist/');
  built = true;
}

/** Run `ost ARGS`, never throwing: exit code, stdout and stderr. */
export async function ost(args: string[], opts: { cwd?: string; timeoutMs?: number } = {}) {
  const res = await run(OST, args, {
    allowFailure: true,
    cwd: opts.cwd ?? REPO_ROOT,
    timeoutMs: opts.timeoutMs ?? 3_600_000,
  });
  return { code: res.exitCode, stdout: res.stdout, stderr: res.stderr };
}

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
