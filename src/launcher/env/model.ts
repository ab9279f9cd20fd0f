// The normalised environment the launcher works from, whichever file it came from (ost-env.yaml or ost.json).

export type Ipv4 = { kind: 'auto' } | { kind: 'none' } | { kind: 'fixed'; cidr: string };

export interface EnvNetwork {
  name: string;
  management: boolean;
  ipv4: Ipv4;
  ipv6: boolean;
  forward: 'nat' | 'isolated';
}

/** `<distro>-<layer>` from the installed ost-images RPMs, or an explicit qcow2 path. */
export type ImageRef = { kind: 'package'; distro: string; layer: string } | { kind: 'path'; path: string };

export interface EnvDisk {
  name: string;
  sizeBytes: number;
  size: string;
  format: 'raw' | 'qcow2';
}

export interface EnvVm {
  name: string;
  image: ImageRef;
  memoryMiB: number;
  vcpus: number;
  /** Network of each NIC, in order. */
  nics: { name: string; network: string }[];
  disks: EnvDisk[];
  deployScripts: string[];
  squashed: boolean;
}

export interface Environment {
  suite: string;
  /** The file it was read from. */
  file: string;
  networks: EnvNetwork[];
  vms: EnvVm[];
}
