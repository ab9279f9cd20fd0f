// qemu-system-x86_64 adapter: a throwaway VM on a disk, user-mode networking, SSH forwarded to 127.0.0.1.

export interface QemuVmSpec {
  disk: string;
  accel: 'kvm' | 'tcg';
  memoryMiB: number;
  vcpus: number;
  sshPort: number;
  consoleLog: string;
  /** SMBIOS type 11 OEM strings (systemd credentials: `io.systemd.credential:NAME=VALUE`). */
  oemStrings?: readonly string[];
}

export function qemuVmArgv(s: QemuVmSpec): string[] {
  return [
    'qemu-system-x86_64',
    '-accel',
    s.accel,
    '-m',
    String(s.memoryMiB),
    '-smp',
    String(s.vcpus),
    '-nodefaults',
    '-display',
    'none',
    '-drive',
    `file=${s.disk},if=virtio,format=qcow2,cache=unsafe`,
    '-netdev',
    `user,id=n0,hostfwd=tcp:127.0.0.1:${s.sshPort}-:22`,
    '-device',
    'virtio-net-pci,netdev=n0',
    '-serial',
    `file:${s.consoleLog}`,
    // qemu's option syntax: a comma in a value is written twice
    ...(s.oemStrings ?? []).flatMap((v) => ['-smbios', `type=11,value=${v.replaceAll(',', ',,')}`]),
  ];
}
