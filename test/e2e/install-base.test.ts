// Opt-in (OST_E2E_INSTALL=1, needs a running libvirtd and a complete Debian mirror; ~30-60 min under TCG):
// the `install` base for real — virt-install boots Debian's netboot installer with a preseed and the
// resulting layer boots and answers SSH with the set's key. See BENCHMARKS.md for the run on this machine.
import { mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/sets.js';
import { ensureBuilt, isRoot, ost } from './helpers.js';

const enabled = isRoot && process.env.OST_E2E_INSTALL === '1';

describe.skipIf(!enabled)('install base with virt-install (opt-in)', () => {
  // made in beforeAll: the body of a skipped describe still runs, and its afterAll does not
  let out = '';
  const set = path.join(REPO_ROOT, 'test/fixtures/netinst/debian12-netinst.yaml');
  beforeAll(() => {
    out = mkdtempSync('/var/tmp/ost-install-e2e-');
  });
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it(
    'installs Debian from the netboot installer and the result answers SSH',
    async () => {
      ensureBuilt();
      const r = await ost(['build-images', set, '--out', out, '--json'], { timeoutMs: 3 * 3_600_000 });
      expect(r.code, r.stderr).toBe(0);
      const boot = await ost(['boot-image', set, 'base', '--out', out, '--json', '--command', 'hostname']);
      expect(boot.code, boot.stderr).toBe(0);
      expect(JSON.parse(boot.stdout).commandOutput.trim()).toBe('debian12ni-base');
    },
    3 * 3_600_000,
  );
});
