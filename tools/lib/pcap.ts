// Classic libpcap file format (https://www.tcpdump.org/manpages/pcap-savefile.5.html), Ethernet
// only. Fixtures, captures and benchmark inputs are all Ethernet, so any other link type is refused
// rather than silently misparsed. pcapng is refused with the command that converts it: a second
// reader for a block format is not worth carrying when editcap already exists.
// Timestamps are held as microseconds in a double: exact up to 2^53 µs (year 2255), and
// nanosecond files are truncated to microseconds.

export interface PcapPacket {
  /** Capture time in microseconds since the Unix epoch. */
  tsUs: number;
  /** The captured bytes, starting at the Ethernet destination address. */
  data: Uint8Array;
}

const MAGIC_MICROS = 0xa1b2c3d4;
const MAGIC_NANOS = 0xa1b23c4d;
const MAGIC_PCAPNG = 0x0a0d0d0a;
const FILE_HEADER_BYTES = 24;
const RECORD_HEADER_BYTES = 16;
const LINKTYPE_ETHERNET = 1;
const WRITE_SNAPLEN = 65535;
const VERSION_MAJOR = 2;
const VERSION_MINOR = 4;

/** Parses a whole pcap file. Throws an Error that says what is wrong and where. */
export function readPcap(buf: Uint8Array): PcapPacket[] {
  if (buf.length < 4) throw new Error(`not a pcap file: ${buf.length} bytes, too short for a magic number`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(0, true);
  if (magic === MAGIC_PCAPNG) {
    throw new Error("pcapng is not supported; convert it with `editcap -F pcap IN OUT`");
  }

  let littleEndian: boolean;
  if (magic === MAGIC_MICROS || magic === MAGIC_NANOS) littleEndian = true;
  else if (view.getUint32(0, false) === MAGIC_MICROS || view.getUint32(0, false) === MAGIC_NANOS) littleEndian = false;
  else throw new Error(`not a pcap file: unknown magic number 0x${hex32(view.getUint32(0, false))}`);
  const nanos = view.getUint32(0, littleEndian) === MAGIC_NANOS;

  if (buf.length < FILE_HEADER_BYTES) {
    throw new Error(`pcap file header is truncated: ${FILE_HEADER_BYTES} bytes needed, ${buf.length} present`);
  }
  // The upper bits of the link-type field carry FCS information; the link type is the low 16 bits.
  const linkType = view.getUint32(20, littleEndian) & 0xffff;
  if (linkType !== LINKTYPE_ETHERNET) {
    throw new Error(`unsupported pcap link type ${linkType}: only Ethernet (link type 1) is supported`);
  }

  const packets: PcapPacket[] = [];
  let offset = FILE_HEADER_BYTES;
  for (let record = 1; offset < buf.length; record++) {
    if (buf.length - offset < RECORD_HEADER_BYTES) {
      throw new Error(
        `pcap record ${record} at byte offset ${offset} is truncated: its ${RECORD_HEADER_BYTES}-byte header ` +
          `has only ${buf.length - offset} bytes`,
      );
    }
    const seconds = view.getUint32(offset, littleEndian);
    const fraction = view.getUint32(offset + 4, littleEndian);
    const capturedLength = view.getUint32(offset + 8, littleEndian);
    const dataStart = offset + RECORD_HEADER_BYTES;
    if (capturedLength > buf.length - dataStart) {
      throw new Error(
        `pcap record ${record} at byte offset ${offset} is truncated: it declares ${capturedLength} bytes ` +
          `of data, the file has ${buf.length - dataStart} left`,
      );
    }
    const micros = nanos ? Math.floor(fraction / 1000) : fraction;
    // A plain copy: a Buffer's slice() would be a view, changing with (and pinning) the input.
    const data = new Uint8Array(buf.subarray(dataStart, dataStart + capturedLength));
    packets.push({ tsUs: seconds * 1_000_000 + micros, data });
    offset = dataStart + capturedLength;
  }
  return packets;
}

/** Writes a microsecond, little-endian pcap file of Ethernet frames. */
export function writePcap(packets: PcapPacket[]): Uint8Array {
  let size = FILE_HEADER_BYTES;
  for (const [i, p] of packets.entries()) {
    if (p.data.length > WRITE_SNAPLEN) {
      throw new Error(`packet ${i + 1} is ${p.data.length} bytes, more than the snap length ${WRITE_SNAPLEN}`);
    }
    if (!Number.isSafeInteger(p.tsUs) || p.tsUs < 0 || p.tsUs / 1_000_000 >= 2 ** 32) {
      throw new Error(`packet ${i + 1} has timestamp ${p.tsUs}: a pcap needs whole microseconds from 1970 to 2106`);
    }
    size += RECORD_HEADER_BYTES + p.data.length;
  }

  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC_MICROS, true);
  view.setUint16(4, VERSION_MAJOR, true);
  view.setUint16(6, VERSION_MINOR, true);
  view.setInt32(8, 0, true); // thiszone: timestamps are UTC
  view.setUint32(12, 0, true); // sigfigs: always 0 in practice
  view.setUint32(16, WRITE_SNAPLEN, true);
  view.setUint32(20, LINKTYPE_ETHERNET, true);

  let offset = FILE_HEADER_BYTES;
  for (const p of packets) {
    const seconds = Math.floor(p.tsUs / 1_000_000);
    view.setUint32(offset, seconds, true);
    view.setUint32(offset + 4, p.tsUs - seconds * 1_000_000, true);
    view.setUint32(offset + 8, p.data.length, true);
    view.setUint32(offset + 12, p.data.length, true);
    out.set(p.data, offset + RECORD_HEADER_BYTES);
    offset += RECORD_HEADER_BYTES + p.data.length;
  }
  return out;
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, "0");
}
