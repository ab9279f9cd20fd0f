// systemd credentials a guest reads at boot from SMBIOS type 11 OEM strings: how ost hands a guest root's
// authorized SSH key without changing its image (libvirt <sysinfo><oemStrings>, qemu -smbios type=11).
// systemd >= 252 imports `io.systemd.credential:NAME=VALUE` strings into PID 1's system credentials.
import { OstError } from '../core/errors.js';
import { oneLine } from '../core/lines.js';

/** Where PID 1 puts the system credentials it imported (root's, 0400, in RAM). */
export const SYSTEM_CREDENTIALS_DIR = '/run/credentials/@system';

/** The credential that carries root's authorized SSH key(s) (the name systemd's own provisioning reads). */
export const SSH_KEY_CREDENTIAL = 'ssh.authorized_keys.root';

/** A credential as an SMBIOS type 11 OEM string: `io.systemd.credential:NAME=VALUE`. */
export function oemCredential(name: string, value: string): string {
  if (/[\r\n=]/.test(name))
    throw new OstError(
      `credential ${JSON.stringify(name)}: an SMBIOS credential's name is one line, with no "="`,
    );
  return `io.systemd.credential:${name}=${oneLine(value, { file: 'the SMBIOS OEM strings', field: `credential ${name}` })}`;
}

/** Root's authorized key as an OEM string: the public key's single line (ssh-keygen's, comment and all). */
export function sshKeyOemString(publicKey: string): string {
  return oemCredential(SSH_KEY_CREDENTIAL, publicKey.trim());
}
