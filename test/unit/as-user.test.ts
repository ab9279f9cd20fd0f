// asUser: root's writes into a tree another user owns go through a child with that user's rights. Run as
// root (as CI does), the foreign-user cases use nobody (65534) and a uid with no passwd entry.
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { asUser, copiesFor } from '../../src/core/as-user.js';
import { OstError } from '../../src/core/errors.js';
import { tempTree } from '../helpers/sets.js';

const isRoot = process.getuid?.() === 0;
const NOBODY = { uid: 65534, gid: 65534 };

describe('asUser', () => {
  it('makes dirs, files and links with exact modes whatever the umask, and removes trees', async () => {
    const dir = tempTree({ 'old/a/b': 'x' });
    const old = process.umask(0);
    try {
      const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
      await asUser(me, [
        { op: 'mkdir', path: path.join(dir, 'd/e'), mode: 0o750 },
        { op: 'write', path: path.join(dir, 'd/e/f'), text: 'one\n', mode: 0o600 },
        { op: 'write', path: path.join(dir, 'd/e/f'), text: 'two\n', mode: 0o640 },
        { op: 'symlink', path: path.join(dir, 'd/l'), target: 'e/f' },
        { op: 'remove', path: path.join(dir, 'old') },
        { op: 'remove', path: path.join(dir, 'never-there') },
      ]);
    } finally {
      process.umask(old);
    }
    expect(lstatSync(path.join(dir, 'd/e')).mode & 0o7777).toBe(0o750);
    expect(lstatSync(path.join(dir, 'd/e/f')).mode & 0o7777).toBe(0o640);
    expect(readFileSync(path.join(dir, 'd/l'), 'utf8')).toBe('two\n');
    // replaced whole: no temporary file left beside it
    expect(readdirSync(path.join(dir, 'd/e'))).toEqual(['f']);
    expect(existsSync(path.join(dir, 'old'))).toBe(false);
  });

  it.skipIf(!isRoot)(
    'writes as the owner: files are theirs, and a planted link to a root-only dir gets nothing',
    async () => {
      const dir = tempTree({});
      chmodSync(dir, 0o755);
      const victim = path.join(dir, 'victim');
      mkdirSync(victim, { mode: 0o700 });
      const theirs = path.join(dir, 'theirs');
      mkdirSync(theirs);
      chownSync(theirs, NOBODY.uid, NOBODY.gid);
      await asUser(NOBODY, [{ op: 'write', path: path.join(theirs, 'hosts'), text: 'h\n', mode: 0o644 }]);
      const st = lstatSync(path.join(theirs, 'hosts'));
      expect([st.uid, st.gid]).toEqual([NOBODY.uid, NOBODY.gid]);
      // the user swaps a dir for a link into root's: the write fails, the victim stays empty
      symlinkSync(victim, path.join(theirs, 'deployment'));
      const err = await asUser(NOBODY, [
        { op: 'write', path: path.join(theirs, 'deployment/hosts'), text: 'pwned\n', mode: 0o644 },
      ]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OstError);
      expect((err as OstError).message).toMatch(/uid 65534.*deployment\/hosts.*permission denied/i);
      // a file planted as a link to a root-owned file: replaced by rename, the target untouched
      const secret = path.join(victim, 'secret');
      writeFileSync(secret, 'root only\n', { mode: 0o600 });
      symlinkSync(secret, path.join(theirs, 'env.sh'));
      await asUser(NOBODY, [{ op: 'write', path: path.join(theirs, 'env.sh'), text: 'x\n', mode: 0o644 }]);
      expect(readdirSync(victim)).toEqual(['secret']);
      expect(readFileSync(secret, 'utf8')).toBe('root only\n');
      expect(lstatSync(path.join(theirs, 'env.sh')).isSymbolicLink()).toBe(false);
    },
  );

  it.skipIf(!isRoot)('runs a uid with no passwd entry with no groups but its gid', async () => {
    const dir = tempTree({});
    chmodSync(dir, 0o755);
    const d = path.join(dir, 'u');
    mkdirSync(d);
    chownSync(d, 4242, 4343);
    await asUser({ uid: 4242, gid: 4343 }, [{ op: 'write', path: path.join(d, 'f'), text: '', mode: 0o600 }]);
    const st = lstatSync(path.join(d, 'f'));
    expect([st.uid, st.gid]).toEqual([4242, 4343]);
  });

  it('copiesFor reads the sources and skips the missing ones', async () => {
    const dir = tempTree({ 'a.txt': 'A' });
    const ops = await copiesFor([
      { from: path.join(dir, 'a.txt'), to: '/x/a', mode: 0o644 },
      { from: path.join(dir, 'missing.txt'), to: '/x/m', mode: 0o644 },
    ]);
    expect(ops).toEqual([{ op: 'write', path: '/x/a', text: 'A', mode: 0o644 }]);
  });
});
