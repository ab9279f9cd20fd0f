// rpmbuild / rpm / rpmsign / rpm2cpio adapters.

/** argv: build binary RPMs from a spec, with everything under topdir. */
export function rpmbuildArgv(spec: string, topdir: string, defines: Record<string, string> = {}): string[] {
  const argv = ['rpmbuild', '-bb', '--quiet', '--define', `_topdir ${topdir}`];
  for (const [k, v] of Object.entries(defines)) argv.push('--define', `${k} ${v}`);
  argv.push(spec);
  return argv;
}

/** argv: query an RPM file's provides. */
export function queryProvidesArgv(rpmFile: string): string[] {
  return ['rpm', '-qp', '--nosignature', '--provides', rpmFile];
}

/** argv: query an RPM file's requires. */
export function queryRequiresArgv(rpmFile: string): string[] {
  return ['rpm', '-qp', '--nosignature', '--requires', rpmFile];
}

/** argv: sign RPMs in place with a GPG key from the keyring ($GNUPGHOME). */
export function rpmsignArgv(keyId: string, files: string[], gpg = '/usr/bin/gpg'): string[] {
  // Quirk (Debian's rpm 4.18): %__gpg is /usr/bin/gpg2, which Debian does not ship
  return ['rpmsign', '--addsign', '--define', `_gpg_name ${keyId}`, '--define', `__gpg ${gpg}`, ...files];
}

/** Parse `rpm -q --provides`/`--requires` lines: `name = version` or `name`. */
export function parseDeps(stdout: string): { name: string; flags?: string; version?: string }[] {
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const m = /^(\S+)\s*(<=|>=|=|<|>)\s*(\S+)$/.exec(l);
      return m ? { name: m[1] as string, flags: m[2], version: m[3] } : { name: l };
    });
}
