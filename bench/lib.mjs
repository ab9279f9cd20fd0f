// Shared by the launcher benchmarks: a timed spawn, and libvirtd + virtlogd inside a network namespace of
// the benchmark's own, stopped afterwards by the pids it started (never another libvirtd on the host).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

export const sec = (ms) => `${(ms / 1000).toFixed(2)} s`;
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A runner: `sh(cmd, argv, opts)` → { ms, stdout, stderr, status }; throws on failure unless allowFailure. */
export function runner(env) {
  return (cmd, argv, opts = {}) => {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 28, env, ...opts });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0 && !opts.allowFailure)
      throw new Error(`${cmd} ${argv.join(' ')} failed:\n${r.stdout ?? ''}\n${r.stderr ?? ''}`);
    return { ms, stdout: r.stdout, stderr: r.stderr, status: r.status };
  };
}

/** Start libvirtd (and virtlogd when none runs) in a new namespace; returns { inNs, stop }. */
export function libvirtNetns(sh, netns) {
  if (sh('pgrep', ['-r', 'R,S,D', '-x', 'libvirtd'], { allowFailure: true }).status === 0)
    throw new Error('a libvirtd is already running: stop it, this benchmark starts its own in a namespace');
  const inNs = (argv, opts) => sh('ip', ['netns', 'exec', netns, ...argv], opts);
  sh('ip', ['netns', 'add', netns]);
  sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  const pids = [];
  if (sh('pgrep', ['-r', 'R,S,D', '-x', 'virtlogd'], { allowFailure: true }).status !== 0) {
    inNs(['virtlogd', '-d']);
    pids.push(Number(readFileSync('/run/virtlogd.pid', 'utf8').trim()));
  }
  inNs(['libvirtd', '-d']);
  const stop = () => {
    for (const p of pids) sh('kill', [String(p)], { allowFailure: true });
    spawnSync('sleep', ['1']);
    sh('ip', ['netns', 'del', netns], { allowFailure: true });
  };
  for (let i = 0; i < 60; i++) {
    if (sh('virsh', ['-c', 'qemu:///system', 'version'], { allowFailure: true }).status === 0) {
      pids.unshift(Number(readFileSync('/run/libvirtd.pid', 'utf8').trim()));
      return { inNs, stop };
    }
    spawnSync('sleep', ['0.5']);
  }
  stop();
  throw new Error('libvirtd did not start');
}

/** The 3-VM suite the launcher benchmarks start (engine + 2 hosts, NAT + isolated), written into `dir`. */
export function writeBenchSuite(dir) {
  const file = path.join(dir, 'ost-env.yaml');
  writeFileSync(
    file,
    `suites:
  bench-suite:
    networks:
      management: { management: true, forward: nat }
      storage: { forward: isolated }
    vms:
      engine: { image: debian12-engine-installed, memory: 1024, nics: [management, storage] }
      host-0: { image: debian12-host-installed, memory: 1024, nics: [management, storage] }
      host-1: { image: debian12-host-installed, memory: 1024, nics: [management, storage] }
`,
  );
  return file;
}

/** argv of `ost up SUITE` from an env file and an installroot of image RPMs, waiting for SSH, as JSON. */
export function upArgv(ost, suite, envFile, installRoot) {
  return [
    ost,
    'up',
    suite,
    '--env-file',
    envFile,
    '--images-root',
    installRoot,
    '--json',
    '--timeout',
    '1200',
  ];
}

/** One timed `ost up bench-suite` (waiting for SSH) in the namespace: its env.json record and wall time. */
export function upBenchSuite(inNs, ost, envFile, installRoot, cwd) {
  const r = inNs(upArgv(ost, 'bench-suite', envFile, installRoot), { cwd });
  return { rec: JSON.parse(r.stdout), ms: r.ms };
}
