// A guestfish session driven over its command loop (stdin, one command per line, a marker echoed after each
// batch): one appliance boot for a whole job — find and mount the guest's filesystems, copy files in, run
// commands and read their output. Unlike virt-customize it does not inspect the guest (~8 s of a ~23 s run
// under TCG): the root is found by probing the filesystems, the guest's /etc/fstab says the rest.
// Commands whose failure ends the job are sent as they are (guestfish stops at the first error and we
// report it); probes are sent with guestfish's `-` prefix and judged by what they print.
import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { InternalError, OstError, ToolError } from '../core/errors.js';
import { type PipedProcess, startPiped } from '../core/exec.js';
import { requireTool } from '../core/require-tool.js';
import { buildTimeGuestSetup, type CommandStep, type Family } from './guest-steps.js';
import { gfQuote } from './guestfish.js';

export interface SessionSpec {
  disk: string;
  memoryMiB: number;
  /** The appliance's user-mode network (guest commands reach URLs through the host). */
  network: boolean;
}

/** argv of a guestfish command loop on one writable qcow2 disk (its memory is sessionEnv's). */
export function sessionArgv(spec: SessionSpec): string[] {
  return ['guestfish', '--format=qcow2', '-a', spec.disk, ...(spec.network ? ['--network'] : [])];
}

/** guestfish has no memory option (its -m mounts): the appliance's memory is set through the environment. */
export function sessionEnv(spec: SessionSpec): Record<string, string> {
  return { LIBGUESTFS_MEMSIZE: String(spec.memoryMiB) };
}

/** One guestfish command line: the command (maybe `-`-prefixed) and its quoted arguments. */
export function commandLine(cmd: readonly string[]): string {
  const [name = '', ...args] = cmd;
  return [name, ...args.map(gfQuote)].join(' ');
}

/** A guest command that exited non-zero: its status and the last lines it printed (a tool's failure, not a bug). */
export class GuestCommandError extends OstError {
  constructor(
    readonly command: string,
    readonly code: number,
    readonly output: string[],
  ) {
    super(`a command in the guest exited with ${code}`);
    this.name = 'GuestCommandError';
  }
}

/** PATH for guest commands (the appliance's sh starts with a bare environment). */
const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A command wrapped so that it never fails the session: its output (stderr too) and then its status. */
export function wrapGuestCommand(command: string, rcMark: string): string {
  return `export PATH=${GUEST_PATH}\n( ${command}\n) 2>&1\necho "${rcMark} $?"`;
}

/** Split a wrapped command's output into what it printed and its exit status (undefined: no status line). */
export function parseWrappedOutput(
  lines: readonly string[],
  rcMark: string,
): { code: number | undefined; output: string[] } {
  const at = lines.findLastIndex((l) => l.startsWith(`${rcMark} `));
  if (at < 0) return { code: undefined, output: [...lines] };
  return { code: Number((lines[at] as string).slice(rcMark.length + 1)), output: lines.slice(0, at) };
}

interface Pending {
  marker: string;
  lines: string[];
  resolve: (lines: string[]) => void;
}

export class GuestfishSession {
  private pending: Pending | undefined;
  private seq = 0;
  private readonly nonce = randomBytes(6).toString('hex');
  private readonly started = Date.now();
  private closed = false;

  private constructor(
    private readonly proc: PipedProcess,
    private readonly logFile: string | undefined,
  ) {}

  /** Start guestfish on the disk and launch the appliance. */
  static async open(
    spec: SessionSpec,
    opts: {
      env?: Record<string, string | undefined>;
      logFile?: string;
      signal?: AbortSignal;
      timeoutMs?: number;
    } = {},
  ): Promise<GuestfishSession> {
    const [, ...args] = sessionArgv(spec);
    let session: GuestfishSession | undefined;
    const proc = startPiped(requireTool('guestfish'), args, {
      ...opts,
      env: { ...opts.env, ...sessionEnv(spec) },
      onLine: (line) => session?.onLine(line),
    });
    session = new GuestfishSession(proc, opts.logFile);
    try {
      await session.call([['run']]);
    } catch (err) {
      session.kill();
      throw err;
    }
    return session;
  }

