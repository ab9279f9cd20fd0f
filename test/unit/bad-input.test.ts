// Bad input, table-driven, through the real command line (main): each bad file or flag gives its one
// message and exit code, and nothing is created — no state dir, no overlay dir, no build dir, no repo.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { REPO_ROOT } from '../helpers/sets.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ost-bad-input-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Where a run may write if it wrongly got past validation: none of these may exist afterwards. */
const made = {
  state: path.join(dir, 'state'),
  overlays: path.join(dir, 'overlays'),
  fallback: path.join(dir, 'fallback'),
  out: path.join(dir, 'out'),
  repo: path.join(dir, 'repo'),
  layers: path.join(dir, 'layers'),
};

function file(name: string, text: string): string {
  const f = path.join(dir, 'inputs', name);
  mkdirSync(path.dirname(f), { recursive: true });
  writeFileSync(f, text);
  return f;
}

const suite = (vms: string, networks = '      m: { management: true }\n') =>
  `suites:\n  s:\n    networks:\n${networks}    vms:\n${vms}`;
const ostJson = (
  vms: object,
  nets: object = { 'net-1': { template: 'common/libvirt-templates/net_template', is_management: true } },
) => JSON.stringify({ vms, networks: nets }, null, 2);
const vm = (nics = [{ net: 'net-1' }]) => ({ root_disk_var: 'OST_IMAGES_BASE', nics });

/** One image set with `layer` in place of its second layer. */
const set = (head: string, layer = '') =>
  `distro: debian12\nfamily: deb\n${head}layers:\n  - name: base\n    debootstrap: { suite: bookworm, mirror: "http://deb.debian.org/debian" }\n${layer}`;

const many = Array.from(
  { length: 253 },
  (_, i) => `      vm${i}: { image: debian12-base, nics: [m] }\n`,
).join('');

type Case = [name: string, argv: () => string[], code: number, message: string | RegExp];

