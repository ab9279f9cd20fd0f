// libvirt's save image (`virsh save`, and the memory file of an external snapshot): a 92-byte header —
// magic "LibvirtQemudSave", then uint32 version, data_len, was_running, format, cookieOffset and 14 unused
// words, in the writer's byte order — then data_len bytes holding the domain XML (NUL-terminated), the save
// cookie at cookieOffset, and zeros (libvirt leaves 64 KiB of room so the XML can be edited), then qemu's
// migration stream. libvirt restores a VM only under the name and UUID its save image carries, so a second
// env from one checkpoint restores from a copy whose XML names its own domain.
import * as fs from 'node:fs/promises';
import { OstError } from '../../core/errors.js';

const MAGIC = 'LibvirtQemudSave';
const PARTIAL = 'LibvirtQemudPart';
export const HEADER_BYTES = 16 + 4 * 19;

export interface SaveImageHeader {
  version: number;
  dataLen: number;
  wasRunning: number;
  format: number;
  cookieOffset: number;
  littleEndian: boolean;
}

export interface SaveImageData {
  header: SaveImageHeader;
  xml: string;
  /** The save cookie (libvirt's XML of CPU and other details), empty when there is none. */
  cookie: Buffer;
}

/** Parse the header of a save image (its first HEADER_BYTES bytes). */
export function parseSaveHeader(buf: Buffer, file: string): SaveImageHeader {
  if (buf.length < HEADER_BYTES) throw new OstError(`${file}: not a libvirt save image (too short)`);
  const magic = buf.subarray(0, 16).toString('latin1');
  if (magic === PARTIAL)
    throw new OstError(
      `${file}: the save image is incomplete (its writer was stopped)`,
      'take the checkpoint again',
    );
  if (magic !== MAGIC)
    throw new OstError(`${file}: not a libvirt save image (magic ${JSON.stringify(magic)})`);
  // the version is 2: read in the order that gives a small number
  const littleEndian = buf.readUInt32LE(16) <= 0xffff;
  const u32 = (i: number) => (littleEndian ? buf.readUInt32LE(16 + 4 * i) : buf.readUInt32BE(16 + 4 * i));
  const header = {
    version: u32(0),
    dataLen: u32(1),
    wasRunning: u32(2),
    format: u32(3),
    cookieOffset: u32(4),
    littleEndian,
  };
  if (header.version !== 2 || header.dataLen === 0 || header.cookieOffset > header.dataLen)
    throw new OstError(
      `${file}: a libvirt save image this ost does not read (version ${header.version}, data ${header.dataLen} bytes)`,
    );
  return header;
}

/** The header, domain XML and cookie of a save image. */
export async function readSaveImage(file: string): Promise<SaveImageData> {
  const fh = await fs.open(file, 'r');
  try {
    const head = Buffer.alloc(HEADER_BYTES);
    await fh.read(head, 0, HEADER_BYTES, 0);
    const header = parseSaveHeader(head, file);
    const data = Buffer.alloc(header.dataLen);
    const { bytesRead } = await fh.read(data, 0, header.dataLen, HEADER_BYTES);
    if (bytesRead !== header.dataLen) throw new OstError(`${file}: the save image is truncated`);
    const xmlEnd = header.cookieOffset || header.dataLen;
    const nul = data.indexOf(0);
    const xml = data.subarray(0, nul >= 0 && nul < xmlEnd ? nul : xmlEnd).toString('utf8');
    const cookieRaw = header.cookieOffset ? data.subarray(header.cookieOffset) : Buffer.alloc(0);
    const cookieNul = cookieRaw.indexOf(0);
    const cookie = cookieNul >= 0 ? cookieRaw.subarray(0, cookieNul) : cookieRaw;
    return { header, xml, cookie: Buffer.from(cookie) };
  } finally {
    await fh.close();
  }
}

/** The data area of a save image holding `xml` and `cookie`, padded with zeros to `dataLen`. */
export function saveData(xml: string, cookie: Buffer, dataLen: number, file: string): Buffer {
  const x = Buffer.from(`${xml}\0`, 'utf8');
  const c = cookie.length > 0 ? Buffer.concat([cookie, Buffer.from([0])]) : Buffer.alloc(0);
  if (x.length + c.length > dataLen)
    throw new OstError(
      `${file}: the new domain XML (${x.length} bytes) does not fit in the save image's ${dataLen - c.length} bytes`,
    );
  const out = Buffer.alloc(dataLen);
  x.copy(out, 0);
  c.copy(out, x.length);
  return out;
}

/** Write the header fields back (cookieOffset changes when the XML's length does). */
function headerBytes(src: Buffer, h: SaveImageHeader, cookieOffset: number): Buffer {
  const out = Buffer.from(src.subarray(0, HEADER_BYTES));
  const at = 16 + 4 * 4;
  if (h.littleEndian) out.writeUInt32LE(cookieOffset, at);
  else out.writeUInt32BE(cookieOffset, at);
  return out;
}

/**
 * Copy the save image `src` to `dst` with `xml` as its domain XML (the migration stream as it is; a
 * reflink where the file system can). `dst` is created new (never through an existing file) and 0600.
 */
export async function copySaveImage(src: string, dst: string, xml: string): Promise<void> {
  const img = await readSaveImage(src);
  const data = saveData(xml, img.cookie, img.header.dataLen, src);
  const cookieOffset = img.cookie.length > 0 ? Buffer.byteLength(xml, 'utf8') + 1 : 0;
  await fs.copyFile(src, dst, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE);
  const fh = await fs.open(dst, 'r+');
  try {
    await fh.chmod(0o600);
    const head = Buffer.alloc(HEADER_BYTES);
    await fh.read(head, 0, HEADER_BYTES, 0);
    await fh.write(headerBytes(head, img.header, cookieOffset), 0, HEADER_BYTES, 0);
    await fh.write(data, 0, data.length, HEADER_BYTES);
  } finally {
    await fh.close();
  }
}
