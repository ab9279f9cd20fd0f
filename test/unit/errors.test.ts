// The top-level error handler: a bug (InternalError, or any error that is none of ost's own: a TypeError
// reaching the top) is rendered with its stack and where to report it and exits 70; what a user can fix
// keeps its message, hint and exit code.
import { describe, expect, it } from 'vitest';
import { exitCodeFor, isInternal, REPORT_BUG, renderError } from '../../src/cli/errors.js';
import { onInterrupt } from '../../src/core/cleanup.js';
import {
  ConfigError,
  InternalError,
  InterruptedError,
  OstError,
  ToolError,
  UsageError,
} from '../../src/core/errors.js';
import { DeployFailedError } from '../../src/launcher/deployed/build.js';

describe('bugs', () => {
  it('renders an InternalError with its stack, its cause and where to report it; exit 70', () => {
    const cause = new TypeError('x is undefined');
    const err = new InternalError('unknown base {"kind":"nope"}', cause);
    const text = renderError(err);
    const lines = text.split('\n');
    expect(lines[0]).toBe('internal error: unknown base {"kind":"nope"}');
    expect(lines[1]).toMatch(/^ {2}at .*errors\.test\.ts/);
    expect(text).toContain('caused by: x is undefined');
    expect(lines.at(-1)).toBe(REPORT_BUG);
    expect(REPORT_BUG).toContain('"Reporting a bug"');
    expect(exitCodeFor(err)).toBe(70);
  });

  it('takes a plain Error, a TypeError or a thrown string reaching the top for a bug too', () => {
    for (const err of [
      new Error('boom'),
      new TypeError("Cannot read properties of undefined (reading 'x')"),
    ]) {
      const text = renderError(err);
      expect(text.startsWith(`internal error: ${err.message}\n  at `)).toBe(true);
      expect(text.endsWith(REPORT_BUG)).toBe(true);
      expect(exitCodeFor(err)).toBe(70);
      expect(isInternal(err)).toBe(true);
    }
    expect(renderError('a string')).toBe(`internal error: a string\n${REPORT_BUG}`);
    expect(exitCodeFor('a string')).toBe(70);
  });
});

describe('what the user can fix keeps its exit code and shows no stack', () => {
  it('UsageError and ConfigError: 2', () => {
    const usage = new UsageError('--force nope: no such layer in set.yaml', 'layers are: base');
    expect(renderError(usage)).toBe('error: --force nope: no such layer in set.yaml\nhint: layers are: base');
    expect(exitCodeFor(usage)).toBe(2);
    const config = new ConfigError([{ file: 'set.yaml', path: 'layers[0]', message: 'bad', line: 3 }]);
    expect(renderError(config)).toBe('error: 1 problem in configuration:\n  set.yaml:3: layers[0]: bad');
    expect(exitCodeFor(config)).toBe(2);
  });

  it('OstError and ToolError: 1; InterruptedError: 130', () => {
    const ost = new OstError('cannot reach libvirt', 'start libvirtd');
    expect(renderError(ost)).toBe('error: cannot reach libvirt\nhint: start libvirtd');
    expect(exitCodeFor(ost)).toBe(1);
    const tool = new ToolError('exited', 'virsh list', 1, 100, ['error: nope']);
    expect(renderError(tool)).toBe('error: exited with code 1 after 0.1s: virsh list\n    | error: nope');
    expect(exitCodeFor(tool)).toBe(1);
    expect(exitCodeFor(new InterruptedError('ost up'))).toBe(130);
    expect(isInternal(ost) || isInternal(tool) || isInternal(new InterruptedError('x'))).toBe(false);
  });

  it("a set built and published whose suite's deploy failed: 4, the suites and where the repo stands", () => {
    const published = new DeployFailedError([{ suite: 'demo', error: 'deploy.sh exited 3' }], true);
    expect(exitCodeFor(published)).toBe(4);
    expect(renderError(published)).toBe(
      'error: the deploy of suite demo failed: deploy.sh exited 3\nhint: the set was published without their deployed packages: the repository still serves the last ones, pinned to the images they were made on',
    );
    expect(renderError(new DeployFailedError([{ suite: 'a', error: 'x' }], false))).toContain(
      'fix the deploy and run build-images again',
    );
  });

  it("Ctrl-C's abort reason is an InterruptedError, also when it comes wrapped in an AbortError", () => {
    const abort = new AbortController();
    const off = onInterrupt(abort, () => {});
    try {
      process.emit('SIGINT', 'SIGINT');
    } finally {
      off();
    }
    expect(abort.signal.reason).toBeInstanceOf(InterruptedError);
    expect(() => abort.signal.throwIfAborted()).toThrow('interrupted: by SIGINT');
    const wrapped = new DOMException('This operation was aborted', 'AbortError');
    Object.defineProperty(wrapped, 'cause', { value: abort.signal.reason });
    expect(exitCodeFor(wrapped)).toBe(130);
    expect(renderError(wrapped)).toBe('error: interrupted: by SIGINT');
  });
});
