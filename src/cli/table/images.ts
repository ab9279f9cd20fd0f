// The image builder's commands as data: build-images, publish-images, boot-image.

import { wholeNumber } from '../coerce.js';
import { jsonOption, publishOptions } from '../options.js';
import { defineCommand, demandedText, flag, numeric, text, textList } from '../spec.js';

/** Every command that reads a set file: whether its host paths may lead outside its folder (plan/confine.ts). */
const setFileOptions = {
  'allow-outside': flag(
    'let the set file name host paths outside its own folder (scripts, uploads, answer files, file: repos, images); only for a set file whose author you trust',
    false,
  ),
};

export const buildImages = defineCommand({
  name: 'build-images',
  describe: 'Build an image set (images/<distro>.yaml) into verified layered qcow2 images',
  positionals: { set: textList('image-set file(s)', { demandOption: true }) },
  options: {
    out: text('output directory (default: build/<distro>)'),
    jobs: numeric(wholeNumber('jobs', 1, 64), 'layers built at the same time', '2'),
    force: textList('rebuild LAYER (and its descendants)'),
    only: textList('build only LAYER (and its missing ancestors)'),
    'dry-run': flag('print the plan and the exact commands', false),
    deployed: textList(
      "then deploy SUITE on the set's images and commit each VM's disks as its deployed layers (repeatable; ost up SUITE --deployed starts from them)",
    ),
    'env-file': text(
      'with --deployed: the ost-env.yaml its suites are in (default: ./ost-env.yaml, else the bundled one)',
    ),
    'ost-repo': text('with --deployed: an OST checkout, whose <suite>/ost.json it deploys'),
    ...jsonOption,
    verbose: flag('show every step and command', false, { alias: 'v' }),
    offline: flag(
      "don't read the package repositories' state: keep what each layer was last built from",
      false,
    ),
    'cache-repo': text('fetch layers with the same key from this repo (dir or URL)'),
    'with-repo': textList(
      'build the leaves with the packages of this folder of .deb/.rpm files or repository upgraded in (repeatable)',
    ),
    'with-install': textList('with --with-repo: also install this new package into the leaves (repeatable)'),
    'skip-custom-check': flag('with --with-repo: accept a build to which a repo supplied nothing', false),
    publish: text('then pack, verify and publish the set to this repo dir'),
    ...publishOptions,
    ...setFileOptions,
  },
  run: async (a, { config }) => (await import('../commands/build-images.js')).buildImagesCommand(a, config),
});

export const publishImages = defineCommand({
  name: 'publish-images',
  describe: 'Pack a built set into RPMs, verify they install, publish them to a DNF repository',
  positionals: { set: demandedText('image-set file') },
  options: {
    repo: demandedText('repository directory'),
    out: text('build directory (default: build/<distro>)'),
    ...jsonOption,
    ...publishOptions,
    ...setFileOptions,
  },
  run: async (a, { config }) =>
    (await import('../commands/publish-images.js')).publishImagesCommand(a, config),
});

export const bootImage = defineCommand({
  name: 'boot-image',
  describe: 'Boot a throwaway VM from a built layer and wait until SSH answers with the set key',
  positionals: {
    set: text('image-set file (or use --image and --key)'),
    layer: text('layer to boot (default: the first leaf)'),
  },
  options: {
    image: text('boot this qcow2 instead (e.g. an installed one)'),
    key: text('private key for --image'),
    out: text('build directory (default: build/<distro>)'),
    timeout: numeric(wholeNumber('timeout', 1, 86_400), 'seconds to wait for SSH', '600'),
    memory: numeric(wholeNumber('memory', 256, 1_048_576), 'MiB of guest memory', '1024'),
    command: text('command to run over SSH once it answers'),
    ...jsonOption,
    ...setFileOptions,
  },
  run: async (a, { config }) => (await import('../commands/boot-image.js')).bootImageCommand(a, config),
});
