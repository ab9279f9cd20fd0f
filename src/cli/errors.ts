// The top-level error handler: one clear message per failure, with the hint and the log tail. A bug (an
// InternalError, or any error none of ost's own types: a TypeError reaching the top) is told apart from
// what the user can fix: its stack and where to report it, exit 70 (EX_SOFTWARE).
import { BuildFailedError, IncompletePlanError, LayerBuildError } from '../builder/result.js';
import {
  ConfigError,
  errorMessage,
  InternalError,
  InterruptedError,
  OstError,
  ToolError,
  UsageError,
} from '../core/errors.js';
import { DeployFailedError } from '../launcher/deployed/build.js';

/** Where a bug is reported, printed under every internal error. */
export const REPORT_BUG =
  'this is a bug in ost, not something you did: please report it with the command you ran, this whole ' +
  'output and `ost --version` (README.md, "Reporting a bug")';

/** The user's interrupt behind an error: an InterruptedError, or an AbortError whose cause (the abort reason) is one. */
function interruptOf(err: unknown): InterruptedError | undefined {
  if (err instanceof InterruptedError) return err;
  if (err instanceof Error && err.name === 'AbortError' && err.cause instanceof InterruptedError)
    return err.cause;
  return undefined;
}

/** Whether an error is a bug in ost (an InternalError, or none of the errors ost throws for users). */
export function isInternal(err: unknown): boolean {
  if (err instanceof InternalError) return true;
  if (interruptOf(err)) return false;
  return !(err instanceof OstError || err instanceof ToolError || err instanceof ConfigError);
}

/** The stack of an error and of its causes, without the first line (the message, said above it). */
function stackOf(err: unknown): string[] {
  const lines: string[] = [];
  for (let e = err, depth = 0; e !== undefined && depth < 5; depth++) {
    if (depth > 0) lines.push(`caused by: ${errorMessage(e)}`);
    const stack = e instanceof Error && e.stack ? e.stack.split('\n').filter((l) => /^\s+at /.test(l)) : [];
    lines.push(...stack.map((l) => `  ${l.trim()}`));
    e = e instanceof Error ? e.cause : undefined;
  }
  return lines;
}

function renderInternal(err: unknown): string {
  return [`internal error: ${errorMessage(err)}`, ...stackOf(err), REPORT_BUG].join('\n');
}

function indent(lines: string[]): string {
  return lines.map((l) => `    | ${l}`).join('\n');
}

/** Text for an error, for stderr. */
export function renderError(err: unknown): string {
  if (isInternal(err)) return renderInternal(err);
  const interrupt = interruptOf(err);
  if (interrupt && interrupt !== err) return renderError(interrupt);
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
  return renderInternal(err);
}

/**
 * Exit code by error type: 70 for a bug, 130 interrupted, 2 for bad input (a file or a flag), 3 for a
 * --dry-run plan that is incomplete (printed, but some repositories could not be read), 4 for a set built
 * (and published) whose deploy of a suite failed (build-images --deployed), else 1.
 */
export function exitCodeFor(err: unknown): number {
  if (isInternal(err)) return 70;
  if (interruptOf(err)) return 130;
  if (err instanceof IncompletePlanError) return 3;
  if (err instanceof DeployFailedError) return 4;
  return err instanceof ConfigError || err instanceof UsageError ? 2 : 1;
}
