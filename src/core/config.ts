// Every environment variable ost reads, read once (by the CLI, at start) into one typed object; library code
// gets the values it needs as parameters and never looks at process.env itself.
import type { Accel } from './accel.js';

/** The test-only fault points (core/fault.ts), as the e2e tests set them on the ost process. */
export interface FaultSettings {
  /** OST_FAULT_PAUSE: the named point to stop at. */
  pause?: string;
  /** OST_FAULT_MARK: a file written (`<point> <pid>`) once stopped there. */
  mark?: string;
  /** OST_FAULT_RESUME: go on once this file exists (else stay stopped until killed). */
  resume?: string;
}

/** sudo's SUDO_UID / SUDO_GID / SUDO_USER: who ran ost through sudo. */
export interface SudoSettings {
  uid?: number;
  gid?: number;
  user?: string;
}

/** What the environment says. An empty variable counts as unset (as `${X:-default}` in a shell). */
export interface OstConfig {
  /** LIBVIRT_DEFAULT_URI, else qemu:///system: the libvirt connection when --connect is not given. */
  libvirtUri: string;
  /** OST_ACCEL=kvm|tcg forces the accelerator; unset (or anything else): detected. */
  accel?: Accel;
  /** OST_STATE_DIR: env dirs and leases (default /run/ost, or $XDG_RUNTIME_DIR/ost when not root). */
  stateDir?: string;
  /** XDG_RUNTIME_DIR. */
  runtimeDir?: string;
  /** OST_LAYER_CACHE: the custom layer cache (--layer-cache overrides it). */
  layerCache?: string;
  /** XDG_CACHE_HOME. */
  cacheHome?: string;
  /** OST_CHECKPOINT_DIR: the checkpoint store (--checkpoint-dir overrides it). */
  checkpointDir?: string;
  /** XDG_DATA_HOME. */
  dataHome?: string;
  /** HOME. */
  home?: string;
  sudo: SudoSettings;
  /** OST_DEPLOYMENT: an OST suite's deployment dir, as OST's lagofy.sh sets it. */
  deployment?: string;
  /** OST_OVERLAY_DIR, OST_OVERLAY_FALLBACK: where ost up puts the VMs' overlays (--overlay-dir/-fallback). */
  overlayDir?: string;
  overlayFallback?: string;
  /** OST_TEMPLATES_DIR: your own domain templates (--templates). */
  templatesDir?: string;
  /** OST_IMAGES_DIR: take <distro>-<layer>.qcow2 from here (--images-dir). */
  imagesDir?: string;
  /**
   * OST's image variables, OST_IMAGES_*: the one an ost.json VM's root_disk_var names (a path, when set) and
   * OST_IMAGES_DISTRO. Unset and empty ones are left out.
   */
  imageVars: Readonly<Record<string, string>>;
  /**
   * The variables an image-set file may name in its install media paths (`${OST_EL9STREAM_ISO:-…}`): the
   * file picks the names, so this is every variable, as it was at start.
   */
  fileVars: Readonly<Record<string, string>>;
  fault: FaultSettings;
}

/** A variable's value; empty counts as unset. */
function value(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** A whole number (sudo's ids); anything else counts as unset. */
function wholeNumber(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = value(env, name);
  return v !== undefined && /^[0-9]+$/.test(v) ? Number(v) : undefined;
}

function accelOf(env: NodeJS.ProcessEnv): Accel | undefined {
  const v = value(env, 'OST_ACCEL');
  return v === 'kvm' || v === 'tcg' ? v : undefined;
}

/** The variables of `env` whose names pass `keep` and whose values are set (a copy: later changes are not seen). */
function vars(env: NodeJS.ProcessEnv, keep: (name: string, v: string) => boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(env)) if (v !== undefined && keep(name, v)) out[name] = v;
  return out;
}

/** Read every variable ost uses, once. */
export function readConfig(env: NodeJS.ProcessEnv): OstConfig {
  return {
    libvirtUri: value(env, 'LIBVIRT_DEFAULT_URI') ?? 'qemu:///system',
    accel: accelOf(env),
    stateDir: value(env, 'OST_STATE_DIR'),
    runtimeDir: value(env, 'XDG_RUNTIME_DIR'),
    layerCache: value(env, 'OST_LAYER_CACHE'),
    cacheHome: value(env, 'XDG_CACHE_HOME'),
    checkpointDir: value(env, 'OST_CHECKPOINT_DIR'),
    dataHome: value(env, 'XDG_DATA_HOME'),
    home: value(env, 'HOME'),
    sudo: {
      uid: wholeNumber(env, 'SUDO_UID'),
      gid: wholeNumber(env, 'SUDO_GID'),
      user: value(env, 'SUDO_USER'),
    },
    deployment: value(env, 'OST_DEPLOYMENT'),
    overlayDir: value(env, 'OST_OVERLAY_DIR'),
    overlayFallback: value(env, 'OST_OVERLAY_FALLBACK'),
    templatesDir: value(env, 'OST_TEMPLATES_DIR'),
    imagesDir: value(env, 'OST_IMAGES_DIR'),
    imageVars: vars(env, (name, v) => name.startsWith('OST_IMAGES_') && v !== ''),
    fileVars: vars(env, () => true),
    fault: {
      pause: value(env, 'OST_FAULT_PAUSE'),
      mark: value(env, 'OST_FAULT_MARK'),
      resume: value(env, 'OST_FAULT_RESUME'),
    },
  };
}
