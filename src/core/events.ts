// Library code reports progress through events; only src/cli renders them.

export type StepStatus = 'start' | 'done' | 'failed' | 'skipped' | 'cached';

export type OstEvent =
  | {
      type: 'step';
      id: string;
      title: string;
      status: StepStatus;
      durationMs?: number;
      detail?: string;
      /** How to say 'done' for this step (built, fetched, ...). */
      doneWord?: string;
    }
  | { type: 'warning'; message: string; subject?: string }
  | { type: 'info'; message: string; subject?: string }
  | { type: 'command'; argv: readonly string[]; subject?: string };

/** Receives events; the CLI renders them, tests collect them. */
export type Reporter = (event: OstEvent) => void;

/** A reporter that drops everything. */
export const silentReporter: Reporter = () => {};

/** A reporter that keeps every event, for tests and --json. */
export function collectingReporter(): { reporter: Reporter; events: OstEvent[] } {
  const events: OstEvent[] = [];
  return { reporter: (e) => events.push(e), events };
}

/** Time a step, reporting start and done/failed around it. */
export async function step<T>(
  reporter: Reporter,
  id: string,
  title: string,
  fn: () => Promise<T>,
): Promise<T> {
  const started = Date.now();
  reporter({ type: 'step', id, title, status: 'start' });
  try {
    const value = await fn();
    reporter({ type: 'step', id, title, status: 'done', durationMs: Date.now() - started });
    return value;
  } catch (err) {
    reporter({ type: 'step', id, title, status: 'failed', durationMs: Date.now() - started });
    throw err;
  }
}
