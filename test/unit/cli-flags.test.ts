// Bad flag values are usage errors at the boundary (exit 2, one line naming the flag and what it takes),
// before any command runs: `--jobs abc` never means "unlimited", `--timeout abc` never throws RangeError.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';

async function runCli(argv: string[]): Promise<{ code: number; stderr: string }> {
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

describe('numeric flags', () => {
  afterEach(() => vi.restoreAllMocks());

  it.each([
    [
      ['build-images', 'images/debian12.yaml', '--jobs', 'abc'],
      '--jobs abc: expected a whole number from 1 to 64',
    ],
    [
      ['build-images', 'images/debian12.yaml', '--jobs', '0'],
      '--jobs 0: expected a whole number from 1 to 64',
    ],
    [['boot-image', '--timeout', 'abc'], '--timeout abc: expected a whole number from 1 to 86400'],
    [['boot-image', '--memory', '12.5'], '--memory 12.5: expected a whole number from 256 to 1048576'],
    [['up', 'demo-suite', '--timeout', '1e3'], '--timeout 1e3: expected a whole number from 1 to 86400'],
    [
      ['publish-images', 'images/debian12.yaml', '--repo', '/nonexistent/r', '--keep', '0'],
      '--keep 0: expected a whole number from 1 to 10000',
    ],
  ])('ost %j → one usage error', async (argv, message) => {
    const r = await runCli(argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`error: ${message}\nrun ost --help for usage\n`);
  });
});
