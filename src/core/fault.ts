// Fault injection for the tests: `OST_FAULT_PAUSE=<point>` makes the process stop at that named point
// (after writing `$OST_FAULT_MARK`, so a test knows it is there) until it is killed. The kill -9 tests of
// publish-images use it to die exactly during a copy, before a swap, after a swap. Unset, it costs nothing.

import { existsSync, writeFileSync } from 'node:fs';

/**
 * Stop here when OST_FAULT_PAUSE names this point (tests only): forever, or, when `$OST_FAULT_RESUME` names
 * a file, until that file exists (a test changes the world meanwhile, e.g. takes a subnet).
 */
export async function faultPoint(name: string): Promise<void> {
  if (process.env.OST_FAULT_PAUSE !== name) return;
  if (process.env.OST_FAULT_MARK) writeFileSync(process.env.OST_FAULT_MARK, `${name} ${process.pid}\n`);
  const resume = process.env.OST_FAULT_RESUME;
  // a pending promise alone does not keep node running: a timer does, until the test kills us
  if (!resume) await new Promise(() => setInterval(() => {}, 3_600_000));
  else while (!existsSync(resume)) await new Promise((r) => setTimeout(r, 50));
}
