// lagofy.sh's helper for `ost.sh run -6`: guests without IPv4 reach package repositories through an SSH
// SOCKS tunnel to the host. ost_init starts an sshd on the management network's IPv6 gateway with OST's
// own common/helpers/sshd_config (port 2222, forwarding only, ForceCommand /bin/false), the image key as
// host key and its public half as the only authorized key, for the user who runs OST; OST's pytest then
// runs `ssh -D 1234 -p2222 <user>@<gateway>` in every VM and points dnf at socks5://localhost:1234.
// Its pid goes to $OST_DEPLOYMENT/sshd_pid, which ost_destroy (and ost down) kill.
import { existsSync, readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../core/errors.js';
import { startDetached } from '../core/exec.js';
import { sleep } from '../core/timers.js';

/** Where the sshd's pid is written, as lagofy.sh names it. */
export const SSHD_PID_FILE = 'sshd_pid';

/**
 * The env key's public half the SOCKS sshd authorizes, in the env dir: root's, 0644 in a 0755 folder (sshd
 * reads it as the proxy user, who cannot enter `keys/`).
 */
export const SSHD_AUTHORIZED_KEY = 'proxy/authorized_keys';
/** OST's sshd configuration for the helper, relative to the OST checkout. */
export const SSHD_CONFIG = 'common/helpers/sshd_config';

export interface SshdProxy {
  /** The sshd binary (lagofy.sh: /usr/sbin/sshd). */
  sshd: string;
  /** OST's sshd_config (`<checkout>/common/helpers/sshd_config`). */
  config: string;
  /** The env dir: the pid file goes there. */
  workdir: string;
  /** Private key (0600, owned by whoever runs sshd): the host key. */
  hostKey: string;
  /** The public key that may log in (the image key's `.pub`). */
  authorizedKey: string;
  /** The one user allowed in: the one who runs OST's pytest. */
  user: string;
  /** The management network's IPv6 gateway address. */
  address: string;
}

/** The sshd command line, as lagofy.sh's (its options override the config file's). */
export function sshdArgv(p: SshdProxy): string[] {
  return [
    p.sshd,
    '-f',
    p.config,
    '-o',
    `PidFile=${path.join(p.workdir, SSHD_PID_FILE)}`,
    '-o',
    `AuthorizedKeysFile=${p.authorizedKey}`,
    '-o',
    `HostKey=${p.hostKey}`,
    '-o',
    `AllowUsers=${p.user}`,
    '-o',
    `ListenAddress=${p.address}`,
  ];
}

/** Where the helper's own log goes (sshd -e): why it did not start, who used it. */
export const SSHD_LOG_FILE = 'sshd_proxy.log';

/**
 * Start the helper sshd and return its pid once it listens (it writes its pid file then). It runs in the
 * foreground of a detached process of its own (`-D -e`: sshd run in the background exits 0 even when it
 * cannot bind), logging to `<workdir>/sshd_proxy.log`. A bridge's new IPv6 address is unusable until
 * duplicate address detection ends (lagofy.sh sleeps 5 s): a failure to bind is retried for `waitMs`.
 */
export async function startSshdProxy(p: SshdProxy, waitMs = 15_000): Promise<number> {
  const deadline = Date.now() + waitMs;
  const argv = [...sshdArgv(p), '-D', '-e'];
  const cmd = argv[0] as string;
  const args = argv.slice(1);
  const logFile = path.join(p.workdir, SSHD_LOG_FILE);
  for (let delay = 250; ; delay = Math.min(delay * 2, 2000)) {
    const child = await startDetached(cmd, args, { logFile, logMode: 0o644 });
    // listening (its pid file names it), or gone
    while (child.exitCode() === undefined) {
      const text = await fs.readFile(path.join(p.workdir, SSHD_PID_FILE), 'utf8').catch(() => '');
      if (child.pid && Number(text.trim()) === child.pid) return child.pid;
      if (Date.now() > deadline + 5000) {
        child.kill('SIGKILL');
        throw new OstError(
          `the IPv6 proxy sshd (${child.commandLine}) did not write ${SSHD_PID_FILE}`,
          `see its log ${logFile}`,
        );
      }
      await sleep(100);
    }
    const why = (await fs.readFile(logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join('; ');
    // sshd run by root wants its privilege separation dir, which only the ssh service creates (/run/sshd)
    const privsep = /Missing privilege separation directory: (\/\S+)/.exec(why);
    if (privsep?.[1] && process.getuid?.() === 0) {
      await fs.mkdir(privsep[1], { recursive: true, mode: 0o755 });
      continue;
    }
    if (Date.now() >= deadline)
      throw new OstError(
        `the IPv6 proxy sshd (${child.commandLine}) did not start: ${why || `exit ${child.exitCode()}`}`,
        `see its log ${logFile}; it must be able to listen on ${p.address} at the port ${p.config} names`,
      );
    await sleep(delay);
  }
}

/** Whether process `pid` is the helper sshd of this env dir (its command line names the env's pid file). */
export function isProxyOf(pid: number, workdir: string): boolean {
  try {
    // sshd retitles itself ("sshd: /usr/sbin/sshd -f … [listener] …"): its arguments are then one string
    const words = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/);
    return words.includes(`PidFile=${path.join(workdir, SSHD_PID_FILE)}`);
  } catch {
    return false;
  }
}

/**
 * Stop the env's helper sshd, if one runs: the pid in `<workdir>/sshd_pid`, killed only when that process
 * is still the sshd started for this env dir (a stale pid may belong to anything by now). Idempotent.
 */
export async function stopSshdProxy(workdir: string | undefined): Promise<number | undefined> {
  if (!workdir || !existsSync(path.join(workdir, SSHD_PID_FILE))) return undefined;
  const pid = Number(readFileSync(path.join(workdir, SSHD_PID_FILE), 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0 || !isProxyOf(pid, workdir)) return undefined;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return undefined;
  }
  for (let i = 0; i < 40 && isProxyOf(pid, workdir); i++) await sleep(50);
  return pid;
}