const cases: Case[] = [
  // ost-env.yaml
  [
    'an unknown forward mode',
    () => [
      'up',
      's',
      '--env-file',
      file(
        'forward.yaml',
        suite(
          '      vm: { image: debian12-base, nics: [m] }\n',
          '      m: { management: true, forward: bridge }\n',
        ),
      ),
    ],
    2,
    /forward\.yaml:4: suites\.s\.networks\.m\.forward: /,
  ],
  [
    'a VM name that is a path',
    () => [
      'up',
      's',
      '--env-file',
      file('vm-name.yaml', suite('      "../../x": { image: debian12-base, nics: [m] }\n')),
    ],
    2,
    /vm-name\.yaml:6: suites\.s\.vms\.\.\.\/\.\.\/x: /,
  ],
  [
    'a VM key given twice',
    () => [
      'up',
      's',
      '--env-file',
      file(
        'dup.yaml',
        suite(
          '      vm: { image: debian12-base, nics: [m] }\n      vm: { image: debian12-base, nics: [m] }\n',
        ),
      ),
    ],
    2,
    /dup\.yaml:7: \(file\): not valid YAML: Map keys must be unique/,
  ],
  [
    'a deploy script outside the suite folder',
    () => [
      'up',
      's',
      '--env-file',
      file(
        'escape.yaml',
        suite('      vm: { image: debian12-base, nics: [m], deployScripts: [../../etc/passwd] }\n'),
      ),
    ],
    2,
    /escape\.yaml:6: suites\.s\.vms\.vm\.deployScripts\[0\]: /,
  ],
  [
    'more VMs on a network than a /24 holds',
    () => ['up', 's', '--env-file', file('many.yaml', suite(many))],
    2,
    /many\.yaml.*suites\.s\.networks\.m: .*253/,
  ],
  // OST's ost.json
  [
    'an ost.json VM key given twice',
    () => [
      'up',
      '--env',
      file(
        'dup/ost.json',
        '{\n "vms": {\n  "a": {"root_disk_var": "X", "nics": [{"net": "n"}]},\n  "a": {"root_disk_var": "X", "nics": [{"net": "n"}]}\n },\n "networks": {"n": {"is_management": true}}\n}\n',
      ),
    ],
    2,
    /dup\/ost\.json:4: .*a key appears twice/,
  ],
  [
    'an ost.json VM name that is a path',
    () => ['up', '--env', file('path/ost.json', ostJson({ '../../../../tmp/x': vm() }))],
    2,
    /path\/ost\.json(:\d+)?: vms\.\.\.\/\.\.\/\.\.\/\.\.\/tmp\/x: /,
  ],
  [
    'an ost.json VM without a management NIC',
    () => [
      'up',
      '--env',
      file(
        'nomgmt/ost.json',
        ostJson({ a: vm([{ net: 'net-2' }]) }, { 'net-1': { is_management: true }, 'net-2': {} }),
      ),
    ],
    2,
    /nomgmt\/ost\.json(:\d+)?: vms\.a\.nics: /,
  ],
  // image sets
  [
    'a debootstrap suite that is not a suite name',
    () => [
      'build-images',
      file('suite.yaml', set('').replace('bookworm', '"bookworm; rm -rf /"')),
      '--out',
      made.out,
      '--dry-run',
    ],
    2,
    /suite\.yaml:5: layers\[0\]\.debootstrap\.suite: /,
  ],
  [
    'a layer name that is a path',
    () => [
      'build-images',
      file('name.yaml', set('', '  - name: ../leaf\n    parent: base\n    steps: [{ run: "true" }]\n')),
      '--out',
      made.out,
      '--dry-run',
    ],
    2,
    /name\.yaml:6: layers\[1\]\.name: /,
  ],
  [
    'a parent that does not exist',
    () => [
      'build-images',
      file('parent.yaml', set('', '  - name: leaf\n    parent: nope\n    steps: [{ run: "true" }]\n')),
      '--out',
      made.out,
      '--dry-run',
    ],
    2,
    /parent\.yaml:7: layers\[1\]\.parent: /,
  ],
  // flags
  [
    '--jobs abc',
    () => ['build-images', path.join(REPO_ROOT, 'images/debian12.yaml'), '--out', made.out, '--jobs', 'abc'],
    2,
    '--jobs abc: expected a whole number from 1 to 64',
  ],
  [
    '--force of a layer the set lacks',
    () => [
      'build-images',
      path.join(REPO_ROOT, 'images/debian12.yaml'),
      '--out',
      made.out,
      '--force',
      'nope',
    ],
    2,
    /--force nope: no such layer in .*debian12\.yaml/,
  ],
  [
    '--payload bogus',
    () => [
      'publish-images',
      path.join(REPO_ROOT, 'images/debian12.yaml'),
      '--out',
      made.out,
      '--repo',
      made.repo,
      '--payload',
      'bogus',
    ],
    2,
    /--payload bogus: expected w<level>/,
  ],
  [
    '--keep 0',
    () => [
      'publish-images',
      path.join(REPO_ROOT, 'images/debian12.yaml'),
      '--out',
      made.out,
      '--repo',
      made.repo,
      '--keep',
      '0',
    ],
    2,
    '--keep 0: expected a whole number from 1 to 10000',
  ],
  [
    'publish-images of a set never built',
    () => [
      'publish-images',
      path.join(REPO_ROOT, 'images/debian12.yaml'),
      '--out',
      made.out,
      '--repo',
      made.repo,
    ],
    1,
    `nothing built in ${made.out}`,
  ],
  [
    '--timeout abc',
    () => ['up', 'demo-suite', '--timeout', 'abc'],
    2,
    '--timeout abc: expected a whole number from 1 to 86400',
  ],
  [
    '--overlay-reserve abc',
    () => ['up', 'demo-suite', '--overlay-reserve', 'abc'],
    2,
    '--overlay-reserve abc: expected a size',
  ],
  ['--id XYZ', () => ['up', 'demo-suite', '--id', 'XYZ'], 2, '--id XYZ: expected 8 lowercase hex digits'],
  [
    '--ipv4-only with --ipv6-only',
    () => ['up', 'demo-suite', '--ipv4-only', '--ipv6-only'],
    2,
    '--ipv4-only and --ipv6-only exclude each other',
  ],
  [
    '--no-wait of a suite with deploy scripts',
    () => ['up', 'demo-suite', '--no-wait'],
    2,
    '--no-wait: suite demo-suite has deploy scripts, which run over SSH once the VMs answer',
  ],
  [
    '--custom-install without --custom-repo',
    () => ['up', 'demo-suite', '--custom-install', 'ost-probe'],
    2,
    '--custom-install ost-probe: installs from custom repos, and none is given',
  ],
  [
    '--keep-days abc',
    () => ['gc', '--layers', '--keep-days', 'abc'],
    2,
    '--keep-days abc: expected a whole number from 0 to 36500',
  ],
  [
    '--lines abc',
    () => ['console', 'vm', '--log', '--lines', 'abc'],
    2,
    '--lines abc: expected a whole number',
  ],
  [
    '--jobs 0',
    () => ['build-images', path.join(REPO_ROOT, 'images/debian12.yaml'), '--out', made.out, '--jobs', '0'],
    2,
    '--jobs 0: expected a whole number from 1 to 64',
  ],
  [
    '--timeout 1e3',
    () => ['up', 'demo-suite', '--timeout', '1e3'],
    2,
    '--timeout 1e3: expected a whole number from 1 to 86400',
  ],
  [
    'boot-image --timeout abc',
    () => ['boot-image', '--timeout', 'abc'],
    2,
    '--timeout abc: expected a whole number from 1 to 86400',
  ],
  [
    '--memory 12.5',
    () => ['boot-image', '--memory', '12.5'],
    2,
    '--memory 12.5: expected a whole number from 256',
  ],
];

async function runCli(argv: string[]) {
  let stderr = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  const saved = { ...process.env };
  Object.assign(process.env, {
    OST_STATE_DIR: made.state,
    OST_OVERLAY_DIR: made.overlays,
    OST_OVERLAY_FALLBACK: made.fallback,
    OST_LAYER_CACHE: made.layers,
    LIBVIRT_DEFAULT_URI: 'test:///nonexistent',
    OST_IMAGES_DISTRO: 'debian12',
  });
  try {
    return { code: await main(argv), stderr };
  } finally {
    spy.mockRestore();
    process.env = saved;
  }
}

describe('bad input: one message, nothing created', () => {
  it.each(cases)('%s', async (_name, argv, code, message) => {
    const r = await runCli(argv());
    expect(r.code, r.stderr).toBe(code);
    // one error: the first line says it, the rest is at most its hint or problem list
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    // a usage error (yargs' or a flag coerce's) points at --help; an input error names its fix
    if (
      code === 2 &&
      typeof message === 'string' &&
      message.startsWith('--') &&
      !message.includes(' exclude ')
    )
      expect(r.stderr).toMatch(/\n(run ost --help for usage|hint: .+)\n$/);
    expect(errors, r.stderr).toHaveLength(1);
    if (typeof message === 'string') expect(r.stderr).toContain(message);
    else expect(r.stderr).toMatch(message);
    for (const [what, p] of Object.entries(made)) expect(existsSync(p), `${what}: ${p}`).toBe(false);
    expect(readdirSync(dir).sort()).toEqual(['inputs']);
  });
});
