// The one command table, in the order `ost --help` lists the commands.
import type { Command } from './spec.js';
import { checkpoint, revert, rmCheckpoint } from './table/checkpoints.js';
import { down, exec, gc, list, ssh, status, vmConsole } from './table/envs.js';
import { bootImage, buildImages, publishImages } from './table/images.js';
import { up } from './table/up.js';

export const COMMANDS: readonly Command[] = [
  buildImages,
  publishImages,
  bootImage,
  up,
  down,
  status,
  checkpoint,
  revert,
  rmCheckpoint,
  list,
  ssh,
  exec,
  vmConsole,
  gc,
];
