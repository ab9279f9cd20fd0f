// KVM or TCG: a /dev/kvm node is not enough (containers may expose one that cannot run guests).
import { accessSync, constants, readFileSync } from 'node:fs';

export type Accel = 'kvm' | 'tcg';

/**
 * `forced` (the CLI passes `OST_ACCEL=kvm|tcg`) is the choice; otherwise KVM needs a read-write /dev/kvm
 * and a CPU that advertises vmx or svm (seen here: /dev/kvm present, no vmx, and qemu aborting on MSR writes).
 */
export function detectAccel(forced?: Accel): Accel {
  if (forced) return forced;
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    return /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo) ? 'kvm' : 'tcg';
  } catch {
    return 'tcg';
  }
}

/** Environment for libguestfs tools: direct backend, and forced TCG when KVM is unusable. */
export function guestfsEnv(accel: Accel): Record<string, string> {
  return accel === 'tcg'
    ? { LIBGUESTFS_BACKEND: 'direct', LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' }
    : { LIBGUESTFS_BACKEND: 'direct' };
}
