// guestfish adapter: scripts are written to a file and passed with -f (no shell involved).
import type { ExecOptions } from '../core/exec.js';
import { runArgv } from './run-tool.js';

/** argv: run a guestfish script file against a writable disk. */
export function scriptArgv(disk: string, scriptFile: string): string[] {
  return ['guestfish', '--format=qcow2', '-a', disk, '-f', scriptFile];
}

/** argv: read files from an inspected guest, read-only. */
export function readArgv(disk: string, commands: string[][]): string[] {
  const argv = ['guestfish', '--ro', '--format=qcow2', '-a', disk, '-i'];
  commands.forEach((c, i) => {
    if (i > 0) argv.push(':');
    argv.push(...c);
  });
  return argv;
}

/**
 * Quote one guestfish argument (guestfish's own syntax: a script file or its command loop, one command per
 * line). Inside double quotes guestfish reads backslash escapes, so a multi-line argument stays one line.
 */
export function gfQuote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  const escaped = arg
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\n/g, '\\n')
    .replace(/\t/g, '\\t')
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped here
    .replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return `"${escaped}"`;
}

/** Run guestfish read-only commands against an image and return stdout. */
export async function readFromGuest(
  disk: string,
  commands: string[][],
  opts: ExecOptions = {},
): Promise<string> {
  const res = await runArgv(readArgv(disk, commands), opts);
  return res.stdout;
}
