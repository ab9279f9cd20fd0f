import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { buildImages, formatDryRun } from '../../src/builder/build.js';
import { loadImageSet } from '../../src/builder/plan/load.js';
import { main } from '../../src/cli/main.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

describe('--dry-run on el9stream (the ISO is not here)', async () => {
  const set = loadImageSet(path.join(REPO_ROOT, 'images/el9stream.yaml'));
  const out = '/nonexistent/ost-dry-run-out';
  const result = await buildImages(set, { out, dryRun: true, accel: 'tcg', offline: true });
  const byLayer = new Map((result.dryRun ?? []).map((l) => [l.layer, l]));

  it('plans every layer for building, parents first', () => {
    expect(result.dryRun?.map((l) => [l.layer, l.action])).toEqual([
      ['base', 'build'],
      ['upgrade', 'build'],
      ['deps-installed', 'build'],
      ['engine-installed', 'build'],
      ['host-installed', 'build'],
      ['he-installed', 'build'],
    ]);
    const upgrade = byLayer
      .get('upgrade')
      ?.steps.find((st) => st.title === 'customize in one guestfish session');
    expect(upgrade?.guest).toContain('sh: dnf -y upgrade --refresh');
    expect(byLayer.get('he-installed')?.reason).toBe('parent host-installed is rebuilt');
  });

  it('shows the exact virt-install command for the kickstart base', () => {
    const steps = byLayer.get('base')?.steps ?? [];
    expect(steps[1]?.argv).toEqual([
      'qemu-img',
      'create',
      '-q',
      '-f',
      'qcow2',
      `${out}/el9stream-base.qcow2.tmp`,
      '23G',
    ]);
    const vi = steps[2]?.argv ?? [];
    expect(vi[0]).toBe('virt-install');
    const opt = (name: string) => vi[vi.indexOf(name) + 1];
    expect(opt('--location')).toBe('/var/lib/ost-images/iso/CentOS-Stream-9-latest-x86_64-dvd1.iso');
    expect(opt('--initrd-inject')).toBe(`${out}/.work/base/ks.cfg`);
    expect(opt('--extra-args')).toBe('inst.ks=file:/ks.cfg inst.text console=ttyS0');
    expect(opt('--os-variant')).toBe('centos-stream9');
    expect(opt('--memory')).toBe('2048');
    expect(opt('--vcpus')).toBe('2');
    expect(opt('--virt-type')).toBe('qemu');
    expect(opt('--disk')).toBe(`path=${out}/el9stream-base.qcow2.tmp,format=qcow2,bus=virtio,cache=unsafe`);
    expect(opt('--serial')).toBe(`file,path=${out}/logs/el9stream-base-console.log`);
    expect(opt('--wait')).toBe('90');
    expect(vi).toEqual(
      expect.arrayContaining(['--noreboot', '--transient', '--noautoconsole', '--graphics', 'none']),
    );
  });

  it('honours OST_EL9STREAM_ISO for the install media', () => {
    // the CLI hands the environment's variables in (core/config.ts fileVars)
    const s = loadImageSet(path.join(REPO_ROOT, 'images/el9stream.yaml'), {
      OST_EL9STREAM_ISO: '/srv/iso/stream9.iso',
    });
    expect(s.layers[0]?.base?.kind === 'install' && s.layers[0].base.location).toBe('/srv/iso/stream9.iso');
  });

  it('shows the overlay command and the guestfish session steps of derived layers', () => {
    const he = byLayer.get('he-installed')?.steps ?? [];
    expect(he[0]?.argv).toEqual([
      'qemu-img',
      'create',
      '-q',
      '-f',
      'qcow2',
      '-F',
      'qcow2',
      '-b',
      'el9stream-host-installed.qcow2',
      `${out}/el9stream-he-installed.qcow2.tmp`,
    ]);
    expect(he[0]?.cwd).toBe(out);
    expect(he[1]?.argv).toEqual([
      'guestfish',
      '--format=qcow2',
      '-a',
      `${out}/el9stream-he-installed.qcow2.tmp`,
      '--network',
    ]);
    const script = (n: number, f: string) => [
      `copy-in ${path.join(REPO_ROOT, `images/el9stream/${f}`)} /tmp/ost-step-${n}`,
      `sh: chmod 0755 /tmp/ost-step-${n}/'${f}' && /tmp/ost-step-${n}/'${f}' && rm -rf /tmp/ost-step-${n}`,
    ];
    expect(he[1]?.guest).toEqual([
      'sh: dnf -y --nogpgcheck install ovirt-imageio-client ovirt-engine-appliance-centos9',
      'sh: dnf download --downloaddir /var/tmp sysstat lm_sensors-libs.x86_64 pcp-conf pcp-libs.x86_64',
      ...script(3, 'ost-test-image.sh'),
      ...script(4, 'relabel-partitions.sh'),
    ]);
    // the oVirt repositories and what the engine and the host need, once, below both
    const deps = byLayer.get('deps-installed')?.steps[1]?.guest ?? [];
    expect(deps.slice(0, 2)).toEqual(script(1, 'ovirt-repos.sh'));
    expect(deps[2]).toMatch(
      /^sh: rm -rf \/tmp\/ost-deps && dnf -y install --downloadonly .*'ovirt-engine'.*'ovirt-host'/,
    );
    expect(deps[3]).toBe('sh: rm -f /usr/lib/NetworkManager/conf.d/00-server.conf');
    const host = byLayer.get('host-installed')?.steps[1]?.guest ?? [];
    expect(host).toEqual([
      "sh: dnf -y install 'ovirt-host' 'python3-coverage' 'vdsm-hook-log-console' 'vdsm-hook-log-firmware'",
      'sh: rm -f /usr/lib/NetworkManager/conf.d/00-server.conf',
      ...script(3, 'relabel-partitions.sh'),
    ]);
    const engine = byLayer.get('engine-installed')?.steps[1]?.guest ?? [];
    expect(engine).toContain(
      `upload ${path.join(REPO_ROOT, 'images/el9stream/engine-answers.conf')} /root/engine-answers.conf (mode 0600)`,
    );
  });

  it('renders a readable plan', () => {
    const text = formatDryRun(result);
    expect(text).toContain('base: BUILD (not built yet; the SSH key pair is generated first)');
    expect(text).toContain('$ virt-install --connect qemu:///system');
    expect(text).toContain("--extra-args 'inst.ks=file:/ks.cfg inst.text console=ttyS0'");
    expect(text).toContain(
      `    # customize in one guestfish session: guestfish --format=qcow2 -a ${out}/el9stream-upgrade.qcow2.tmp --network\n      sh: dnf -y upgrade --refresh`,
    );
  });
});

