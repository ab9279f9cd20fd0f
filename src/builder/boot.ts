// Boot a VM from a built layer (thin overlay, user-mode networking) and wait until SSH answers with the set's
// key, which the guest gets as its SSH key credential (SMBIOS type 11), as ost up hands over an env's key.
import * as fs from 'node:fs/promises';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Accel, detectAccel } from '../core/accel.js';
import { InternalError, OstError } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
import { startProcess } from '../core/exec.js';
import { exists, lastLines } from '../core/fsutil.js';
import { requireTools } from '../core/require-tool.js';
import { sshKeyOemString } from '../guest/credentials.js';
import { waitReady } from '../guest/ready.js';
import { createOverlayArgv } from '../tools/qemu-img.js';
import { qemuVmArgv } from '../tools/qemu-system.js';
import { runArgv } from '../tools/run-tool.js';
import { sshArgv } from '../tools/ssh.js';
import { publicKeyArgv } from '../tools/ssh-keygen.js';

export interface BootOptions {
  image: string;
  privateKey: string;
  accel?: Accel;
  memoryMiB?: number;
  vcpus?: number;
  timeoutMs?: number;
  /** Command run once SSH answers; its output is returned. */
  command?: string;
  reporter?: Reporter;
  signal?: AbortSignal;
}

export interface BootResult {
  sshPort: number;
  /** `systemctl is-system-running --wait`: running or degraded. */
  systemState: string;
  bootToSshMs: number;
  /** The guest wrote the readiness marker on its console (images built by this version of ost). */
  marker: boolean;
  commandOutput?: string;
  consoleTail: string[];
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        addr && typeof addr === 'object'
          ? resolve(addr.port)
          : reject(new InternalError('a listening server has no port')),
      );
    });
  });
}

/** Boot, wait for SSH and a settled systemd, run the command, power off. Nothing of the image is modified. */
export async function bootAndSsh(opts: BootOptions): Promise<BootResult> {
  requireTools(['qemu-img', 'qemu-system-x86_64', 'ssh']);
  const reporter = opts.reporter ?? (() => {});
  if (!(await exists(opts.image)))
    throw new OstError(`${opts.image} does not exist`, 'build it first with ost build-images');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ost-boot-'));
  const overlay = path.join(dir, 'overlay.qcow2');
  const consoleLog = path.join(dir, 'console.log');
  const timeoutMs = opts.timeoutMs ?? 10 * 60_000;
  try {
    // a private copy: ssh insists on 0600, whoever owns the key given
    const key = path.join(dir, 'id');
    await fs.copyFile(opts.privateKey, key);
    await fs.chmod(key, 0o600);
    // the key's public half as the guest's SSH key credential: images that read it (ost's own) authorize
    // no key of their own; images that do not ignore it and authorize the set's key themselves
    const publicKey = (await runArgv(publicKeyArgv(key))).stdout;
    await runArgv(createOverlayArgv(overlay, path.resolve(opts.image)));
    const port = await freePort();
    const [qemu, ...qemuArgs] = qemuVmArgv({
      disk: overlay,
      accel: opts.accel ?? detectAccel(),
      memoryMiB: opts.memoryMiB ?? 1024,
      vcpus: opts.vcpus ?? 2,
      sshPort: port,
      consoleLog,
      oemStrings: [sshKeyOemString(publicKey)],
    });
    const vm = startProcess(qemu as string, qemuArgs, { logFile: path.join(dir, 'qemu.log') });
    const started = Date.now();
    reporter({ type: 'info', message: `VM started, SSH forwarded to 127.0.0.1:${port}` });
    try {
      const ssh = { host: '127.0.0.1', port, user: 'root', privateKey: key };
      const r = await waitReady(
        {
          vm: path.basename(opts.image),
          ssh,
          consoleLog,
          // qemu's user-mode forward accepts every connection: only a login tells
          poll: 'login',
          state: async () =>
            vm.done()
              ? { kind: 'gone', detail: (await lastLines(path.join(dir, 'qemu.log'), 10)).join(' / ') }
              : { kind: 'running' },
        },
        timeoutMs,
        opts.signal,
      );
      const bootToSshMs = Date.now() - started;
      const commandOutput = opts.command
        ? (await runArgv(sshArgv(ssh, opts.command), { timeoutMs: 120_000 })).stdout
        : undefined;
      return {
        sshPort: port,
        systemState: r.systemState,
        bootToSshMs,
        marker: r.markerMs !== undefined,
        commandOutput,
        consoleTail: await lastLines(consoleLog, 5),
      };
    } finally {
      await vm.stop();
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
