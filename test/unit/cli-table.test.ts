// The command table: one camelCase mapping for every flag, and a usage error that stops before any handler.
import { describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { argsOf, camel, flag, numeric, renamed, text, textList } from '../../src/cli/spec.js';
import { COMMANDS } from '../../src/cli/table.js';

async function runCli(argv: string[]) {
  let stderr = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    return { code: await main(argv), stderr };
  } finally {
    spy.mockRestore();
  }
}

describe('argsOf', () => {
  const specs = {
    'overlay-dir': text('d'),
    'ipv4-only': flag('f'),
    wait: flag('w', true),
    jobs: numeric((v) => Number(v), 'n', '2'),
    'custom-repo': renamed('customRepos', textList('r')),
  } as const;

  it('maps every flag to its camelCase field (or its renamed one), typed', () => {
    expect(
      argsOf(specs, {
        'overlay-dir': '/o',
        wait: false,
        jobs: 3,
        'custom-repo': ['a', 'b'],
        overlayDir: 'x',
      }),
    ).toEqual({ overlayDir: '/o', ipv4Only: false, wait: false, jobs: 3, customRepos: ['a', 'b'] });
  });

  it('absent text is undefined, an absent list is empty, a repeated one-value flag takes the last', () => {
    const a = argsOf(specs, { jobs: 2, 'overlay-dir': ['/a', '/b'], 'ipv4-only': [false, true] });
    expect(a.overlayDir).toBe('/b');
    expect(a.ipv4Only).toBe(true);
    expect(argsOf({ x: text('x'), y: textList('y') }, {})).toEqual({ x: undefined, y: [] });
  });

  it('camel', () => {
    expect(camel('keep-on-failure')).toBe('keepOnFailure');
    expect(camel('ipv4-only')).toBe('ipv4Only');
    expect(camel('json')).toBe('json');
  });
});

describe('the table', () => {
  it('declares each command once, with its usage words', () => {
    const names = COMMANDS.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    const usage = Object.fromEntries(COMMANDS.map((c) => [c.name, c.usage]));
    expect(usage['build-images']).toBe('build-images <set..>');
    expect(usage['boot-image']).toBe('boot-image [set] [layer]');
    expect(usage.checkpoint).toBe('checkpoint <env> <name>');
    expect(usage.ssh).toBe('ssh <vm> [command..]');
    expect(usage.gc).toBe('gc');
  });

  it.each([
    // each handler, were it run, would fail too (a second error) and harmlessly: no set, no file
    ['an unknown flag', ['boot-image', '--frob'], 'Unknown argument: frob'],
    ['a missing positional', ['rm-checkpoint'], 'Not enough non-option arguments: got 0, need at least 1'],
    [
      'a missing demanded flag',
      ['publish-images', '/nonexistent/set.yaml'],
      'Missing required argument: repo',
    ],
  ])('%s: exit 2, one error, and the handler never runs', async (_name, argv, message) => {
    const r = await runCli(argv);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toBe(`error: ${message}\nrun ost --help for usage\n`);
  });
});
