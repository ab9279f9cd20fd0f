import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  diffPackages,
  formatDiff,
  formatPkglist,
  isEmptyDiff,
  parseDpkgStatus,
  parsePkglist,
  parseRpmList,
} from '../../src/builder/pkglist.js';
import { parseCheck, parseInfo } from '../../src/tools/qemu-img.js';
import { REPO_ROOT } from '../helpers/sets.js';

const fixture = (p: string) => readFileSync(path.join(REPO_ROOT, 'test/fixtures', p), 'utf8');

describe('qemu-img parsers (captured qemu-img 7.2 output)', () => {
  it('parses info --backing-chain', () => {
    const chain = parseInfo(fixture('qemu-img/info-chain.json'));
    expect(chain).toHaveLength(2);
    expect(chain[0]).toMatchObject({
      filename: 'b.qcow2',
      backingFilename: 'a.qcow2',
      backingFormat: 'qcow2',
      virtualSize: 1073741824,
    });
    expect(chain[1]).toMatchObject({ filename: 'a.qcow2', backingFilename: undefined });
  });
  it('parses check', () => {
    expect(parseCheck(fixture('qemu-img/check-clean.json'))).toEqual({
      filename: 'b.qcow2',
      checkErrors: 0,
      leaks: 0,
      corruptions: 0,
      imageEndOffset: 262144,
    });
  });
});

describe('package lists', () => {
  it('parses a real dpkg status file', () => {
    const pk = parseDpkgStatus(fixture('dpkg/status'));
    expect(pk.map((p) => p.name)).toContain('openssh-server');
    expect(pk.find((p) => p.name === 'bash')).toMatchObject({ arch: 'amd64' });
    expect(pk.every((p) => p.version.length > 0)).toBe(true);
  });
  it('skips removed packages that left config files', () => {
    const text =
      'Package: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: all\n\nPackage: here\nStatus: install ok installed\nVersion: 2\nArchitecture: amd64\n';
    expect(parseDpkgStatus(text).map((p) => p.name)).toEqual(['here']);
  });
  it('parses rpm -qa output with and without epochs', () => {
    const pk = parseRpmList(
      'bash\t(none):5.1.8-9.el9\tx86_64\nvdsm\t0:4.50.5-1.el9\tx86_64\ngpg-pubkey\t(none):8483c65d-5ccc5b19\t(none)\n',
    );
    expect(pk).toEqual([
      { name: 'bash', version: '5.1.8-9.el9', arch: 'x86_64' },
      { name: 'vdsm', version: '0:4.50.5-1.el9', arch: 'x86_64' },
    ]);
  });
  it('diffs a layer against its parent and round-trips the list format', () => {
    const parent = parsePkglist('a 1 amd64\nb 1 amd64\nc 1 all\n');
    const child = parsePkglist(formatPkglist(parsePkglist('a 1 amd64\nb 2 amd64\nd 1 all\n')));
    const diff = diffPackages(parent, child);
    expect(formatDiff(diff)).toBe('+ d 1 all\n- c 1 all\n~ b 1 -> 2 amd64\n');
    expect(isEmptyDiff(diffPackages(parent, parent))).toBe(true);
  });
});
