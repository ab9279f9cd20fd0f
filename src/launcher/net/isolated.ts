// An env whose networks live in a network namespace of their own (`ost up --from <checkpoint> --isolated`):
// a second env from one checkpoint, whose guests remember the very addresses the first env's guests have.
// libvirt makes each network as a bare bridge (no address, no DHCP, no NAT on the host: nothing that can
// clash with the first env); ost joins each bridge by a veth pair to the namespace `ost-<id>`, where the
// gateway addresses are and one dnsmasq answers DHCP, DHCPv6, router advertisements and DNS for the guests
// as libvirt's would have (same static hosts, names and lease time). The host reaches the guests only from
// inside that namespace: ost's own SSH logins, `ost ssh` and `ost exec <env> -- cmd` enter it.
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import { run } from '../../core/exec.js';
import { oneLine, oneLineAll } from '../../core/lines.js';
import { sleep } from '../../core/timers.js';
import { inNetns } from '../../tools/netns.js';
import { DNS_DOMAIN } from '../libvirt/render.js';
import { dhcpRanges, dnsEntries, type EnvLayout, nicsOn } from './layout.js';

/** The namespace of an isolated env. */
export const envNetns = (id: string): string => `ost-${id}`;

/**
 * Where an isolated env's dnsmasq keeps its files: `<state root>/netns/<id>`, root's and readable by all
 * (dnsmasq reads its hosts file after it has dropped to nobody).
 */
export const netnsDir = (stateRoot: string, id: string): string => path.join(stateRoot, 'netns', id);

/** `/run/netns/<name>`: where `ip netns` keeps a namespace. */
export const netnsPath = (name: string): string => path.join('/run/netns', name);

/** The host end of network `i`'s veth pair (on the bridge): `o<id>v<i>`, 15 characters at most. */
export const hostEnd = (id: string, i: number): string => `o${id}v${i}`;

/** The namespace end of network `i`'s veth pair (the gateway). */
export const gatewayEnd = (i: number): string => `gw${i}`;

/** dnsmasq's configuration for the env's networks, as libvirt's for the same network XML. */
export function dnsmasqConfig(
  layout: EnvLayout,
  dir: string,
  o: { shortNames: boolean },
): { conf: string; hosts: string } {
  // every value on its own line: a line break in one would add an option (a dhcp-script= runs as root)
  const file = 'dnsmasq.conf';
  oneLine(dir, { file, field: 'dir' });
  const lines = [
    `# ost: DHCP, RA and DNS of an isolated env, in its network namespace`,
    `pid-file=${path.join(dir, 'dnsmasq.pid')}`,
    `dhcp-leasefile=${path.join(dir, 'dnsmasq.leases')}`,
    `addn-hosts=${path.join(dir, 'dnsmasq.hosts')}`,
    'except-interface=lo',
    'bind-dynamic',
    'no-resolv',
    'no-hosts',
    'strict-order',
    'domain-needed',
    'dhcp-authoritative',
    `domain=${DNS_DOMAIN}`,
    `local=/${DNS_DOMAIN}/`,
    // names without a domain and <name>.lago.local from the hosts file, nothing asked upstream (there is none)
    'expand-hosts',
    'local=//',
    'dhcp-lease-max=253',
    'dhcp-no-override',
  ];
  let ra = false;
  for (const [i, net] of layout.networks.entries()) {
    lines.push(`interface=${gatewayEnd(i)}`);
    const ranges = dhcpRanges(net);
    const nics = nicsOn(layout.vms, net);
    const at = `networks[${i}]`;
    oneLineAll({ [`${at}.ipv4.prefix`]: net.ipv4?.prefix, [`${at}.ipv6.prefix`]: net.ipv6?.prefix }, file);
    for (const [j, nic] of nics.entries()) {
      const n = `${at}.nics[${j}]`;
      const { mac, ipv4, ipv6, hostname } = nic;
      oneLineAll(
        { [`${n}.mac`]: mac, [`${n}.ipv4`]: ipv4, [`${n}.ipv6`]: ipv6, [`${n}.hostname`]: hostname },
        file,
      );
    }
    if (ranges.ipv4) {
      lines.push(`dhcp-range=${ranges.ipv4.start},${ranges.ipv4.end},255.255.255.0`);
      for (const nic of nics) if (nic.ipv4) lines.push(`dhcp-host=${nic.mac},${nic.ipv4},${nic.hostname}`);
    }
    if (ranges.ipv6) {
      lines.push(`dhcp-range=${ranges.ipv6.start},${ranges.ipv6.end},64`);
      for (const nic of nics)
        if (nic.ipv6) lines.push(`dhcp-host=id:00:03:00:01:${nic.mac},[${nic.ipv6}],${nic.hostname}`);
      ra = true;
    }
  }
  if (ra) lines.push('enable-ra');
  // every NIC of the env by its DNS name (and, on ost-env suites, each VM by its short name); one resolver
  // on every network's gateway, all knowing the same names
  const hosts = dnsEntries(layout.networks, layout.vms, o.shortNames).map((e) => {
    oneLine(e.ip, { file: 'dnsmasq.hosts', field: 'address' });
    for (const n of e.names) oneLine(n, { file: 'dnsmasq.hosts', field: `name of ${e.ip}` });
    return `${e.ip} ${e.names.join(' ')}`;
  });
  return { conf: `${lines.join('\n')}\n`, hosts: `${hosts.join('\n')}\n` };
}

