// Quoting words for a shell: for display (logs, --dry-run) and for text a shell reads (scriptlets, guest
// commands). Nothing here runs anything; core/exec.ts runs argv arrays only.
import { redactUrlsIn } from './redact-url.js';

/**
 * Shell-quote an argv for display (logs, --dry-run, errors); never used to run anything. URLs lose their
 * credentials (`https://user:pass@host` → `https://host`): what is displayed is what gets recorded.
 */
export function formatCommand(argv: readonly string[]): string {
  return argv.map((a) => quoteArg(redactUrlsIn(a))).join(' ');
}

function quoteArg(a: string): string {
  if (a === '') return "''";
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a)) return a;
  return `'${a.replace(/'/g, `'\\''`)}'`;
}

/** Single-quote a word for /bin/sh (scriptlets, guest commands). */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
