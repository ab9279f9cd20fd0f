// Fault injection for the tests: `OST_FAULT_PAUSE=<point>` makes the process stop at that named point
// (after writing `$OST_FAULT_MARK`, so a test knows it is there) until it is killed. The kill -9 tests of
// publish-images use it to die exactly during a copy, before a swap, after a swap. Unset, it costs nothing.
// The CLI reads the variables once (core/config.ts) and hands them here at start (setFaultPoints).

import { existsSync, writeFileSync } from 'node:fs';
import type { FaultSettings } from './config.js';

let settings: FaultSettings = {};

/** Arm the fault points (the CLI, at start, with what OST_FAULT_* say); none armed until then. */
export function setFaultPoints(s: FaultSettings): void {
  settings = { ...s };
}

/**
 * Stop here when OST_FAULT_PAUSE names this point (tests only): forever, or, when `$OST_FAULT_RESUME` names
 * a file, until that file exists (a test changes the world meanwhile, e.g. takes a subnet); or, given a
 * `signal`, until it aborts (Ctrl-C at that point): then it throws the abort's reason.
 */
export async function faultPoint(name: string, signal?: AbortSignal): Promise<void> {
  if (settings.pause !== name) return;
  if (settings.mark) writeFileSync(settings.mark, `${name} ${process.pid}\n`);
  const resume = settings.resume;
  // the timer keeps node running until the test kills us, or resumes or interrupts (`signal`) us
  while (!resume || !existsSync(resume)) {
    signal?.throwIfAborted();
    await new Promise((r) => setTimeout(r, 50));
  }
}
