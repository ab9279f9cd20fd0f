// Install base: virt-install from an ISO/tree/URL (kickstart or preseed), or from a kernel + initrd.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { InternalError } from '../../core/errors.js';
import { type ProcessId, self } from '../../core/process.js';
import { createArgv } from '../../tools/qemu-img.js';
import { destroyDomain } from '../../tools/virsh.js';
import { virtInstallArgv } from '../../tools/virt-install.js';
import { placeholdersIn } from '../plan/load.js';
import type { ImageSet, InstallBase } from '../plan/model.js';
import { appendToInitrd } from './initrd.js';
import type { Action, LayerContext } from './types.js';

/** Render `{{ name }}` placeholders; every placeholder must be known (load.ts checks this up front). */
export function renderTemplate(text: string, values: Record<string, string>): string {
  const missing = placeholdersIn(text).filter((p) => !(p in values));
  if (missing.length > 0)
    throw new InternalError(`unknown placeholders: ${[...new Set(missing)].join(', ')}`);
  return text.replace(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (_, n: string) => values[n] ?? '');
}

/** The values an answer file can use. */
export function templateValues(set: ImageSet, hostname: string, publicKey: string): Record<string, string> {
  return { ...set.variables, ssh_public_key: publicKey.trim(), distro: set.distro, hostname };
}

/** Name of the answer file inside the initrd, and the kernel arguments that make the installer use it. */
export function answerFileBoot(b: InstallBase): { name: string; args: string } {
  return b.answerKind === 'kickstart'
    ? { name: 'ks.cfg', args: 'inst.ks=file:/ks.cfg inst.text console=ttyS0' }
    : { name: 'preseed.cfg', args: 'auto=true priority=critical console=ttyS0' };
}

/**
 * The transient install domain of a layer: `ost-build-<distro>-<layer>-p<pid>s<start>`. It names the build
 * process that owns it, so two builds never share a name, and a later build removes only the domains of
 * builds that are gone.
 */
export function installDomainName(distro: string, layer: string, owner: ProcessId): string {
  return `ost-build-${distro}-${layer}-p${owner.pid}s${owner.start || '0'}`;
}

/** The owner named in an install domain's name, if it is one of a set of this distro. */
export function installDomainOwner(distro: string, name: string): ProcessId | undefined {
  if (!name.startsWith(`ost-build-${distro}-`)) return undefined;
  const m = /-p(\d+)s(\d+)$/.exec(name);
  return m ? { pid: Number(m[1]), start: m[2] === '0' ? '' : (m[2] as string) } : undefined;
}

export function installActions(ctx: LayerContext): Action[] {
  const b = ctx.layer.base;
  if (b?.kind !== 'install') throw new InternalError(`layer ${ctx.layer.name} is not an install base`);
  const boot = answerFileBoot(b);
  const answer = path.join(ctx.work, boot.name);
  const initrd = path.join(ctx.work, 'initrd-with-answers.img');
  const name = installDomainName(ctx.set.distro, ctx.layer.name, self());
  const hostname = `${ctx.set.distro}-${ctx.layer.name}`.replace(/[^a-z0-9-]/g, '-');
  const kernelArgs = [boot.args, ...b.extraArgs].join(' ');
  const actions: Action[] = [
    {
      kind: 'internal',
      title: `render ${path.basename(b.answerFile)} → ${answer}`,
      run: async () => {
        await fs.mkdir(ctx.work, { recursive: true });
        const text = await fs.readFile(b.answerFile, 'utf8');
        await fs.writeFile(answer, renderTemplate(text, templateValues(ctx.set, hostname, ctx.publicKey)));
        if (b.kernel && b.initrd) {
          await appendToInitrd(b.initrd, initrd, [{ name: boot.name, data: await fs.readFile(answer) }]);
        }
      },
    },
    {
      kind: 'exec',
      title: `create a ${b.diskSize.text} disk`,
      argv: createArgv(ctx.tmpImage, b.diskSize.text),
    },
    {
      kind: 'exec',
      title: `install with virt-install (console: ${ctx.consoleLog})`,
      argv: virtInstallArgv({
        connect: ctx.libvirtUri,
        name,
        accel: ctx.accel,
        memoryMiB: b.memoryMiB,
        vcpus: b.vcpus,
        osVariant: b.osVariant,
        disk: ctx.tmpImage,
        consoleLog: ctx.consoleLog,
        network: b.network,
        waitMinutes: Math.ceil(b.timeoutMs / 60_000),
        kernelArgs,
        location: b.location ? { source: b.location, inject: answer } : undefined,
        kernel: b.kernel && b.initrd ? { kernel: b.kernel, initrd } : undefined,
      }),
      timeoutMs: b.timeoutMs + 5 * 60_000,
      undo: {
        label: `transient domain ${name}`,
        fn: () => destroyDomain(ctx.libvirtUri, name),
      },
    },
  ];
  return actions;
}
