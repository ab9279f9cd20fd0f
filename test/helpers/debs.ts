// Tiny .deb packages for tests: a name, a version, one file saying which version it is.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { run } from '../../src/core/exec.js';
import { debBuildArgv } from '../../src/tools/dpkg-deb.js';

/**
 * Build `<name>_<version>_all.deb` into `dir` (made if needed): it installs
 * /usr/share/<name>/version with the version in it (and `Depends: depends` when given). Returns the file.
 */
export async function makeDeb(dir: string, name: string, version: string, depends?: string): Promise<string> {
  const tree = mkdtempSync(path.join(tmpdir(), 'ost-deb-'));
  try {
    mkdirSync(path.join(tree, 'DEBIAN'));
    mkdirSync(path.join(tree, 'usr/share', name), { recursive: true });
    writeFileSync(
      path.join(tree, 'DEBIAN/control'),
      `Package: ${name}\nVersion: ${version}\nArchitecture: all\nMaintainer: ost tests <ost@example.invalid>\n` +
        (depends ? `Depends: ${depends}\n` : '') +
        `Description: test package ${name} ${version} made by the ost tests\n`,
    );
    writeFileSync(path.join(tree, 'usr/share', name, 'version'), `${version}\n`);
    mkdirSync(dir, { recursive: true });
    const out = path.join(dir, `${name}_${version.replace(/^\d+:/, '')}_all.deb`);
    const [bin, ...args] = debBuildArgv(tree, out);
    await run(bin as string, args);
    return out;
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}
