// What ost gc reaps beyond envs whose ost up died: an env taken down behind ost's back (OST's
// ./ost.sh destroy: its domains and networks gone, its files not), and overlay dirs nothing claims.
// And ost ssh's arguments, all on the command line.
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type FoundEnv, isGone, isLeftover } from '../../src/launcher/env-dir/discover.js';
import type { EnvRecord } from '../../src/launcher/env-dir/record.js';
import type { OstMetadata } from '../../src/launcher/libvirt/render.js';
import { orphanOverlayDirs, RESERVE_FILE } from '../../src/launcher/overlays.js';
import { sshArgv, sshTargetArgs } from '../../src/tools/ssh.js';
import { tempTree } from '../helpers/sets.js';

function found(status: EnvRecord['status'] | undefined, domains: number, networks: number): FoundEnv {
  const meta = { state: 'up' } as OstMetadata;
  return {
    id: 'abcd1234',
    suite: 's',
    // the ost up that made it is gone
    owner: { pid: 2 ** 22 + 1, start: 'x' },
    domains: new Map(Array.from({ length: domains }, (_, i) => [`d${i}`, meta])),
    networks: new Map(Array.from({ length: networks }, (_, i) => [`n${i}`, meta])),
    leases: ['192.168.200'],
    record: status ? ({ status } as EnvRecord) : undefined,
  };
}

describe('ost gc', () => {
  it('takes an env that came up and whose domains and networks are all gone for a leftover', () => {
    expect(isGone(found('up', 0, 0))).toBe(true);
    expect(isLeftover(found('up', 0, 0))).toBe(true);
    // still running, even in part: not a leftover
    expect(isLeftover(found('up', 1, 0))).toBe(false);
    expect(isLeftover(found('up', 0, 1))).toBe(false);
    // one still starting is its ost up's (isLeftover asks whether that process lives)
    expect(isGone(found('starting', 0, 0))).toBe(false);
  });

  it('finds overlay dirs no env claims, only those ost made, and none younger than the grace', async () => {
    const root = tempTree({});
    const now = Date.now();
    const make = (id: string, reserve: boolean, ageMs: number) => {
      const dir = path.join(root, id);
      mkdirSync(dir);
      if (reserve) writeFileSync(path.join(dir, RESERVE_FILE), '1\n');
      const t = (now - ageMs) / 1000;
      utimesSync(dir, t, t);
      return dir;
    };
    const orphan = make('0badc0de', true, 3_600_000);
    make('11111111', true, 3_600_000); // an env ost knows
    make('22222222', true, 1000); // an up that may be starting
    make('33333333', false, 3_600_000); // not ost's
    writeFileSync(path.join(root, '.lock'), '');
    expect(
      await orphanOverlayDirs([root, root, path.join(root, 'missing')], new Set(['11111111']), 60_000, now),
    ).toEqual([orphan]);
  });
});

describe('ost ssh', () => {
  it('passes every option on the command line and reads no config file', () => {
    const args = sshTargetArgs(
      { host: 'fd8f::5', port: 22, user: 'root', privateKey: '/run/ost/envs/x/keys/k' },
      { batch: false },
    );
    expect(args.slice(0, 4)).toEqual(['-F', 'none', '-i', '/run/ost/envs/x/keys/k']);
    expect(args.at(-1)).toBe('root@fd8f::5');
    expect(args).not.toContain('BatchMode=yes');
    // the scripts' form is the same but never prompts
    expect(sshArgv({ host: 'h', port: 22, user: 'root', privateKey: 'k' }, 'true')).toContain(
      'BatchMode=yes',
    );
  });
});