/** `ip` in the namespace. */
const ipNs = (ns: string, args: string[]) => run('ip', ['-n', ns, ...args]);

/**
 * Make the namespace of an isolated env and wire it to the env's bridges (libvirt made them): gateway
 * addresses, dnsmasq. `dir` (root's) keeps dnsmasq's files. Undo with `removeEnvNetns`. The caller has
 * run `checkMountNamespace` before it made anything.
 */
export async function createEnvNetns(
  id: string,
  layout: EnvLayout,
  dir: string,
  o: { shortNames: boolean },
): Promise<string> {
  const ns = envNetns(id);
  if (existsSync(netnsPath(ns)))
    throw new OstError(
      `network namespace ${ns} exists already`,
      `ost down ${id} removes what is left of that env`,
    );
  await run('ip', ['netns', 'add', ns]);
  await ipNs(ns, ['link', 'set', 'lo', 'up']);
  for (const [i, net] of layout.networks.entries()) {
    const host = hostEnd(id, i);
    const gw = gatewayEnd(i);
    await run('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', gw, 'netns', ns]);
    await run('ip', ['link', 'set', host, 'master', net.bridge, 'up']);
    if (net.ipv4) await ipNs(ns, ['addr', 'add', `${net.ipv4.gateway}/24`, 'dev', gw]);
    if (net.ipv6) await ipNs(ns, ['-6', 'addr', 'add', `${net.ipv6.gateway}/64`, 'dev', gw, 'nodad']);
    await ipNs(ns, ['link', 'set', gw, 'up']);
  }
  await fs.mkdir(path.dirname(dir), { recursive: true, mode: 0o755 });
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { mode: 0o755 });
  const { conf, hosts } = dnsmasqConfig(layout, dir, o);
  await fs.writeFile(path.join(dir, 'dnsmasq.hosts'), hosts, { mode: 0o644 });
  await fs.writeFile(path.join(dir, 'dnsmasq.conf'), conf, { mode: 0o644 });
  const [ip, ...args] = [...inNetns(ns), 'dnsmasq', `--conf-file=${path.join(dir, 'dnsmasq.conf')}`];
  await run(ip as string, args);
  return ns;
}

/** The propagation of the /run/netns mount in a `/proc/self/mountinfo` text: shared, a slave, or none. */
export function netnsMountPropagation(mountinfo: string): 'shared' | 'slave' | 'private' | 'none' {
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    if (f[4] !== '/run/netns') continue;
    const optional = f.slice(6, f.indexOf('-'));
    if (optional.some((o) => o.startsWith('shared:'))) return 'shared';
    if (optional.some((o) => o.startsWith('master:'))) return 'slave';
    return 'private';
  }
  return 'none';
}

/**
 * `ip netns add` names a namespace by a bind mount under /run/netns, which reaches other processes through
 * that mount's shared propagation. Under `ip netns exec` (a mount namespace of its own, /run/netns a slave
 * of the host's) the mount never leaves: the name would be an empty file to everyone else and the env
 * unreachable. Refused, saying what works.
 */
export async function checkMountNamespace(): Promise<void> {
  const how = netnsMountPropagation(await fs.readFile('/proc/self/mountinfo', 'utf8').catch(() => ''));
  if (how === 'slave' || how === 'private')
    throw new OstError(
      `/run/netns is a ${how} mount here (ost runs in a mount namespace of its own, as under ip netns exec): the network namespace of an --isolated env would not be seen outside it`,
      'run ost in the host mount namespace: nsenter --net=/run/netns/<name> ost … enters only a network namespace',
    );
}

/** Stop the env's dnsmasq by its pid file (when the pid is still that dnsmasq). */
async function stopDnsmasq(dir: string): Promise<void> {
  const conf = path.join(dir, 'dnsmasq.conf');
  const pid = Number((await fs.readFile(path.join(dir, 'dnsmasq.pid'), 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 1) return;
  const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.split('\0').includes(`--conf-file=${conf}`)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // gone already
  }
}

/**
 * Stop everything running in an isolated env's namespace and delete it (its veths go with it), and its
 * dnsmasq's files in `dir` (netnsDir). True when there was a namespace.
 */
export async function removeEnvNetns(id: string, dir: string): Promise<boolean> {
  const ns = envNetns(id);
  await stopDnsmasq(dir);
  await fs.rm(dir, { recursive: true, force: true });
  if (!existsSync(netnsPath(ns))) return false;
  for (let round = 0; round < 20; round++) {
    const r = await run('ip', ['netns', 'pids', ns], { allowFailure: true });
    const pids = r.stdout.split('\n').filter(Boolean).map(Number);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, round < 10 ? 'SIGTERM' : 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await sleep(100);
  }
  await run('ip', ['netns', 'del', ns], { allowFailure: true });
  return true;
}