  private onLine(line: string): void {
    const p = this.pending;
    if (!p) return;
    if (line === p.marker) {
      this.pending = undefined;
      p.resolve(p.lines);
    } else p.lines.push(line);
  }

  /** Send commands; resolves with the lines they printed. Rejects when guestfish ends first (a command failed). */
  async call(cmds: readonly (readonly string[])[]): Promise<string[]> {
    if (this.pending || this.closed)
      throw new InternalError('guestfish session: one call at a time, before close');
    const marker = `@@ost-sync-${this.nonce}-${++this.seq}`;
    const got = new Promise<string[]>((resolve) => {
      this.pending = { marker, lines: [], resolve };
    });
    this.proc.write(`${[...cmds.map(commandLine), `echo ${marker}`].join('\n')}\n`);
    const result = await Promise.race([got, this.proc.exited.then((code) => ({ code }))]);
    if (Array.isArray(result)) return result;
    this.pending = undefined;
    throw this.failure(result.code);
  }

  /** Each group's output separately, in one round trip (for probes: a failed `-` command prints nothing). */
  async callGroups(groups: readonly (readonly (readonly string[])[])[]): Promise<string[][]> {
    const sep = `@@ost-group-${this.nonce}`;
    const lines = await this.call(groups.flatMap((g) => [...g, ['echo', sep]]));
    const out: string[][] = [[]];
    for (const l of lines) {
      if (l === sep) out.push([]);
      else (out[out.length - 1] as string[]).push(l);
    }
    return out.slice(0, groups.length);
  }

  /** Run a shell command in the mounted guest; throws GuestCommandError when it exits non-zero. */
  async sh(command: string): Promise<string[]> {
    const rcMark = `@@ost-rc-${this.nonce}`;
    const lines = await this.call([['sh', wrapGuestCommand(command, rcMark)]]);
    const { code, output } = parseWrappedOutput(lines, rcMark);
    if (code !== 0) throw new GuestCommandError(command, code ?? -1, output);
    return output;
  }

  /** Unmount everything, shut the appliance down (writes reach the disk), and wait for guestfish to end. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.call([['umount-all'], ['shutdown']]);
    this.closed = true;
    this.proc.write('exit\n');
    this.proc.end();
    const code = await this.proc.exited;
    if (code !== 0) throw this.failure(code);
  }

  /** Kill guestfish (and its appliance) without writing anything more. */
  kill(): void {
    this.closed = true;
    this.proc.kill();
  }

  private failure(code: number | undefined): ToolError {
    const kind = this.proc.timedOut() ? 'timed-out' : code === undefined ? 'killed' : 'exited';
    return new ToolError(
      kind,
      this.proc.commandLine,
      code,
      Date.now() - this.started,
      this.proc.stderrTail(),
      this.logFile,
    );
  }
}

// --- finding and mounting the guest's filesystems -----------------------------------------------------

/** Filesystems a Linux root can be on (probed for /etc/fstab and a package database). */
const ROOT_FS = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs']);
/** fstab types that are not on the disk, or not ours to mount. */
const SKIP_FS = new Set([
  'swap',
  'none',
  'proc',
  'sysfs',
  'tmpfs',
  'devpts',
  'devtmpfs',
  'efivarfs',
  'securityfs',
  'nfs',
  'nfs4',
  'cifs',
  'smb3',
  '9p',
  'virtiofs',
  'fuse',
]);

export interface FstabEntry {
  spec: string;
  mountpoint: string;
  type: string;
  nofail: boolean;
}

/** The entries of a guest's /etc/fstab that are on its disks, besides `/`, parents first. */
export function parseFstab(text: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [spec, mountpoint, type = 'auto', options = 'defaults'] = line.split(/\s+/);
    if (!spec || !mountpoint?.startsWith('/') || mountpoint === '/') continue;
    const opts = options.split(',');
    if (SKIP_FS.has(type) || type.startsWith('fuse') || type.startsWith('cgroup')) continue;
    if (opts.includes('noauto') || opts.includes('bind')) continue;
    out.push({ spec, mountpoint: mountpoint.replace(/\/+$/, ''), type, nofail: opts.includes('nofail') });
  }
  const depth = (m: string) => m.split('/').length;
  return out.sort((a, b) => depth(a.mountpoint) - depth(b.mountpoint));
}

