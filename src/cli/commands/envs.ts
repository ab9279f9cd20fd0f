// `ost down / status / list / gc`: thin handlers over the launcher's env discovery and teardown.
import type { OstConfig } from '../../core/config.js';
import type { Reporter } from '../../core/events.js';
import { processAlive } from '../../core/process.js';
import {
  discoverEnvs,
  type FoundEnv,
  isLeftover,
  isUp,
  UNOWNED_GRACE_MS,
} from '../../launcher/env-dir/discover.js';
import { leasesDir, stateRoot } from '../../launcher/env-dir/record.js';
import { DOWN_LOCK_WAIT_MS } from '../../launcher/env-lock.js';
import { pruneUnreadableLeases } from '../../launcher/net/leases.js';
import { orphanOverlayDirs, removeOverlayDir } from '../../launcher/overlays.js';
import { requireEnv, selectEnv } from '../../launcher/select.js';
import { downLocked, type LockedTeardown, reapLeftover, teardown } from '../../launcher/teardown.js';
import { libvirtUri, virsh } from '../../tools/virsh.js';
import { cliReporter } from '../reporter.js';
import { overlayRoots } from './common.js';
import { customLine, type EnvCommon } from './env.js';
import { gcLayersCommand, listLayersCommand } from './layers.js';

function describe(e: FoundEnv): { state: string; owner: string } {
  const state = isLeftover(e) ? 'leftover' : isUp(e) ? 'up' : 'starting';
  // the owner matters while ost up runs (or died running): an env that is up belongs to no process
  const owner = e.owner && state !== 'up' ? `${e.owner.pid}${processAlive(e.owner) ? '' : ' (gone)'}` : '-';
  return { state, owner };
}

/** Teardown under the env lock, the env found again by its id in libvirt and the state dir. */
const lockedTeardown = (uri: string, root: string, reporter: Reporter): LockedTeardown => ({
  stateRoot: root,
  // found again under its lock: that env's objects alone
  find: async (id) => (await discoverEnvs(uri, root, id)).get(id),
  tear: (e) => teardown(uri, root, e, reporter),
  reporter,
});

export async function downCommand(a: EnvCommon & { env?: string }, config: OstConfig): Promise<void> {
  const uri = libvirtUri(a.connect, config.libvirtUri);
  const root = stateRoot(config);
  const e = await selectEnv(uri, root, a.env);
  if (!e) {
    process.stdout.write(
      a.json ? '{"removed":null}\n' : `nothing to remove${a.env ? `: no environment ${a.env}` : ''}\n`,
    );
    return;
  }
  const ui = cliReporter({ quiet: a.json });
  let done: Awaited<ReturnType<typeof downLocked>>;
  try {
    // under the env's lock: a checkpoint or revert of it finishes first
    done = await downLocked(lockedTeardown(uri, root, ui.reporter), e.id, DOWN_LOCK_WAIT_MS);
  } finally {
    ui.stop();
  }
  if (!done) {
    process.stdout.write(a.json ? '{"removed":null}\n' : `nothing to remove: ${e.id} is gone\n`);
    return;
  }
  const r = done.result;
  process.stdout.write(
    a.json
      ? `${JSON.stringify({ id: e.id, ...r }, null, 2)}\n`
      : `removed ${e.id}: ${r.domains.length} domains, ${r.networks.length} networks, ${r.leases.length} leases, ${r.removed.join(', ') || 'no dirs'}\n`,
  );
}

export async function listCommand(
  a: EnvCommon & { layers?: boolean; layerCache?: string },
  config: OstConfig,
): Promise<void> {
  if (a.layers) return listLayersCommand(a, config);
  const envs = [
    ...(await discoverEnvs(libvirtUri(a.connect, config.libvirtUri), stateRoot(config))).values(),
  ];
  if (a.json) {
    const doc = envs.map((e) => ({
      id: e.id,
      suite: e.suite,
      ...describe(e),
      domains: [...e.domains.keys()],
      networks: [...e.networks.keys()],
      leases: e.leases,
      workdir: e.workdir,
    }));
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    return;
  }
  if (envs.length === 0) {
    process.stdout.write('no environments\n');
    return;
  }
  process.stdout.write(`${'ID'.padEnd(28)} ${'SUITE'.padEnd(14)} ${'STATE'.padEnd(9)} VMS NETS OWNER\n`);
  for (const e of envs) {
    const d = describe(e);
    process.stdout.write(
      `${e.id.padEnd(28)} ${e.suite.padEnd(14)} ${d.state.padEnd(9)} ${String(e.domains.size).padStart(3)} ${String(e.networks.size).padStart(4)} ${d.owner}\n`,
    );
  }
}

