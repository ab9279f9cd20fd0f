// The top-level error handler: one clear message per failure, with the hint and the log tail.
import { BuildFailedError, LayerBuildError } from '../builder/result.js';
import {
  ConfigError,
  errorMessage,
  InterruptedError,
  OstError,
  ToolError,
  UsageError,
} from '../core/errors.js';

function indent(lines: string[]): string {
  return lines.map((l) => `    | ${l}`).join('\n');
}

/** Text for an error, for stderr. */
export function renderError(err: unknown): string {
  if (err instanceof ConfigError) return `error: ${err.message}`;
  if (err instanceof BuildFailedError) {
    const parts = [`error: ${err.message}`];
    for (const o of err.result.outcomes) {
      if (o.status !== 'failed' || !o.error) continue;
      parts.push(`  ${o.error.message}`);
      if (o.error.tail.length > 0) parts.push(`  last lines of the log:\n${indent(o.error.tail.slice(-20))}`);
      parts.push(`  full log: ${o.error.logFile}`);
    }
    const skipped = err.result.outcomes.filter((o) => o.status === 'skipped');
    for (const o of skipped) parts.push(`  ${o.layer}: skipped (${o.reason})`);
    if (err.hint) parts.push(`hint: ${err.hint}`);
    return parts.join('\n');
  }
  if (err instanceof LayerBuildError) {
    return `error: ${err.message}\n${indent(err.tail)}\nhint: ${err.hint}`;
  }
  if (err instanceof ToolError) {
    return `error: ${err.message}${err.tail.length ? `\n${indent(err.tail.slice(-20))}` : ''}`;
  }
  if (err instanceof OstError) return `error: ${err.message}${err.hint ? `\nhint: ${err.hint}` : ''}`;
  return `error: ${errorMessage(err)}`;
}

/** Exit code by error type: 2 for bad input (a file or a flag), 1 for everything else. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof InterruptedError) return 130;
  return err instanceof ConfigError || err instanceof UsageError ? 2 : 1;
}