describe('the el9stream kickstart follows ost-images', () => {
  const ks = readFileSync(path.join(REPO_ROOT, 'images/el9stream/base.ks'), 'utf8');
  const lines = ks.split('\n');
  const line = (prefix: string) => lines.find((l) => l.startsWith(prefix)) ?? '';

  it('lets DHCP name the guest and names NICs eth0, eth1, ...', () => {
    expect(ks).not.toContain('--hostname');
    expect(line('network ')).toBe('network --bootproto=dhcp');
    expect(line('bootloader ')).toContain('net.ifnames=0');
    expect(line('bootloader ')).toContain('console=ttyS0');
  });

  it('asks DHCPv6 with a DUID-LL and writes keyfiles for eth0-eth5, default route on eth0 only', () => {
    expect(ks).toContain('ipv6.dhcp-duid=ll');
    expect(ks).toContain('ipv6.dhcp-iaid=mac');
    expect(ks).toContain('ipv6.addr-gen-mode=0');
    expect(ks).toContain('/etc/NetworkManager/conf.d/10-stable-ipv6-addr.conf');
    expect(ks).toMatch(/for n in 0 1 2 3 4 5; do/);
    expect(ks).toMatch(/if \[ "\$n" -eq 0 \]; then never_default=false; else never_default=true; fi/);
    expect(ks).toContain('chmod 0600 "$conn"');
  });

  it('has ost-images root login, partitions and dummy repo', () => {
    expect(line('rootpw ')).toBe('rootpw --plaintext 123456');
    expect(line('sshkey ')).toBe('sshkey --username=root "{{ ssh_public_key }}"');
    expect(line('firewall ')).toBe('firewall --service=ssh');
    expect(line('selinux ')).toBe('selinux --enforcing');
    const parts = lines.filter((l) => l.startsWith('part ')).map((l) => l.replace(/\s+/g, ' '));
    expect(parts).toEqual([
      'part /boot --size=256',
      'part / --grow --size=6120 --fsoptions="noatime"',
      'part swap --size=4096',
      'part /home --size=128',
      'part /tmp --size=128',
      'part /var --size=2048',
      'part /var/log --size=512',
      'part /var/log/audit --size=256',
      'part /var/tmp --size=9220',
    ]);
    expect(ks).toContain('[dummy]');
    expect(ks).toContain('baseurl=/etc/yum.repos.d/ost-dummy-repo');
    expect(ks).toContain('mkdir -p /var/log/journal');
  });

  it('fits its partitions on the set disk', () => {
    const set = loadImageSet(path.join(REPO_ROOT, 'images/el9stream.yaml'));
    const base = set.layers[0]?.base;
    const mib = lines
      .filter((l) => l.startsWith('part '))
      .reduce((sum, l) => sum + Number(/--size[= ](\d+)/.exec(l)?.[1] ?? Number.NaN), 0);
    expect(mib).toBe(22764);
    expect(base?.kind === 'install' && base.diskSize.bytes).toBeGreaterThan(mib * 1024 * 1024);
  });
});