export async function statusCommand(a: EnvCommon & { env?: string }, config: OstConfig): Promise<void> {
  const uri = libvirtUri(a.connect, config.libvirtUri);
  const e = await requireEnv(uri, stateRoot(config), a.env);
  const states = new Map<string, string>();
  await Promise.all(
    [...e.domains.keys()].map(async (d) => {
      const r = await virsh(uri, ['domstate', d], { allowFailure: true });
      states.set(d, r.exitCode === 0 ? r.stdout.trim() : 'gone');
    }),
  );
  const d = describe(e);
  if (a.json) {
    process.stdout.write(
      `${JSON.stringify({ id: e.id, suite: e.suite, ...d, domains: Object.fromEntries(states), record: e.record }, null, 2)}\n`,
    );
    return;
  }
  const lines = [`environment ${e.id} (suite ${e.suite}): ${d.state}, owner ${d.owner}`];
  for (const vm of e.record?.vms ?? []) {
    lines.push(
      `  ${vm.name.padEnd(10)} ${vm.address.padEnd(16)} ${(states.get(vm.libvirtName) ?? 'gone').padEnd(9)} ${vm.image.package?.name ?? vm.image.path}`,
    );
    const c = customLine(vm);
    if (c) lines.push(c);
  }
  if (!e.record) for (const [name, s] of states) lines.push(`  ${name} ${s}`);
  for (const n of e.networks.keys()) lines.push(`  network ${n}`);
  if (e.record?.netns)
    lines.push(
      `  isolated: network namespace ${e.record.netns} (ost ssh <vm> --env ${e.id}, ost exec ${e.id} -- …)`,
    );
  if (e.record?.checkpoint) lines.push(`  restored from checkpoint ${e.record.checkpoint.name}`);
  if (e.workdir) lines.push(`  workdir ${e.workdir}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

export async function gcCommand(
  a: EnvCommon & { layers?: boolean; layerCache?: string; keepDays?: number },
  config: OstConfig,
): Promise<void> {
  if (a.layers) return gcLayersCommand({ ...a, keepDays: a.keepDays ?? 0 }, config);
  const uri = libvirtUri(a.connect, config.libvirtUri);
  const root = stateRoot(config);
  const found = await discoverEnvs(uri, root);
  const leftovers = [...found.values()].filter(isLeftover);
  const ui = cliReporter({ quiet: a.json });
  const removed = [];
  const locked = lockedTeardown(uri, root, ui.reporter);
  for (const e of leftovers) {
    // found again under the env's lock: a new ost up --from may have taken the id since
    const r = await reapLeftover(locked, e.id);
    if (r) removed.push({ id: e.id, ...r });
  }
  // overlay dirs no env claims any more (an env taken down by hand, its state gone): RAM ost up counts as taken
  const orphans = await orphanOverlayDirs(
    Object.values(overlayRoots(config)),
    new Set(found.keys()),
    UNOWNED_GRACE_MS,
  );
  for (const dir of orphans) await removeOverlayDir(dir);
  // damaged lease files (no owner to ask): they hold their /24 until removed here
  const damagedLeases = await pruneUnreadableLeases(leasesDir(root));
  for (const p of damagedLeases)
    ui.reporter({ type: 'warning', message: `removed the unreadable lease of ${p}.0/24` });
  ui.stop();
  process.stdout.write(
    a.json
      ? `${JSON.stringify({ removed, damagedLeases, overlayDirs: orphans }, null, 2)}\n`
      : removed.length === 0 && orphans.length === 0
        ? 'no leftovers\n'
        : `${[
            ...removed.map(
              (r) =>
                `removed leftover ${r.id}: ${r.domains.length} domains, ${r.networks.length} networks, ${r.leases.length} leases`,
            ),
            ...orphans.map((d) => `removed overlay dir ${d}: no environment claims it`),
          ].join('\n')}\n`,
  );
}
