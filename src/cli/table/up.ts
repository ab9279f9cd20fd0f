// `ost up` as data: its positional and every flag, in --help order.

import { envIdFlag, sizeFlag } from '../coerce.js';
import { checkpointDirOption, connectOption, jsonOption, timeoutOption } from '../options.js';
import { checkedText, defineCommand, flag, flagOrWord, numeric, renamed, text, textList } from '../spec.js';

export const up = defineCommand({
  name: 'up',
  describe: 'Start a suite of ost-env.yaml (or an OST ost.json) from the installed ost-images RPMs',
  positionals: { suite: text('suite in ost-env.yaml (e.g. demo-suite)') },
  options: {
    'env-file': text('ost-env.yaml to read (default: ./ost-env.yaml, else the bundled one)'),
    env: text("OST's own suite file (path/to/ost.json) instead of ost-env.yaml"),
    'ost-repo': text('an OST checkout: ost up <suite> --ost-repo DIR reads DIR/<suite>/ost.json'),
    deploy: flag("OST suites: run their deploy scripts too (OST's pytest runs them otherwise)", false),
    'ipv4-only': flag('networks with IPv4 only (ost.sh run -4)'),
    'ipv6-only': flag('networks with IPv6 only (ost.sh run -6)'),
    id: checkedText(envIdFlag, 'environment id: 8 hex digits (default: random)'),
    templates: text('directory with your own network/domain/nic/disk.xml'),
    'overlay-dir': text(
      'overlay cache (default: $OST_OVERLAY_DIR, else /dev/shm/ost; /dev/shm/ost-<uid> when not root)',
    ),
    'overlay-fallback': text(
      'used when the cache is too small (default: $OST_OVERLAY_FALLBACK, else /var/tmp/ost[-<uid>])',
    ),
    'overlay-reserve': renamed(
      'overlayReserveBytes',
      numeric(sizeFlag('overlay-reserve'), 'free space wanted per VM', '1G'),
    ),
    'images-root': text('look the ost-images RPMs up in this installroot'),
    'images-dir': text('take <distro>-<layer>.qcow2 from here (default: $OST_IMAGES_DIR)'),
    key: text('SSH private key (default: the one the base RPM ships)'),
    from: text('restore the VMs from this checkpoint (ost checkpoint) instead of booting them'),
    isolated: flag(
      'with --from: a new env beside the one the checkpoint was taken of, its networks (same subnets) in a network namespace of their own; reach it with ost ssh / ost exec',
      false,
    ),
    deployed: flagOrWord(
      'require',
      ['auto'] as const,
      "start every VM from the suite's deployed images (ost build-images --deployed; ost-images-<distro>-<suite>-deployed) and run no deploy script; =auto: deploy at run time when there are none that match",
    ),
    'checkpoint-cache': flag(
      'restore from a checkpoint of the same suite, images and deploy scripts when one is stored; else boot, deploy, and checkpoint the env for next time',
      false,
    ),
    wait: flag(
      "wait until every VM answers SSH; --no-wait returns once they run (as lagofy's ost_init; no deploy scripts)",
      true,
    ),
    'dry-run': flag(
      'print the plan (the commands, and every file with the uid that will own it); make nothing',
      false,
    ),
    chained: flag(
      'start every VM from its chained layers even where a squashed package of its image is installed',
      false,
    ),
    'keep-on-failure': flag(
      'leave the VMs of a failed up running, to debug them (ost down removes them)',
      false,
    ),
    'custom-repo': renamed(
      'customRepos',
      textList(
        'packages to test: a folder of .deb/.rpm files, or a repository (folder or http(s) URL); built into a cached custom layer of each image (repeatable)',
      ),
    ),
    'custom-install': textList('also install this new package from the custom repos (repeatable)'),
    'disable-custom-repos': flag(
      'leave the custom repos configured but disabled in the VMs (default: enabled)',
      false,
    ),
    'skip-custom-check': flag('start even when a custom repo supplied no package to the images', false),
    'layer-cache': text('custom layer cache (default: $OST_LAYER_CACHE, else /var/cache/ost/layers)'),
    ...connectOption,
    ...jsonOption,
    ...timeoutOption,
    ...checkpointDirOption,
  },
  run: async (a, { config }) => (await import('../commands/env.js')).upCommand(a, config),
});
