// Undo registry: every resource registers its undo when created; on failure or Ctrl-C undo runs in reverse.
import { errorMessage, InterruptedError } from './errors.js';
import type { Reporter } from './events.js';

interface Undo {
  label: string;
  fn: () => Promise<void>;
}

/** A stack of undo actions run in reverse order of registration. */
export class CleanupStack {
  private undos: Undo[] = [];

  /** Register an undo; returns a function that drops it (when the resource was committed). */
  add(label: string, fn: () => Promise<void>): () => void {
    const u: Undo = { label, fn };
    this.undos.push(u);
    return () => {
      this.undos = this.undos.filter((x) => x !== u);
    };
  }

  /** Run every registered undo, newest first; failures are reported, not thrown. */
  async unwind(reporter?: Reporter): Promise<void> {
    while (this.undos.length > 0) {
      const u = this.undos.pop();
      if (!u) break;
      try {
        await u.fn();
      } catch (err) {
        reporter?.({ type: 'warning', message: `cleanup of ${u.label} failed: ${errorMessage(err)}` });
      }
    }
  }

  get size(): number {
    return this.undos.length;
  }
}

/** The signals that interrupt ost: Ctrl-C, kill, and a closed terminal (an ssh session that drops). */
export const INTERRUPT_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * First SIGINT/SIGTERM/SIGHUP aborts gracefully (commands are killed, undo runs) with an InterruptedError
 * as the abort reason; a second one exits at once. Returns a function that removes the handlers.
 */
export function onInterrupt(abort: AbortController, onHard: () => void): () => void {
  let count = 0;
  const handler = (sig: NodeJS.Signals) => {
    count += 1;
    // the reason is what signal.throwIfAborted() throws: the user's interrupt, not a bug
    if (count === 1) abort.abort(new InterruptedError(`by ${sig}`));
    else onHard();
  };
  for (const sig of INTERRUPT_SIGNALS) process.on(sig, handler);
  return () => {
    for (const sig of INTERRUPT_SIGNALS) process.off(sig, handler);
  };
}
