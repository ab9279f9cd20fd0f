// Renders library events: an ora spinner on a terminal, plain timestamped lines otherwise.
import ora, { type Ora } from 'ora';
import type { OstEvent, Reporter } from '../core/events.js';
import { formatCommand } from '../core/exec.js';

const secs = (ms?: number) => (ms === undefined ? '' : ` in ${(ms / 1000).toFixed(1)}s`);

export interface CliReporter {
  reporter: Reporter;
  stop(): void;
}

/** Top-level steps (layers) get a line each; sub-steps only move the spinner. */
export function cliReporter(
  opts: { verbose?: boolean; quiet?: boolean; doneWord?: string } = {},
): CliReporter {
  const tty = Boolean(process.stderr.isTTY);
  const spinner: Ora | undefined = tty && !opts.quiet ? ora({ stream: process.stderr }) : undefined;
  const active = new Map<string, string>();
  const started = Date.now();
  const refresh = () => {
    if (!spinner) return;
    if (active.size === 0) {
      spinner.stop();
      return;
    }
    spinner.text = [...active.values()].join('  |  ');
    if (!spinner.isSpinning) spinner.start();
  };
  /** A line on stderr; `quiet` (--json: the result on stdout) keeps only warnings, which a user must see. */
  const line = (symbol: string, text: string, always = false) => {
    if (opts.quiet && !always) return;
    if (spinner) {
      spinner.stopAndPersist({ symbol, text });
      refresh();
    } else {
      const t = ((Date.now() - started) / 1000).toFixed(1).padStart(7);
      process.stderr.write(`[${t}s] ${symbol} ${text}\n`);
    }
  };
  const reporter: Reporter = (e: OstEvent) => {
    switch (e.type) {
      case 'step': {
        const top = !e.id.includes('/');
        if (e.status === 'start') {
          if (top) {
            active.set(e.id, e.title);
            if (!spinner) line('…', `${e.title}: started`);
          } else {
            const layer = e.id.split('/')[0] as string;
            active.set(layer, e.title);
            if (!spinner && opts.verbose) line(' ', e.title);
          }
          refresh();
          return;
        }
        if (!top) {
          if (opts.verbose) line(' ', `${e.title}${secs(e.durationMs)}`);
          return;
        }
        active.delete(e.id);
        const sym = { done: '✔', failed: '✖', cached: '●', skipped: '○', start: '…' }[e.status];
        const what = {
          done: e.doneWord ?? opts.doneWord ?? 'done',
          failed: 'FAILED',
          cached: 'cached',
          skipped: 'skipped',
          start: '',
        }[e.status];
        line(sym, `${e.title}: ${what}${secs(e.durationMs)}${e.detail ? ` (${e.detail})` : ''}`);
        return;
      }
      case 'warning':
        line('⚠', `warning: ${e.message}`, true);
        return;
      case 'info':
        line('ℹ', e.message);
        return;
      case 'command':
        if (opts.verbose) line('$', formatCommand(e.argv));
        return;
      default: {
        const never: never = e;
        void never;
      }
    }
  };
  return { reporter, stop: () => spinner?.stop() };
}