/**
 * How the appliance finds an fstab device: `['uuid', U]`, `['label', L]`, or `['device', path]` with the
 * guest's virtio/xen/IDE disk names turned into the appliance's (every disk is /dev/sdX there).
 */
export function fstabDevice(spec: string): ['uuid' | 'label' | 'device', string] | undefined {
  const m = /^(UUID|LABEL)=(.+)$/.exec(spec);
  if (m) return [m[1] === 'UUID' ? 'uuid' : 'label', (m[2] as string).replace(/^"(.*)"$/, '$1')];
  const byId = /^\/dev\/disk\/by-(uuid|label)\/(.+)$/.exec(spec);
  if (byId) return [byId[1] as 'uuid' | 'label', byId[2] as string];
  if (!spec.startsWith('/dev/') || spec.startsWith('/dev/disk/')) return undefined;
  return ['device', spec.replace(/^\/dev\/(?:vd|xvd|hd)([a-z]+\d*)$/, '/dev/sd$1')];
}

export interface GuestMounts {
  root: string;
  mounts: { device: string; mountpoint: string }[];
}

/** Find the guest's root filesystem and mount it, then what its /etc/fstab mounts from its disks. */
export async function mountGuest(s: GuestfishSession, what: string): Promise<GuestMounts> {
  const [parts = [], devices = [], lvs = []] = await s.callGroups([
    [['list-partitions']],
    [['list-devices']],
    [['lvs']],
  ]);
  const candidates = [...lvs, ...parts, ...devices.filter((d) => !parts.some((p) => p.startsWith(d)))];
  const types = await s.callGroups(candidates.map((c) => [['-vfs-type', c]]));
  let root: string | undefined;
  for (const [i, dev] of candidates.entries()) {
    if (!ROOT_FS.has(types[i]?.[0] ?? '')) continue;
    const probe = await s.call([
      ['-mount-ro', dev, '/'],
      ['-is-file', '/etc/fstab'],
      ['-is-dir', '/var/lib/dpkg'],
      ['-is-dir', '/var/lib/rpm'],
      ['-is-dir', '/usr/lib/sysimage/rpm'],
      ['-umount-all'],
    ]);
    if (probe[0] === 'true' && probe.slice(1).includes('true')) {
      root = dev;
      break;
    }
  }
  if (!root)
    throw new OstError(
      `no Linux root filesystem (/etc/fstab and a dpkg or rpm database) on ${what} (looked at ${candidates.join(', ') || 'no filesystem'})`,
      'is it an installed OS image? a root that is encrypted or on a btrfs subvolume is not supported',
    );
  const fstab = await s.call([
    ['mount', root, '/'],
    ['cat', '/etc/fstab'],
  ]);
  const mounts: GuestMounts['mounts'] = [];
  for (const e of parseFstab(fstab.join('\n'))) {
    const how = fstabDevice(e.spec);
    let device: string | undefined;
    if (how?.[0] === 'device') device = how[1];
    else if (how) device = (await s.call([[`-findfs-${how[0]}`, how[1]]]))[0];
    if (!device) {
      if (e.nofail) continue;
      throw new OstError(
        `${what}: its /etc/fstab mounts ${e.spec} on ${e.mountpoint}, which is not on the image's disk`,
        'name it by UUID=, LABEL= or a /dev path in the image, or mark it nofail',
      );
    }
    await s.call([[e.nofail ? '-mount' : 'mount', device, e.mountpoint]]);
    mounts.push({ device, mountpoint: e.mountpoint });
  }
  return { root, mounts };
}

// --- running build steps ------------------------------------------------------------------------------

