// dpkg-deb adapter: the control fields of a .deb file (for Packages indexes and custom layers' keys), and
// building one from a tree (tests and benchmarks make their probe packages with it).

/** argv: print every control field of a .deb, as its control file has them. */
export function debFieldsArgv(file: string): string[] {
  return ['dpkg-deb', '-f', file];
}

/** argv: build a .deb from a tree with DEBIAN/control, files owned by root. */
export function debBuildArgv(tree: string, out: string): string[] {
  return ['dpkg-deb', '--root-owner-group', '--build', tree, out];
}

/**
 * Parse one deb822 stanza (a control file, a Packages entry): field names as written, continuation lines
 * (starting with a space) kept in the value with their newlines.
 */
export function parseStanza(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split('\n')) {
    if (/^[ \t]/.test(line) && last) {
      fields.set(last, `${fields.get(last)}\n${line}`);
      continue;
    }
    const m = /^([A-Za-z0-9][A-Za-z0-9-]*):[ \t]*(.*)$/.exec(line);
    if (!m) continue;
    last = m[1] as string;
    fields.set(last, m[2] as string);
  }
  return fields;
}

/** Split a Packages index into stanzas (blank-line separated). */
export function parseStanzas(text: string): Map<string, string>[] {
  return text
    .split(/\n[ \t]*\n/)
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parseStanza);
}
