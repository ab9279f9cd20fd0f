// bin/ost as a user runs it: every argument after the script is ost's, never node's (Node 20.20 reads
// `--env-file FILE` anywhere on its command line unless `--` ends its options, exiting 9 on a missing file).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/sets.js';

const OST = path.join(REPO_ROOT, 'bin/ost');

describe.skipIf(!existsSync(path.join(REPO_ROOT, 'dist/cli/main.js')))('bin/ost', () => {
  it('hands --env-file to ost up, not to node', () => {
    const r = spawnSync(OST, ['up', 'demo-suite', '--env-file', '/nonexistent/ost-env.yaml', '--dry-run'], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain('/nonexistent/ost-env.yaml: (file): file not found; pass --env-file');
    expect(r.stderr).not.toMatch(/^node:/m);
  });
});
