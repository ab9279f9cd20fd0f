// The checkpoint commands as data: checkpoint, revert, rm-checkpoint.
import { checkpointDirOption, envCommon, envSpec, timeoutOption } from '../options.js';
import { defineCommand, demanded, demandedText, flag } from '../spec.js';

const envAndName = {
  env: demanded(envSpec),
  name: demandedText('checkpoint name'),
} as const;

export const checkpoint = defineCommand({
  name: 'checkpoint',
  describe:
    'Freeze an environment: every VM paused at once, its memory and disks saved under NAME (the env runs on)',
  positionals: envAndName,
  options: {
    stop: flag('leave the env paused afterwards', false),
    force: flag('replace a checkpoint of that name', false),
    ...envCommon,
    ...checkpointDirOption,
  },
  run: async (a, { config }) => (await import('../commands/checkpoint.js')).checkpointCommand(a, config),
});

export const revert = defineCommand({
  name: 'revert',
  describe:
    'Put an environment back to a checkpoint of it, in place: every VM restored, resumed together, clocks set',
  positionals: envAndName,
  options: { ...envCommon, ...timeoutOption, ...checkpointDirOption },
  run: async (a, { config }) => (await import('../commands/checkpoint.js')).revertCommand(a, config),
});

export const rmCheckpoint = defineCommand({
  name: 'rm-checkpoint',
  describe: 'Remove a checkpoint (refused while an environment runs on it)',
  positionals: { name: demandedText() },
  options: { ...envCommon, ...checkpointDirOption },
  run: async (a, { config }) => (await import('../commands/checkpoint.js')).rmCheckpointCommand(a, config),
});
