// End-to-end, no VM: the SOCKS helper sshd of `ost up --ipv6-only` (lagofy.sh's `ost.sh run -6` helper)
// started by ost's code with a real sshd inside a network namespace of the test's own, on an IPv6 address
// that is still in duplicate address detection when the start begins (as a new libvirt bridge's is), then
// logged into as the guests' tunnel does, and stopped by its pid file — and only by it.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/core/exec.js';
import { findTool } from '../../src/core/require-tool.js';
import { isProxyOf, SSHD_PID_FILE, stopSshdProxy } from '../../src/launcher/ipv6-proxy.js';
import { REPO_ROOT } from '../helpers/sets.js';
import { ensureBuilt, isRoot } from './helpers.js';

const NS = `ost-e2e-p${process.pid}`;
const ADDRESS = 'fd8f:1391:3a82:250::1';
// not under /var/tmp: sshd's StrictModes refuses an authorized key below a world-writable directory (made
// in beforeAll: a skipped describe runs its body, not its hooks)
let work = '/nonexistent';
const inNs = (argv: string[], allowFailure = false) =>
  run('ip', ['netns', 'exec', NS, ...argv], { allowFailure, timeoutMs: 60_000 });

/** startSshdProxy run by ost's compiled code inside the namespace (the sshd must listen there). */
async function startInNs(address: string, waitMs: number) {
  const mod = path.join(REPO_ROOT, 'dist/launcher/ipv6-proxy.js');
  const p = {
    sshd: findTool('sshd'),
    config: path.join(work, 'sshd_config'),
    workdir: work,
    hostKey: path.join(work, 'keys/id_rsa'),
    authorizedKey: path.join(work, 'keys/id_rsa.pub'),
    user: 'root',
    address,
  };
  return inNs(
    [
      'node',
      '--input-type=module',
      '-e',
      `const m = await import(${JSON.stringify(mod)}); console.log(await m.startSshdProxy(${JSON.stringify(p)}, ${waitMs}));`,
    ],
    true,
  );
}

/** ssh to the helper as OST's guests do (key, port 2222); 1 = logged in (ForceCommand /bin/false), 255 = refused. */
const login = (user: string) =>
  inNs(
    [
      'ssh',
      '-p',
      '2222',
      '-i',
      path.join(work, 'keys/id_rsa'),
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'ConnectTimeout=10',
      `${user}@${ADDRESS}`,
      'true',
    ],
    true,
  );

describe.skipIf(!isRoot || !findTool('sshd'))(
  'the --ipv6-only SOCKS helper sshd (real sshd in a namespace)',
  () => {
    let pid = 0;

    beforeAll(async () => {
      ensureBuilt();
      work = mkdtempSync('/run/ost-e2e-proxy-');
      chmodSync(work, 0o755);
      await run('mkdir', ['-m', '0700', path.join(work, 'keys')]);
      await run('ssh-keygen', ['-q', '-t', 'rsa', '-N', '', '-f', path.join(work, 'keys/id_rsa')]);
      // the settings of OST's common/helpers/sshd_config that matter here (root may log in: the test's user)
      writeFileSync(
        path.join(work, 'sshd_config'),
        [
          'Port 2222',
          'PermitRootLogin prohibit-password',
          'PubkeyAuthentication yes',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'AllowTcpForwarding yes',
          'PermitTTY no',
          'UseDNS no',
          'ForceCommand /bin/false',
          '',
        ].join('\n'),
      );
      await run('ip', ['netns', 'add', NS]);
      await run('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
      // a link with carrier (a veth pair, both ends up) whose new address goes through DAD first, as a
      // new libvirt bridge's does
      await run('ip', ['-n', NS, 'link', 'add', 'ostp0', 'type', 'veth', 'peer', 'name', 'ostp1']);
      for (const l of ['ostp0', 'ostp1']) await run('ip', ['-n', NS, 'link', 'set', l, 'up']);
    }, 120_000);

    afterAll(async () => {
      if (pid && isProxyOf(pid, work)) process.kill(pid, 'SIGKILL');
      await run('ip', ['netns', 'del', NS], { allowFailure: true });
      if (work !== '/nonexistent') rmSync(work, { recursive: true, force: true });
    });

    it('fails with sshd’s own reason when the address never comes up', async () => {
      const r = await startInNs('fd8f:1391:3a82:251::1', 1500);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/IPv6 proxy sshd .* did not start: .*(Cannot assign|Cannot bind|bind)/s);
    }, 60_000);

    it('starts once the address is usable, lets the one user in with the key, and stops by its pid file', async () => {
      await run('ip', ['-n', NS, 'addr', 'add', `${ADDRESS}/64`, 'dev', 'ostp0']);
      const r = await startInNs(ADDRESS, 15_000);
      expect(r.exitCode, r.stderr).toBe(0);
      pid = Number(r.stdout.trim());
      expect(isProxyOf(pid, work)).toBe(true);
      expect((await login('root')).exitCode).toBe(1);
      // AllowUsers: nobody else, even with the key
      expect((await login('nobody')).exitCode).toBe(255);
      // a stale pid file naming another process is not obeyed
      writeFileSync(path.join(work, SSHD_PID_FILE), `${process.pid}\n`);
      expect(await stopSshdProxy(work)).toBeUndefined();
      writeFileSync(path.join(work, SSHD_PID_FILE), `${pid}\n`);
      expect(await stopSshdProxy(work)).toBe(pid);
      expect(isProxyOf(pid, work)).toBe(false);
      expect((await login('root')).exitCode).toBe(255);
      // idempotent
      expect(await stopSshdProxy(work)).toBeUndefined();
    }, 60_000);
  },
);
