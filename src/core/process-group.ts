// Commands out of the terminal's signals: a section of ost whose children each get a process group of
// their own (exec.ts asks ownGroup() at every spawn).
import { AsyncLocalStorage } from 'node:async_hooks';

const ownGroups = new AsyncLocalStorage<true>();

/**
 * Run `fn` with every process it starts in a process group of its own (setsid): a Ctrl-C at the terminal,
 * which SIGINTs the whole foreground group, then reaches ost alone, and `fn` runs to its end (`ost revert`
 * once the VMs are stopped). The children still die with ost (pdeathsig): a second Ctrl-C stops it all.
 */
export function withoutTerminalSignals<T>(fn: () => Promise<T>): Promise<T> {
  return ownGroups.run(true, fn);
}

/** Whether a child started now goes into a group of its own (withoutTerminalSignals). */
export const ownGroup = (): boolean => ownGroups.getStore() === true;
