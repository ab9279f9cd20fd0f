// virt-install adapter: an unattended install into a pre-created qcow2, serial console logged to a file.

export interface VirtInstallSpec {
  connect: string;
  name: string;
  accel: 'kvm' | 'tcg';
  memoryMiB: number;
  vcpus: number;
  osVariant: string;
  disk: string;
  consoleLog: string;
  network: 'user' | 'none';
  waitMinutes: number;
  kernelArgs: string;
  /** Install from an ISO, tree or URL with the answer file injected into its initrd ... */
  location?: { source: string; inject: string };
  /** ... or boot a kernel and an initrd that already holds the answer file. */
  kernel?: { kernel: string; initrd: string };
}

/** argv for virt-install. The domain is transient, never reboots and is destroyed if we go away. */
export function virtInstallArgv(s: VirtInstallSpec): string[] {
  const argv = [
    'virt-install',
    '--connect',
    s.connect,
    '--name',
    s.name,
    '--virt-type',
    s.accel === 'kvm' ? 'kvm' : 'qemu',
    '--memory',
    String(s.memoryMiB),
    '--vcpus',
    String(s.vcpus),
    '--os-variant',
    s.osVariant,
    '--disk',
    `path=${s.disk},format=qcow2,bus=virtio,cache=unsafe`,
  ];
  if (s.location) {
    argv.push(
      '--location',
      s.location.source,
      '--initrd-inject',
      s.location.inject,
      '--extra-args',
      s.kernelArgs,
    );
  } else if (s.kernel) {
    // virt-install splits --install on commas: kernel args must not contain any
    argv.push(
      '--install',
      `kernel=${s.kernel.kernel},initrd=${s.kernel.initrd},kernel_args=${s.kernelArgs},kernel_args_overwrite=yes`,
    );
  }
  argv.push(
    '--network',
    s.network,
    '--graphics',
    'none',
    '--serial',
    `file,path=${s.consoleLog}`,
    '--noautoconsole',
    '--wait',
    String(s.waitMinutes),
    '--noreboot',
    '--transient',
    '--destroy-on-exit',
  );
  return argv;
}
