// createrepo_c adapter.

export interface CreaterepoSpec {
  /** Directory scanned for RPMs (the repository root). */
  repo: string;
  /** Where repodata/ is written. */
  outputDir: string;
  /** Reuse checksums from this existing repodata (skips re-reading unchanged multi-GB RPMs). */
  updateFrom?: string;
  /** Glob patterns of files to leave out. */
  excludes?: string[];
}

/** argv for createrepo_c; xml metadata is gzip-compressed so any client (and our reader) can read it. */
export function createrepoArgv(s: CreaterepoSpec): string[] {
  const argv = [
    'createrepo_c',
    '--quiet',
    '--general-compress-type',
    'gz',
    '--no-database',
    '--outputdir',
    s.outputDir,
  ];
  if (s.updateFrom) argv.push('--update', '--update-md-path', s.updateFrom);
  for (const e of s.excludes ?? []) argv.push('--excludes', e);
  argv.push(s.repo);
  return argv;
}
