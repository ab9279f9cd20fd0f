// publishSet on tiny real RPMs (rpmbuild) and real createrepo_c: what a client of the repository sees
// across publishes, and what a failed or repeated publish leaves.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { ImageSet } from '../../src/builder/plan/model.js';
import { readRepo } from '../../src/builder/repo/metadata.js';
import { publishSet, readSetRecords } from '../../src/builder/repo/publish.js';
import type { PackedRpm } from '../../src/builder/rpm/rpm-file.js';
import { run } from '../../src/core/exec.js';
import { rpmsignArgv } from '../../src/tools/rpmbuild.js';
import { tinyLayerRpm } from '../helpers/rpms.js';
import { tempTree } from '../helpers/sets.js';

const set = { distro: 't' } as ImageSet;

/** One layer RPM of distro t: `release`, from build `buildId`, packed with `payload`. */
const rpm = (dir: string, layer: string, release: string, buildId: string, payload?: string) =>
  tinyLayerRpm(dir, { distro: 't', layer, release, buildId, payload });

const served = async (repo: string) => (await readRepo(repo)).map((p) => `${p.name}-${p.release}`).sort();

describe('publishing into a repository', () => {
  it('keeps the previous metadata reachable after the swap and deletes dropped RPMs one publish later', async () => {
    const dir = tempTree({});
    const repo = path.join(dir, 'repo');
    await publishSet(set, [await rpm(dir, 'base', '1', 'b1')], { repo, keep: 1 });
    const oldRepomd = readFileSync(path.join(repo, 'repodata/repomd.xml'), 'utf8');
    const oldFiles = [...oldRepomd.matchAll(/<location href="(repodata\/[^"]+)"/g)].map(
      (m) => m[1] as string,
    );
    await publishSet(set, [await rpm(dir, 'base', '2', 'b2')], { repo, keep: 1 });
    // a client holding the old repomd.xml still finds every file it names, and the RPM it lists
    for (const f of oldFiles) expect(existsSync(path.join(repo, f)), f).toBe(true);
    expect(existsSync(path.join(repo, 'Packages/ost-images-t-base-1-1.noarch.rpm'))).toBe(true);
    expect(await served(repo)).toEqual(['ost-images-t-base-2']);
    await publishSet(set, [await rpm(dir, 'base', '3', 'b3')], { repo, keep: 1 });
    expect(readdirSync(path.join(repo, 'Packages')).sort()).toEqual([
      'ost-images-t-base-1-2.noarch.rpm',
      'ost-images-t-base-1-3.noarch.rpm',
    ]);
    expect(await served(repo)).toEqual(['ost-images-t-base-3']);
    expect((await readSetRecords(repo, 't')).length).toBe(1);
  }, 120_000);

  it('records a set only once it is served, and clears copies a killed publish left', async () => {
    const dir = tempTree({});
    const repo = path.join(dir, 'repo');
    await publishSet(set, [await rpm(dir, 'base', '1', 'b1')], { repo });
    writeFileSync(path.join(repo, 'Packages/ost-images-t-leaf-1-1.noarch.rpm.tmp-0a1b2c3d'), 'half');
    const leaf = await rpm(dir, 'leaf', '1', 'l1');
    await expect(
      publishSet(set, [leaf], {
        repo,
        beforeSwap: async () => {
          throw new Error('killed before the swap');
        },
      }),
    ).rejects.toThrow(/killed before the swap/);
    expect((await readSetRecords(repo, 't')).length).toBe(1);
    expect(await served(repo)).toEqual(['ost-images-t-base-1']);
    expect(readdirSync(path.join(repo, 'Packages')).filter((f) => f.includes('.tmp-'))).toEqual([]);
    await publishSet(set, [leaf], { repo });
    expect((await readSetRecords(repo, 't')).length).toBe(2);
  }, 120_000);

  it('takes the same build packed again as already published, refuses another build under the same name', async () => {
    const dir = tempTree({});
    const repo = path.join(dir, 'repo');
    await publishSet(set, [await rpm(dir, 'base', '1', 'b1')], { repo });
    const published = readFileSync(path.join(repo, 'Packages/ost-images-t-base-1-1.noarch.rpm'));
    const repacked = await rpm(dir, 'base', '1', 'b1', 'w3T0.xzdio');
    await publishSet(set, [repacked], { repo });
    expect(readFileSync(path.join(repo, 'Packages/ost-images-t-base-1-1.noarch.rpm')).equals(published)).toBe(
      true,
    );
    await expect(publishSet(set, [await rpm(dir, 'base', '1', 'other')], { repo })).rejects.toThrow(
      /ost-images-t-base-1-1\.noarch\.rpm already exists in .* from another build/,
    );
    await expect(publishSet(set, [repacked], { repo, keep: 0 })).rejects.toThrow(/keeps at least 1/);
  }, 120_000);

  it('serves a client refreshing metadata in a loop during two publishes without one error', async () => {
    const dir = tempTree({});
    const repo = path.join(dir, 'repo');
    await publishSet(set, [await rpm(dir, 'base', '1', 'b1')], { repo, keep: 1 });
    const next = [await rpm(dir, 'base', '2', 'b2'), await rpm(dir, 'base', '3', 'b3')];
    let done = false;
    let reads = 0;
    const errors: string[] = [];
    // as dnf does: repomd.xml first, then (a moment later) the files it names, then the RPMs they list
    const client = (async () => {
      while (!done) {
        try {
          const repomd = readFileSync(path.join(repo, 'repodata/repomd.xml'), 'utf8');
          await new Promise((r) => setTimeout(r, 5));
          for (const m of repomd.matchAll(/<location href="([^"]+)"/g))
            readFileSync(path.join(repo, m[1] as string));
          const primary = /<data type="primary">[\s\S]*?<location href="([^"]+)"/.exec(repomd)?.[1] as string;
          const xml = gunzipSync(readFileSync(path.join(repo, primary))).toString();
          for (const m of xml.matchAll(/<location href="([^"]+)"/g))
            if (!existsSync(path.join(repo, m[1] as string))) errors.push(`missing ${m[1]}`);
          reads++;
        } catch (err) {
          errors.push(String(err));
        }
      }
    })();
    // and a client that read repomd.xml just before each swap fetches the rest just after it
    const held: string[] = [];
    for (const r of next)
      await publishSet(set, [r], {
        repo,
        keep: 1,
        beforeSwap: async () => {
          held.push(readFileSync(path.join(repo, 'repodata/repomd.xml'), 'utf8'));
        },
      });
    done = true;
    await client;
    expect(errors).toEqual([]);
    expect(held).toHaveLength(2);
    const last = held[1] as string;
    const primary = /<data type="primary">[\s\S]*?<location href="([^"]+)"/.exec(last)?.[1] as string;
    for (const m of last.matchAll(/<location href="([^"]+)"/g))
      expect(existsSync(path.join(repo, m[1] as string)), m[1]).toBe(true);
    for (const m of gunzipSync(readFileSync(path.join(repo, primary)))
      .toString()
      .matchAll(/<location href="([^"]+)"/g))
      expect(existsSync(path.join(repo, m[1] as string)), m[1]).toBe(true);
    expect(reads).toBeGreaterThan(10);
  }, 120_000);

  it('keeps an RPM that a kept RPM requires even when only an older set has it (retention follows requires)', async () => {
    const dir = tempTree({});
    const repo = path.join(dir, 'repo');
    const base = await tinyLayerRpm(dir, { distro: 't', layer: 'base', release: '1', buildId: 'b1' });
    await publishSet(set, [base], { repo, keep: 1 });
    // a set of just a new leaf on that base (as when the base came from the cache): the newest set alone
    // does not name the base, its leaf requires it
    const leaf = await tinyLayerRpm(dir, {
      distro: 't',
      layer: 'leaf',
      release: '2',
      buildId: 'l2',
      requires: 'ost-images-t-base = 1-1',
    });
    await publishSet(set, [leaf], { repo, keep: 1 });
    await publishSet(set, [leaf], { repo, keep: 1 });
    expect(await served(repo)).toEqual(['ost-images-t-base-1', 'ost-images-t-leaf-2']);
    expect(readdirSync(path.join(repo, 'Packages')).sort()).toEqual([
      'ost-images-t-base-1-1.noarch.rpm',
      'ost-images-t-leaf-1-2.noarch.rpm',
    ]);
  }, 120_000);

  it('signed after unsigned: refused (published bytes never change); unsigned after signed: the signed file stays', async () => {
    const dir = tempTree({});
    const gnupg = path.join(dir, 'gnupg');
    mkdirSync(gnupg, { mode: 0o700 });
    const before = process.env.GNUPGHOME;
    process.env.GNUPGHOME = gnupg;
    try {
      await run('gpg', [
        '--batch',
        '--passphrase',
        '',
        '--quick-gen-key',
        't <t@example.invalid>',
        'rsa2048',
        'sign',
        'never',
      ]);
      const keyId = /^fpr:+([0-9A-F]+):/m.exec(
        (await run('gpg', ['--batch', '--with-colons', '--list-secret-keys'])).stdout,
      )?.[1] as string;
      const signedCopy = async (r: PackedRpm) => {
        mkdirSync(path.join(dir, 'signed'), { recursive: true });
        const file = path.join(dir, 'signed', path.basename(r.file));
        copyFileSync(r.file, file);
        await run('rpmsign', rpmsignArgv(keyId, [file]).slice(1));
        return { ...r, file };
      };
      // unsigned published first: a signed publish of the same build is refused
      const a = await rpm(dir, 'base', '1', 'b1');
      const repoA = path.join(dir, 'repo-a');
      await publishSet(set, [a], { repo: repoA });
      await expect(publishSet(set, [await signedCopy(a)], { repo: repoA, sign: { keyId } })).rejects.toThrow(
        /ost-images-t-base-1-1\.noarch\.rpm is published unsigned in .*, and published files never change/,
      );
      // signed published first: an unsigned publish of the same build leaves the signed bytes
      const b = await rpm(dir, 'leaf', '1', 'l1');
      const repoB = path.join(dir, 'repo-b');
      const signed = await signedCopy(b);
      await publishSet(set, [signed], { repo: repoB, sign: { keyId } });
      await publishSet(set, [b], { repo: repoB });
      expect(
        readFileSync(path.join(repoB, 'Packages', path.basename(b.file))).equals(readFileSync(signed.file)),
      ).toBe(true);
    } finally {
      if (before === undefined) delete process.env.GNUPGHOME;
      else process.env.GNUPGHOME = before;
    }
  }, 120_000);
});
