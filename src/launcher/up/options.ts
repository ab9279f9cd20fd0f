// What `ost up` is given: the suite, the choices of the request, where things go, and the wiring (libvirt
// URI, templates, reporter). The CLI fills it from flags and config; --checkpoint-cache hands it on.
import type { Accel } from '../../core/accel.js';
import type { Reporter } from '../../core/events.js';
import type { StoredCheckpoint } from '../checkpoint/store.js';
import type { Environment } from '../env/model.js';
import type { AppliedCustomLayer } from '../env-dir/record.js';
import type { ResolvedImage } from '../images/resolve.js';
import type { Templates } from '../libvirt/templates.js';
import type { IpMode } from '../net/layout.js';
import type { DeployedRequest } from './deployed-start.js';

export interface UpOptions {
  env: Environment;
  /** Env id: 8 hex digits (default: random, as lagofy's uuidgen | cut -c -8). */
  id?: string;
  /** OST suites: the deployment dir (default `<OST checkout>/deployment`; the CLI passes $OST_DEPLOYMENT). */
  deployment?: string;
  /** Address families: both (default), or IPv4 / IPv6 only (ost.sh run -4 / -6). */
  ipMode?: IpMode;
  /** OST suites: run their deploy scripts too (OST's pytest runs them otherwise). ost-env suites always do. */
  deploy?: boolean;
  /** Hand the deployment dir to this user (sudo's SUDO_UID/SUDO_GID), as ost.sh's would be theirs. */
  owner?: { uid: number; gid: number };
  /** OST suites with IPv6 only: the user the SOCKS helper sshd lets in (who runs OST's pytest). */
  proxyUser?: string;
  uri: string;
  stateRoot: string;
  /** The accelerator when forced (the CLI passes OST_ACCEL); detected when unset. */
  accel?: Accel;
  overlays: { root: string; fallback: string; reservePerVmBytes: number };
  templates: Templates;
  images: { root?: string; imagesDir?: string; key?: string };
  /** Per-VM deadline for SSH-ready. */
  timeoutMs: number;
  /**
   * Wait for every VM to answer SSH (default). `false` returns once the domains run, as lagofy's ost_init
   * does (OST's harness waits for SSH itself); no deploy script can run then.
   */
  wait?: boolean;
  /** On failure, leave what was created (for debugging) instead of undoing it. */
  keepOnFailure?: boolean;
  /** ost up --custom-repo: start the VMs from custom layers on their images (made by the caller's hook). */
  custom?: CustomLayersHook;
  /** ost up --deployed: start the VMs from the suite's deployed images (up/deployed-start.ts). */
  deployed?: DeployedRequest;
  /** ost up --from: restore the VMs from this checkpoint instead of booting them. */
  from?: StoredCheckpoint;
  /**
   * With `from`: a new env of its own beside the one the checkpoint was taken of — new id and names, the
   * same subnets and addresses inside a network namespace of its own (net/isolated.ts).
   */
  isolated?: boolean;
  /**
   * The images as already resolved for this up, by imageKey, and how long that took (`--checkpoint-cache`:
   * the ones its key names); resolved here otherwise.
   */
  resolved?: { images: Map<string, ResolvedImage>; ms: number };
  reporter: Reporter;
  signal?: AbortSignal;
}

/**
 * Custom layers come from the image builder; the CLI passes them in through this hook, so the launcher
 * never imports the builder. `prepare` returns each image's layer, or undefined when it runs as it is.
 */
export interface CustomLayersHook {
  repos: string[];
  install: string[];
  prepare(images: ResolvedImage[]): Promise<Map<string, AppliedCustomLayer | undefined>>;
}
