// The CLI's reporter: with --json (quiet) the result goes to stdout alone, and stderr keeps only the
// warnings, which a user must see (an env that started isolated, a package left out of a publish).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cliReporter } from '../../src/cli/reporter.js';

describe('the CLI reporter', () => {
  afterEach(() => vi.restoreAllMocks());
  const capture = () => {
    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    return lines;
  };

  it('quiet (--json): warnings only', () => {
    const lines = capture();
    const { reporter, stop } = cliReporter({ quiet: true });
    reporter({ type: 'step', id: 'a', title: 'a step', status: 'start' });
    reporter({ type: 'step', id: 'a', title: 'a step', status: 'done', durationMs: 10 });
    reporter({ type: 'info', message: 'said in passing' });
    reporter({ type: 'warning', message: 'the env starts isolated' });
    stop();
    expect(lines.join('')).not.toContain('a step');
    expect(lines.join('')).not.toContain('said in passing');
    expect(lines.join('')).toMatch(/⚠ warning: the env starts isolated\n$/);
  });

  it('not quiet: steps, info and warnings', () => {
    const lines = capture();
    const { reporter, stop } = cliReporter({});
    reporter({ type: 'step', id: 'a', title: 'a step', status: 'done', durationMs: 10 });
    reporter({ type: 'info', message: 'said in passing' });
    reporter({ type: 'warning', message: 'careful' });
    stop();
    const text = lines.join('');
    expect(text).toContain('a step');
    expect(text).toContain('said in passing');
    expect(text).toContain('warning: careful');
  });
});
