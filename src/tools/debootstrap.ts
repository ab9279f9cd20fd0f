// debootstrap adapter.

export interface DebootstrapSpec {
  suite: string;
  mirror: string;
  target: string;
  variant?: string;
  components: string[];
  include: string[];
}

/** argv for debootstrap (needs root). */
export function debootstrapArgv(s: DebootstrapSpec): string[] {
  const argv = ['debootstrap'];
  if (s.variant) argv.push(`--variant=${s.variant}`);
  argv.push(`--components=${s.components.join(',')}`);
  if (s.include.length > 0) argv.push(`--include=${s.include.join(',')}`);
  argv.push(s.suite, s.target, s.mirror);
  return argv;
}
