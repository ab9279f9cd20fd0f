// `ost up --dry-run`: the plan as text — each phase with the commands it would run and what it would do,
// then every directory and file it would create with the uid that owns it once the env is up.
import type { Reporter } from '../../core/events.js';
import { formatCommand } from '../../core/exec.js';
import type { UpOptions } from './options.js';
import type { Phase } from './phase.js';
import type { UpPlan } from './plan.js';
import { prepareUp } from './prepare.js';
import { phasesOf } from './run.js';

const octal = (mode: number | undefined) =>
  mode === undefined ? '' : ` ${mode.toString(8).padStart(4, '0')}`;

function phaseLines(plan: UpPlan, p: Phase): string[] {
  if (p.skip?.(plan)) return [];
  const lines = [`  ${p.title(plan)}:`];
  for (const s of p.steps(plan))
    lines.push(s.argv ? `    $ ${formatCommand(s.argv)}    # ${s.title}` : `    # ${s.title}`);
  return lines;
}

/** The plan of an up, as `ost up --dry-run` prints it. */
export function formatUpPlan(plan: UpPlan, notes: readonly string[] = []): string {
  const from = plan.from ? ` from checkpoint ${plan.from.name}` : '';
  const lines = [
    `plan for ost up ${plan.suite} (${plan.env.file}): env ${plan.id}, ${plan.mode}${from}, ${plan.ipMode === 'dual' ? 'IPv4 and IPv6' : plan.ipMode === 'ipv4' ? 'IPv4 only' : 'IPv6 only'}, libvirt ${plan.uri} (${plan.domainType})`,
    ...notes.map((n) => `  note: ${n}`),
    '  VMs:',
    ...plan.vms.map(
      (vm) =>
        `    ${vm.name}: ${vm.vm.memoryMiB} MiB, ${vm.vm.vcpus} vCPUs, image ${vm.image.ref}${vm.image.package ? ` (${vm.image.package.name}-${vm.image.package.version}-${vm.image.package.release})` : ''}; overlay on ${plan.from ? `checkpoint ${plan.from.name}` : vm.overlayBase}; chain ${vm.chain.join(' <- ')}`,
    ),
  ];
  for (const p of phasesOf(plan).flat()) lines.push(...phaseLines(plan, p));
  lines.push('  files (owner once the env is up):');
  for (const f of plan.paths)
    lines.push(
      `    ${f.kind.padEnd(7)} uid ${String(f.uid).padEnd(5)}${octal(f.mode).padEnd(5)} ${f.path}  (${f.what})`,
    );
  return lines.join('\n');
}

/**
 * Check, read and plan an up without making anything; the plan and what it leaves to run time. What the
 * preparation said (deployed images that do not match, an env that would start isolated) is in the plan as
 * notes too.
 */
export async function planOnly(o: UpOptions): Promise<{ plan: UpPlan; text: string }> {
  const said: string[] = [];
  const reporter: Reporter = (e) => {
    if (e.type === 'info' || e.type === 'warning') said.push(e.message);
    o.reporter(e);
  };
  const { plan } = await prepareUp({ ...o, reporter }, {}, true);
  const notes = [
    ...said,
    ...(o.custom
      ? [
          `custom layers (${o.custom.repos.join(', ')}) are made or reused at run time; each VM's overlay then sits on its image's custom layer`,
        ]
      : []),
  ];
  return { plan, text: formatUpPlan(plan, notes) };
}
