// Error types shared by builder and launcher. Library code throws these; only src/cli renders them.

/** How an external command failed. */
export type ToolErrorKind = 'spawn-failed' | 'exited' | 'killed' | 'timed-out';

/** A failed external command: what ran, how it ended and the tail of what it said. */
export class ToolError extends Error {
  constructor(
    readonly kind: ToolErrorKind,
    readonly commandLine: string,
    readonly exitCode: number | undefined,
    readonly durationMs: number,
    readonly tail: string[],
    readonly logFile?: string,
  ) {
    super(ToolError.describe(kind, commandLine, exitCode, durationMs));
    this.name = 'ToolError';
  }

  static describe(
    kind: ToolErrorKind,
    commandLine: string,
    exitCode: number | undefined,
    ms: number,
  ): string {
    const secs = (ms / 1000).toFixed(1);
    switch (kind) {
      case 'spawn-failed':
        return `could not start: ${commandLine}`;
      case 'exited':
        return `exited with code ${exitCode} after ${secs}s: ${commandLine}`;
      case 'killed':
        return `killed after ${secs}s: ${commandLine}`;
      case 'timed-out':
        return `timed out after ${secs}s: ${commandLine}`;
      default: {
        const never: never = kind;
        return String(never);
      }
    }
  }
}

/** An error the user can act on: what went wrong, and what to do about it. */
export class OstError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'OstError';
  }
}

/**
 * A bug in ost, not something the user can fix: a broken invariant (a case that cannot happen, a value that
 * an earlier check guarantees). The CLI prints it with its stack and where to report it, and exits 70.
 */
export class InternalError extends Error {
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'InternalError';
  }
}

/** A bad command-line value found after parsing (an unknown layer, a malformed id): exit 2, as a usage error. */
export class UsageError extends OstError {
  constructor(message: string, hint?: string) {
    super(message, hint);
    this.name = 'UsageError';
  }
}

/** One problem found in a configuration file. */
export interface ConfigProblem {
  file: string;
  /** Key path such as `layers[1].parent`; empty for the whole file. */
  path: string;
  message: string;
  /** 1-based line of the offending value, when known. */
  line?: number;
}

/** Every problem found in a configuration file, reported at once. */
export class ConfigError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(ConfigError.format(problems));
    this.name = 'ConfigError';
  }

  static format(problems: ConfigProblem[]): string {
    const lines = problems.map((p) => {
      const where = `${p.file}${p.line ? `:${p.line}` : ''}`;
      return `  ${where}: ${p.path || '(file)'}: ${p.message}`;
    });
    const n = problems.length;
    return `${n} problem${n === 1 ? '' : 's'} in configuration:\n${lines.join('\n')}`;
  }
}

/** Narrow an unknown thrown value to a message. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The user interrupted (Ctrl-C/SIGTERM); everything in progress was undone. */
export class InterruptedError extends OstError {
  constructor(what: string) {
    super(`interrupted: ${what}`);
    this.name = 'InterruptedError';
  }
}