describe('--dry-run on storage (the ISO is not here)', async () => {
  const set = loadImageSet(path.join(REPO_ROOT, 'images/storage.yaml'));
  const out = '/nonexistent/ost-dry-run-out';
  const result = await buildImages(set, { out, dryRun: true, accel: 'tcg', offline: true });
  const byLayer = new Map((result.dryRun ?? []).map((l) => [l.layer, l]));

  it('installs with the el9stream kickstart, then puts the selenium grid on layer base', () => {
    expect(set.distro).toBe('storage');
    expect(set.family).toBe('rpm');
    expect(set.selinux).toBe(true);
    expect(set.layers.map((l) => [l.name, l.parent])).toEqual([
      ['os', undefined],
      ['base', 'os'],
    ]);
    const os = set.layers[0]?.base;
    expect(os?.kind).toBe('install');
    expect(os?.kind === 'install' && os.answerFile).toBe(path.join(REPO_ROOT, 'images/el9stream/base.ks'));
    expect(set.layers[1]?.steps).toEqual([
      { kind: 'script', file: path.join(REPO_ROOT, 'images/storage/selenium-grid.sh') },
      { kind: 'script', file: path.join(REPO_ROOT, 'images/el9stream/relabel-partitions.sh') },
    ]);
  });

  it('plans storage-base.qcow2 as an overlay on storage-os.qcow2', () => {
    expect(result.dryRun?.map((l) => [l.layer, l.action])).toEqual([
      ['os', 'build'],
      ['base', 'build'],
    ]);
    const steps = byLayer.get('base')?.steps ?? [];
    expect(steps[0]?.argv).toEqual(
      expect.arrayContaining(['-b', 'storage-os.qcow2', `${out}/storage-base.qcow2.tmp`]),
    );
    expect(byLayer.get('os')?.steps[1]?.argv?.at(-1)).toBe('23G');
  });

  it('prepares the selenium grid as ost-images does', () => {
    const sh = readFileSync(path.join(REPO_ROOT, 'images/storage/selenium-grid.sh'), 'utf8');
    expect(sh).toContain('dnf install -y podman');
    expect(sh).toContain('/var/tmp/containers/storage');
    for (const image of ['selenium-standalone-chrome', 'selenium-standalone-firefox', 'selenium-video'])
      expect(sh).toContain(`quay.io/ovirt/${image}:latest`);
    expect(sh).toContain('artifacts=/var/tmp/selenium');
    expect(sh).toContain('chmod 0777 "$artifacts"');
    expect(sh).toContain('--add-port=4444/tcp --add-port=4444/udp');
  });
});

describe('--dry-run where a repository cannot be read', () => {
  // a mirror on a loopback port nothing listens on: refused at once
  const set = () =>
    tempTree({
      'set.yaml': `distro: t1
family: deb
layers:
  - name: base
    debootstrap: { suite: bookworm, mirror: "http://127.0.0.1:9/debian" }
  - name: upgrade
    parent: base
    steps: [{ upgrade: true }]
  - name: leaf
    parent: upgrade
    steps: [{ run: "true" }]
`,
    });

  it('plans every layer, says which have an unknown upstream state and why', async () => {
    const dir = set();
    const s = loadImageSet(path.join(dir, 'set.yaml'));
    const r = await buildImages(s, { out: path.join(dir, 'out'), dryRun: true, accel: 'tcg' });
    expect(r.dryRun?.map((l) => [l.layer, l.action])).toEqual([
      ['base', 'build'],
      ['upgrade', 'build'],
      ['leaf', 'build'],
    ]);
    // the leaf installs nothing (no upstream state of its own): it follows its parent
    expect(r.incomplete?.map((l) => l.layer)).toEqual(['upgrade']);
    for (const l of r.incomplete ?? []) expect(l.reason).toContain('http://127.0.0.1:9/debian');
    expect(r.dryRun?.find((l) => l.layer === 'upgrade')?.reason).toBe(
      'upstream state unknown: a repository could not be read',
    );
    expect(r.dryRun?.find((l) => l.layer === 'base')?.upstreamUnknown).toBeUndefined();
    // a real build still stops at the unreadable repository (no dry run: nothing planned on a guess)
    await expect(buildImages(s, { out: path.join(dir, 'out2'), accel: 'tcg' })).rejects.toThrow(
      /cannot read the state of deb http:\/\/127\.0\.0\.1:9\/debian bookworm/,
    );
  });

  it('the command prints the plan and exits 3, the incomplete part on stderr', async () => {
    const dir = set();
    let stdout = '';
    let stderr = '';
    const out = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
      stdout += String(c);
      return true;
    });
    const err = vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => {
      stderr += String(c);
      return true;
    });
    let code: number;
    try {
      code = await main([
        'build-images',
        path.join(dir, 'set.yaml'),
        '--dry-run',
        '--out',
        path.join(dir, 'o'),
      ]);
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
    expect(code).toBe(3);
    expect(stdout).toContain('upgrade: BUILD (upstream state unknown: a repository could not be read)');
    expect(stderr).toContain('the plan is incomplete: the upstream state of upgrade could not be read');
    expect(existsSync(path.join(dir, 'o'))).toBe(false);
  });
});
