// ssh-keygen adapter.

/** argv: a new RSA key pair without passphrase (disposable test VMs). */
export function generateArgv(file: string, comment: string): string[] {
  return ['ssh-keygen', '-q', '-t', 'rsa', '-b', '4096', '-N', '', '-C', comment, '-f', file];
}

/** argv: a new ed25519 key pair without passphrase (`file` and `file.pub`): one per `ost up` env. */
export function generateEd25519Argv(file: string, comment: string): string[] {
  return ['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file];
}

/** argv: print the public half of a private key (`ssh-keygen -y`). */
export function publicKeyArgv(privateKey: string): string[] {
  return ['ssh-keygen', '-y', '-f', privateKey];
}
