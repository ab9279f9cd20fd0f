// Which process owns something, robust against pid reuse: pid plus its start time from /proc.
import { readFileSync } from 'node:fs';

/** A process identity: pid and its start time (clock ticks since boot, /proc/<pid>/stat field 22). */
export interface ProcessId {
  pid: number;
  start: string;
}

/** The start time of a pid, or undefined when it is gone (or /proc is unavailable). */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may contain spaces and parentheses: split after its last ')'
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

/** Whether a process with this pid is alive on this host. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** This process. */
export function self(): ProcessId {
  return { pid: process.pid, start: processStart(process.pid) ?? '' };
}

/** Whether that exact process is still running (same pid and same start time). */
export function processAlive(p: ProcessId): boolean {
  if (!pidAlive(p.pid)) return false;
  const start = processStart(p.pid);
  return start === undefined || p.start === '' || start === p.start;
}
