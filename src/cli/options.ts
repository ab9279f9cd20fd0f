// Option groups that several commands share, each flag declared once (--help prints them in this order).
import { DEFAULT_PAYLOAD } from '../builder/rpm/spec.js';
import { payloadFlag, wholeNumber } from './coerce.js';
import { checkedText, flag, numeric, text, textList } from './spec.js';

/** publish-images, and build-images --publish. */
export const publishOptions = {
  keep: numeric(wholeNumber('keep', 1, 10_000), 'keep this many complete sets in the repo'),
  squash: textList('also pack LAYER as one standalone qcow2'),
  payload: checkedText(payloadFlag, `RPM payload compression (default ${DEFAULT_PAYLOAD})`),
  'sign-key': text('GPG key id to sign RPMs and repomd.xml with'),
} as const;

export const connectOption = {
  connect: text('libvirt URI (default: $LIBVIRT_DEFAULT_URI or qemu:///system)'),
} as const;

export const jsonOption = {
  json: flag('machine-readable result on stdout', false),
} as const;

/** The env a command works on: as a positional (down, status, exec) or as --env (ssh, console). */
export const envSpec = text('environment id, or a suite with one environment (default: the only one)');
export const envOption = { env: envSpec } as const;

/** ost list / gc --layers. */
export const layerOptions = {
  layers: flag('the custom layer cache (ost up --custom-repo)', false),
  'layer-cache': text('default: $OST_LAYER_CACHE, else /var/cache/ost/layers'),
} as const;

export const checkpointDirOption = {
  'checkpoint-dir': text(
    'checkpoint store (default: $OST_CHECKPOINT_DIR, else /var/lib/ost/checkpoints; ~/.local/share/ost/checkpoints when not root)',
  ),
} as const;

export const timeoutOption = {
  timeout: numeric(wholeNumber('timeout', 1, 86_400), 'seconds each VM may take to be SSH-ready', '600'),
} as const;

/** `connect` and `json`: what every env command takes. */
export const envCommon = { ...connectOption, ...jsonOption } as const;
