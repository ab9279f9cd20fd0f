// The checkout's root, for tests and for scripts that run outside vitest (test/e2e/prepare-shared.ts).
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
