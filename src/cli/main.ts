// The command table. Each handler is thin; errors are rendered once, here.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { bootImageCommand } from './commands/boot-image.js';
import { buildImagesCommand } from './commands/build-images.js';
import { exitCodeFor, renderError } from './errors.js';

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const fail = (err: unknown) => {
    process.stderr.write(`${renderError(err)}\n`);
    code = exitCodeFor(err);
  };
  await yargs(hideBin(['node', 'ost', ...argv]))
    .scriptName('ost')
    .usage('$0 <command> [options]\n\nBuild layered OST VM images and run OST environments from them.')
    .command(
      'build-images <set..>',
      'Build an image set (images/<distro>.yaml) into verified layered qcow2 images',
      (y) =>
        y
          .positional('set', {
            type: 'string',
            array: true,
            demandOption: true,
            describe: 'image-set file(s)',
          })
          .option('out', { type: 'string', describe: 'output directory (default: build/<distro>)' })
          .option('jobs', { type: 'number', default: 2, describe: 'layers built at the same time' })
          .option('force', {
            type: 'string',
            array: true,
            default: [],
            describe: 'rebuild LAYER (and its descendants)',
          })
          .option('only', {
            type: 'string',
            array: true,
            default: [],
            describe: 'build only LAYER (and its missing ancestors)',
          })
          .option('dry-run', {
            type: 'boolean',
            default: false,
            describe: 'print the plan and the exact commands',
          })
          .option('json', { type: 'boolean', default: false, describe: 'machine-readable result on stdout' })
          .option('verbose', {
            alias: 'v',
            type: 'boolean',
            default: false,
            describe: 'show every step and command',
          }),
      async (a) => {
        await buildImagesCommand({
          set: a.set as string[],
          out: a.out,
          jobs: a.jobs,
          force: a.force as string[],
          only: a.only as string[],
          dryRun: a['dry-run'],
          json: a.json,
          verbose: a.verbose,
        }).catch(fail);
      },
    )
    .command(
      'boot-image <set> [layer]',
      'Boot a throwaway VM from a built layer and wait until SSH answers with the set key',
      (y) =>
        y
          .positional('set', { type: 'string', demandOption: true, describe: 'image-set file' })
          .positional('layer', { type: 'string', describe: 'layer to boot (default: the first leaf)' })
          .option('out', { type: 'string', describe: 'build directory (default: build/<distro>)' })
          .option('timeout', { type: 'number', default: 600, describe: 'seconds to wait for SSH' })
          .option('memory', { type: 'number', default: 1024, describe: 'MiB of guest memory' })
          .option('command', { type: 'string', describe: 'command to run over SSH once it answers' })
          .option('json', { type: 'boolean', default: false, describe: 'machine-readable result on stdout' }),
      async (a) => {
        await bootImageCommand({
          set: a.set as string,
          layer: a.layer,
          out: a.out,
          timeout: a.timeout,
          memory: a.memory,
          command: a.command,
          json: a.json,
        }).catch(fail);
      },
    )
    .demandCommand(1, 'name a command; ost --help lists them')
    .strict()
    .help()
    .version()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`error: ${msg}\nrun ost --help for usage\n`);
      code = 2;
    })
    .parseAsync();
  return code;
}
