// The commands on running environments as data: down, status, list, ssh, exec, console, gc.

import { wholeNumber } from '../coerce.js';
import {
  checkpointDirOption,
  connectOption,
  envCommon,
  envOption,
  envSpec,
  layerOptions,
} from '../options.js';
import { defineCommand, demandedText, flag, numeric, textList } from '../spec.js';

export const down = defineCommand({
  name: 'down',
  describe: 'Remove an environment: domains, networks, overlays, leases and its directory (idempotent)',
  positionals: { env: envSpec },
  options: envCommon,
  run: async (a, { config }) => (await import('../commands/envs.js')).downCommand(a, config),
});

export const status = defineCommand({
  name: 'status',
  describe: 'Show an environment: VMs, addresses, libvirt states',
  positionals: { env: envSpec },
  options: envCommon,
  run: async (a, { config }) => (await import('../commands/envs.js')).statusCommand(a, config),
});

export const list = defineCommand({
  name: 'list',
  describe:
    'List every environment on this host (up, starting, or a leftover of a dead ost up); --layers: the custom layer cache; --checkpoints: the checkpoints',
  positionals: {},
  options: {
    ...envCommon,
    ...layerOptions,
    ...checkpointDirOption,
    checkpoints: flag('the checkpoints and their sizes', false),
  },
  run: async (a, { config }) =>
    a.checkpoints
      ? (await import('../commands/checkpoint.js')).listCheckpointsCommand(a, config)
      : (await import('../commands/envs.js')).listCommand(a, config),
});

export const ssh = defineCommand({
  name: 'ssh',
  describe: 'SSH into a VM of an environment (runs the command when given)',
  positionals: { vm: demandedText(), command: textList() },
  options: { ...envOption, ...connectOption },
  run: async (a, { config, rest }) =>
    (await import('../commands/vm.js')).sshCommand({ ...a, command: [...a.command, ...rest] }, config),
});

export const exec = defineCommand({
  name: 'exec',
  describe:
    "Run a command where an environment's VMs are reachable (inside an isolated env's network namespace): ost exec <env> -- <command>",
  positionals: { env: envSpec },
  options: connectOption,
  run: async (a, { config, rest }) =>
    (await import('../commands/vm.js')).execCommand({ ...a, command: rest }, config),
});

export const vmConsole = defineCommand({
  name: 'console',
  describe: "Attach to a VM's serial console (virsh console), or print its log with --log",
  positionals: { vm: demandedText() },
  options: {
    log: flag('print the console log instead', false),
    lines: numeric(wholeNumber('lines', 1, 1_000_000), 'lines of --log', '50'),
    ...envOption,
    ...connectOption,
  },
  run: async (a, { config }) => (await import('../commands/vm.js')).consoleCommand(a, config),
});

export const gc = defineCommand({
  name: 'gc',
  describe:
    'Remove leftovers of environments whose ost up died before finishing; --layers: custom layers no env uses; --checkpoints: unfinished checkpoints (and with --keep-days, old ones)',
  positionals: {},
  options: {
    ...envCommon,
    ...layerOptions,
    ...checkpointDirOption,
    checkpoints: flag(
      'unfinished checkpoints; with --keep-days N also those older than N days that no env runs on',
      false,
    ),
    'keep-days': numeric(
      wholeNumber('keep-days', 0, 36_500),
      'with --layers: keep layers used in the last N days (default 0); with --checkpoints: see there',
    ),
  },
  run: async (a, { config }) =>
    a.checkpoints
      ? (await import('../commands/checkpoint.js')).gcCheckpointsCommand(a, config)
      : (await import('../commands/envs.js')).gcCommand(a, config),
});
