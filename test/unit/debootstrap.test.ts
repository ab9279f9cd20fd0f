// debootstrap checks the mirror's signature with Debian's keyring (issue 28): the argv, what the real
// debootstrap does with it on an unsigned mirror, and the error when the keyring is not installed.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { debootstrapActions } from '../../src/builder/layer-kinds/debootstrap.js';
import type { LayerContext } from '../../src/builder/layer-kinds/types.js';
import { loadImageSet } from '../../src/builder/plan/load.js';
import { run } from '../../src/core/exec.js';
import { findTool } from '../../src/core/require-tool.js';
import { DEBIAN_KEYRING, debootstrapArgv, requireKeyring } from '../../src/tools/debootstrap.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

const spec = {
  suite: 'bookworm',
  mirror: 'http://deb.debian.org/debian',
  target: '/t',
  components: ['main'],
};

describe('debootstrap argv', () => {
  it("names Debian's keyring and forces the check; never --no-check-gpg", () => {
    const argv = debootstrapArgv({ ...spec, variant: 'minbase', include: ['udev'] });
    expect(argv).toEqual([
      'debootstrap',
      '--keyring=/usr/share/keyrings/debian-archive-keyring.gpg',
      '--force-check-gpg',
      '--variant=minbase',
      '--components=main',
      '--include=udev',
      'bookworm',
      '/t',
      'http://deb.debian.org/debian',
    ]);
    expect(DEBIAN_KEYRING).toBe('/usr/share/keyrings/debian-archive-keyring.gpg');
  });

  it("the shipped set's base layer runs it so", () => {
    const set = loadImageSet(path.join(REPO_ROOT, 'images/debian12.yaml'));
    const base = set.layers[0];
    if (!base) throw new Error('no base layer');
    const ctx = { set, layer: base, work: '/w', publicKey: 'k' } as unknown as LayerContext;
    const exec = debootstrapActions(ctx).find((a) => a.kind === 'exec' && a.argv[0] === 'debootstrap');
    expect(exec?.kind === 'exec' && exec.argv.slice(1, 3)).toEqual([
      `--keyring=${DEBIAN_KEYRING}`,
      '--force-check-gpg',
    ]);
    expect(exec?.kind === 'exec' && exec.argv).not.toContain('--no-check-gpg');
  });

  it('a missing keyring is one error naming the package to install', () => {
    expect(() => requireKeyring('/nonexistent/debian-archive-keyring.gpg')).toThrow(
      expect.objectContaining({
        message: expect.stringContaining('/nonexistent/debian-archive-keyring.gpg'),
        hint: expect.stringMatching(/apt-get install debian-archive-keyring.*dnf install debian-keyring/),
      }),
    );
  });

  const canRun =
    process.getuid?.() === 0 && findTool('debootstrap') !== undefined && existsSync(DEBIAN_KEYRING);
  it.skipIf(!canRun)('the real debootstrap refuses a mirror whose Release is not signed', async () => {
    const mirror = tempTree({
      'dists/bookworm/Release':
        'Origin: x\nSuite: bookworm\nCodename: bookworm\nArchitectures: amd64\nComponents: main\n',
    });
    mkdirSync(path.join(mirror, 'dists/bookworm/main/binary-amd64'), { recursive: true });
    writeFileSync(path.join(mirror, 'dists/bookworm/main/binary-amd64/Packages'), '');
    const target = path.join(tempTree({}), 'root');
    const [tool, ...args] = debootstrapArgv({ ...spec, mirror: `file://${mirror}`, target, include: [] });
    const r = await run(tool as string, args, { allowFailure: true, timeoutMs: 60_000 });
    expect(r.exitCode).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/Failed getting release signature file/);
  });
});