/** The DNS server of the appliance's user-mode network (qemu's slirp on libguestfs' 169.254.0.0/16). */
const APPLIANCE_DNS = '169.254.2.3';
const SAVED_RESOLV = '/etc/resolv.conf.ost-build';

/** Guest commands that point DNS at the appliance's network while a build runs, and put it back after. */
export function resolvConfCommands(): { before: string; after: string } {
  return {
    before:
      `rm -f ${SAVED_RESOLV} && if [ -e /etc/resolv.conf ] || [ -L /etc/resolv.conf ]; then mv /etc/resolv.conf ${SAVED_RESOLV}; fi` +
      ` && echo 'nameserver ${APPLIANCE_DNS}' > /etc/resolv.conf`,
    after: `rm -f /etc/resolv.conf && if [ -e ${SAVED_RESOLV} ] || [ -L ${SAVED_RESOLV} ]; then mv ${SAVED_RESOLV} /etc/resolv.conf; fi`,
  };
}

/**
 * Run build steps in the mounted guest: package caches on tmpfs and no
 * daemons started by package scripts while they run; then an emptied machine-id (each VM makes its own)
 * and, on SELinux guests, files relabelled. Consecutive commands go to the guest as one `sh` (each call
 * costs ~0.6 s under TCG), chained so that the first failure stops the rest.
 */
export async function runSessionSteps(
  s: GuestfishSession,
  family: Family,
  steps: readonly CommandStep[],
  o: { network: boolean; selinux: boolean },
): Promise<void> {
  const setup = buildTimeGuestSetup(family);
  const dns = o.network ? resolvConfCommands() : undefined;
  const preamble = [...(dns ? [dns.before] : []), setup.before];
  let chain: string[] = [];
  let started = false;
  const flush = async () => {
    if (chain.length) await s.sh(chainCommands(chain));
    chain = [];
  };
  for (const step of steps) {
    if (step.kind === 'run') {
      // files copied in before the first command need no setup: they ride in the same sh as the commands
      if (!started) chain.push(...preamble);
      started = true;
      chain.push(step.command);
      continue;
    }
    await flush();
    if (step.kind === 'copy-in')
      await s.call([
        ['mkdir-p', step.toDir],
        ['copy-in', step.from, step.toDir],
      ]);
    else {
      // the mode given, else the host file's (as virt-customize's --upload kept it)
      const mode = step.mode ?? ((await stat(step.from)).mode & 0o7777).toString(8);
      await s.call([
        ['mkdir-p', posix.dirname(step.to)],
        ['upload', step.from, step.to],
        ['chmod', `0${mode.replace(/^0+/, '') || '0'}`, step.to],
      ]);
    }
  }
  // the cleanup undoes the setup: a job of file copies only gets both
  if (!started) chain.push(...preamble);
  chain.push(
    setup.after,
    ...(dns ? [dns.after] : []),
    'if [ -f /etc/machine-id ]; then : > /etc/machine-id; fi',
  );
  await flush();
  if (o.selinux) await relabel(s);
}

/** Shell commands run one after the other, stopping at the first that fails (its status is the chain's). */
export function chainCommands(commands: readonly string[]): string {
  return commands.map((c) => `{ ${c}\n}`).join(' && ');
}

/** SELinux relabel of the whole guest, with the policy its /etc/selinux/config names (none: nothing to do). */
async function relabel(s: GuestfishSession): Promise<void> {
  const [type] = await s.sh(
    'if [ -f /etc/selinux/config ]; then sed -n \'s/^SELINUXTYPE=["]*\\([^"]*\\)["]*$/\\1/p\' /etc/selinux/config | head -n1; fi',
  );
  if (!type) return;
  const specfile = `/etc/selinux/${type}/contexts/files/file_contexts`;
  const [canRelabel] = await s.call([['-feature-available', 'selinuxrelabel']]);
  const [hasSpec] = await s.call([['-is-file', specfile]]);
  if (canRelabel === 'true' && hasSpec === 'true')
    await s.call([['selinux-relabel', specfile, '/', 'force:true']]);
  // as virt-customize does without the appliance's relabel support: the guest relabels at first boot
  else await s.sh('touch /.autorelabel');
}
