// The domain XML a VM is restored with: the XML its memory was saved with (device addresses, CPU and
// machine must not change, or libvirt refuses the restore), with what belongs to the env it now runs in
// swapped: disks on their fresh overlays, the console log and the metadata (the network names are the
// same: the env keeps its id). Run-time details libvirt filled in (tap names, port ids, aliases it re-makes) are dropped.
import { InternalError, OstError } from '../../core/errors.js';
import { harnessElement, metadataElement, OST_PREFIX, type OstMetadata } from '../libvirt/render.js';
import { asList, attr, buildXml, child, parseXml, type XmlNode } from '../libvirt/xml.js';

export interface RestoreEdits {
  /** Guest device → the file the disk now opens, and its format. Every disk must be named. */
  disks: ReadonlyMap<string, { path: string; format: 'qcow2' | 'raw' }>;
  consoleLog?: string;
  /** ost's metadata (and OST's working dir) of the env the VM now belongs to. */
  meta?: { ost: OstMetadata; deployScripts: readonly string[] };
  /**
   * A copy of the VM beside the one the checkpoint was taken of (ost up --from --isolated): its own domain
   * name and UUID, its NICs on the copy's networks (old network name → new). Written into a copy of the
   * save image itself, since libvirt keeps the name and UUID a save image carries.
   */
  rename?: { name: string; uuid: string; networks: ReadonlyMap<string, string> };
}

function elements(node: XmlNode | undefined, key: string): XmlNode[] {
  return asList(node?.[key]).filter((v): v is XmlNode => typeof v === 'object' && !Array.isArray(v));
}

const DAMAGED = 'the checkpoint is damaged: remove it (ost rm-checkpoint <name>) and take it again';

/** Rewrite a saved domain XML (`virsh save-image-dumpxml`) for `virsh restore --xml`. */
export function domainXmlForRestore(saved: string, e: RestoreEdits): string {
  const parsed = parseXml(saved);
  if ('error' in parsed) throw new OstError(`saved domain XML does not parse: ${parsed.error}`, DAMAGED);
  const d = child(parsed.doc, 'domain');
  if (!d) throw new OstError('saved domain XML has no <domain>', DAMAGED);
  delete d['@_id'];
  if (e.rename) {
    d.name = e.rename.name;
    d.uuid = e.rename.uuid;
  }
  const devices = child(d, 'devices');
  if (!devices) throw new OstError('saved domain XML has no <devices>', DAMAGED);
  for (const disk of elements(devices, 'disk')) {
    if (attr(disk, 'device') !== 'disk') continue;
    const dev = attr(child(disk, 'target'), 'dev') ?? '';
    const to = e.disks.get(dev);
    if (!to) throw new InternalError(`no new file given for disk ${dev}`);
    disk['@_type'] = 'file';
    disk.source = { '@_file': to.path };
    // the new top's chain is read from the files themselves
    delete disk.backingStore;
    const driver = child(disk, 'driver');
    if (driver) driver['@_type'] = to.format;
    else disk.driver = { '@_name': 'qemu', '@_type': to.format };
  }
  for (const nic of elements(devices, 'interface')) {
    const source = child(nic, 'source');
    const net = attr(source, 'network');
    // the bridge and port libvirt chose when the network was made last are not the new one's
    if (source && net) nic.source = { '@_network': e.rename?.networks.get(net) ?? net };
    if (e.rename && net && !e.rename.networks.has(net))
      throw new InternalError(`no new network given for ${net}`);
    delete nic.target;
  }
  if (e.rename)
    for (const ch of elements(devices, 'channel')) {
      // the guest agent's socket path carries the domain's old name: libvirt makes one for the new name
      const source = child(ch, 'source');
      if (attr(ch, 'type') === 'unix' && source) delete source['@_path'];
    }
  if (e.consoleLog) {
    for (const key of ['serial', 'console'] as const)
      for (const s of elements(devices, key)) {
        const log = child(s, 'log');
        if (log) log['@_file'] = e.consoleLog;
        // a pty's path is the old process's
        const source = child(s, 'source');
        if (attr(s, 'type') === 'pty' && source) delete source['@_path'];
      }
  }
  if (e.meta) {
    const m = child(d, 'metadata') ?? {};
    d.metadata = m;
    m['ost:ost'] = harnessElement(e.meta.ost.deployment ?? e.meta.ost.workdir, {
      deployScripts: e.meta.deployScripts,
    });
    m[`${OST_PREFIX}:env`] = metadataElement(e.meta.ost);
  }
  return buildXml({ domain: d });
}
