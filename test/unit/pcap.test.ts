import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

import { readPcap, writePcap, type PcapPacket } from "../../tools/lib/pcap.js";
import { requireTool, tsharkFields } from "../lib/tshark.js";

const run = promisify(execFile);

// 2024-01-01T00:00:00.000001Z and neighbours: large enough to need all 32 bits of seconds' worth.
const T0 = Date.UTC(2024, 0, 1) * 1000 + 1;

const PACKETS: PcapPacket[] = [
  { tsUs: T0, data: Uint8Array.from({ length: 60 }, (_, i) => i) },
  { tsUs: T0 + 999_999, data: new Uint8Array(0) },
  { tsUs: T0 + 1_000_000, data: new Uint8Array(1514).fill(0xab) },
  { tsUs: 0, data: Uint8Array.of(1) },
  { tsUs: 4_294_967_295_999_999, data: new Uint8Array(65535).fill(7) }, // the last microsecond of 2106
];

/** Rewrites a little-endian file written by writePcap as big-endian, and optionally in nanoseconds. */
function toBigEndian(le: Uint8Array, nanos: boolean): Uint8Array {
  const out = le.slice();
  const src = new DataView(le.buffer, le.byteOffset, le.byteLength);
  const dst = new DataView(out.buffer);
  dst.setUint32(0, nanos ? 0xa1b23c4d : 0xa1b2c3d4, false);
  dst.setUint16(4, src.getUint16(4, true), false);
  dst.setUint16(6, src.getUint16(6, true), false);
  for (const off of [8, 12, 16, 20]) dst.setUint32(off, src.getUint32(off, true), false);
  for (let off = 24; off < le.length; ) {
    const fraction = src.getUint32(off + 4, true);
    dst.setUint32(off, src.getUint32(off, true), false);
    dst.setUint32(off + 4, nanos ? fraction * 1000 + 999 : fraction, false);
    dst.setUint32(off + 8, src.getUint32(off + 8, true), false);
    dst.setUint32(off + 12, src.getUint32(off + 12, true), false);
    off += 16 + src.getUint32(off + 8, true);
  }
  return out;
}

describe("pcap: round trip", () => {
  it("reads back exactly the packets it wrote", () => {
    assert.deepEqual(readPcap(writePcap(PACKETS)), PACKETS);
  });

  it("writes a microsecond, little-endian, Ethernet file with snaplen 65535", () => {
    const file = writePcap([]);
    assert.equal(Buffer.from(file).toString("hex"), "d4c3b2a1" + "0200" + "0400" + "00000000" + "00000000" + "ffff0000" + "01000000");
    assert.deepEqual(readPcap(file), []);
  });

  it("reads big-endian files, microsecond and nanosecond (truncating to microseconds)", () => {
    const le = writePcap(PACKETS);
    assert.deepEqual(readPcap(toBigEndian(le, false)), PACKETS);
    assert.deepEqual(readPcap(toBigEndian(le, true)), PACKETS);
  });

  it("reads a nanosecond little-endian file", () => {
    const file = writePcap(PACKETS.slice(0, 1));
    const view = new DataView(file.buffer);
    view.setUint32(0, 0xa1b23c4d, true);
    view.setUint32(28, view.getUint32(28, true) * 1000 + 500, true);
    assert.deepEqual(readPcap(file), PACKETS.slice(0, 1));
  });

  it("reads a file that sits in the middle of a larger buffer", () => {
    const file = writePcap(PACKETS.slice(0, 2));
    const big = new Uint8Array(file.length + 7);
    big.set(file, 3);
    assert.deepEqual(readPcap(big.subarray(3, 3 + file.length)), PACKETS.slice(0, 2));
  });

  it("returns copies, not views that change with the input buffer", () => {
    const file = writePcap(PACKETS.slice(0, 1));
    const [packet] = readPcap(file);
    file.fill(0);
    assert.deepEqual(packet, PACKETS[0]);
  });
});

describe("pcap: refused input", () => {
  it("refuses a file with an unknown magic number, naming it", () => {
    assert.throws(() => readPcap(Uint8Array.of(0xde, 0xad, 0xbe, 0xef, ...new Uint8Array(20))), {
      message: "not a pcap file: unknown magic number 0xdeadbeef",
    });
    assert.throws(() => readPcap(Uint8Array.of(0xd4, 0xc3)), /not a pcap file: 2 bytes/);
  });

  it("refuses pcapng with the command that converts it", () => {
    const pcapngStart = Uint8Array.of(0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a);
    assert.throws(() => readPcap(pcapngStart), {
      message: "pcapng is not supported; convert it with `editcap -F pcap IN OUT`",
    });
  });

  it("refuses a link type other than Ethernet, naming it", () => {
    const file = writePcap([]);
    new DataView(file.buffer).setUint32(20, 101, true); // LINKTYPE_RAW
    assert.throws(() => readPcap(file), { message: "unsupported pcap link type 101: only Ethernet (link type 1) is supported" });
  });

  it("refuses a truncated file header", () => {
    assert.throws(() => readPcap(writePcap([]).subarray(0, 20)), /file header is truncated: 24 bytes needed, 20 present/);
  });

  it("names the record and byte offset of a record cut inside its data", () => {
    const file = writePcap(PACKETS.slice(0, 3));
    // Record 3 starts after the file header and records 1 (16 + 60) and 2 (16 + 0).
    const record3 = 24 + 16 + 60 + 16;
    assert.throws(() => readPcap(file.subarray(0, file.length - 1)), {
      message: `pcap record 3 at byte offset ${record3} is truncated: it declares 1514 bytes of data, the file has 1513 left`,
    });
  });

  it("names the record and byte offset of a record cut inside its header", () => {
    const file = writePcap(PACKETS.slice(0, 2));
    assert.throws(() => readPcap(file.subarray(0, 24 + 16 + 60 + 5)), {
      message: "pcap record 2 at byte offset 100 is truncated: its 16-byte header has only 5 bytes",
    });
  });

  it("does not read past the end when a record claims 4 GiB", () => {
    const file = writePcap(PACKETS.slice(0, 1));
    new DataView(file.buffer).setUint32(24 + 8, 0xffffffff, true);
    assert.throws(() => readPcap(file), /record 1 at byte offset 24 is truncated: it declares 4294967295 bytes/);
  });

  it("refuses to write what a pcap cannot hold", () => {
    assert.throws(() => writePcap([{ tsUs: 0, data: new Uint8Array(65536) }]), /packet 1 is 65536 bytes/);
    assert.throws(() => writePcap([{ tsUs: -1, data: new Uint8Array(1) }]), /packet 1 has timestamp -1/);
    assert.throws(() => writePcap([{ tsUs: 1.5, data: new Uint8Array(1) }]), /packet 1 has timestamp 1\.5/);
    assert.throws(() => writePcap([{ tsUs: 2 ** 32 * 1e6, data: new Uint8Array(1) }]), /from 1970 to 2106/);
  });
});

describe("pcap: other tools agree", () => {
  let dir = "";

  before(async () => {
    requireTool("editcap", "wireshark-common");
    dir = await mkdtemp(join(tmpdir(), "flowswitch-pcap-"));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("tshark reads our files with the same timestamps and lengths", async () => {
    const path = join(dir, "ours.pcap");
    await writeFile(path, writePcap(PACKETS.slice(0, 3)));
    const rows = await tsharkFields(path, ["frame.time_epoch", "frame.len"]);
    assert.deepEqual(rows, [
      ["1704067200.000001000", "60"],
      ["1704067201.000000000", "0"],
      ["1704067201.000001000", "1514"],
    ]);
  });

  it("reads a nanosecond pcap written by editcap", async () => {
    const ours = join(dir, "micro.pcap");
    const theirs = join(dir, "nano.pcap");
    await writeFile(ours, writePcap(PACKETS.slice(0, 3)));
    await run("editcap", ["-F", "nsecpcap", ours, theirs]);
    // A Buffer, as callers usually pass: packets must still come back as plain Uint8Arrays.
    assert.deepEqual(readPcap(await readFile(theirs)), PACKETS.slice(0, 3));
  });

  it("refuses a pcapng written by editcap", async () => {
    const ours = join(dir, "plain.pcap");
    const theirs = join(dir, "next.pcapng");
    await writeFile(ours, writePcap(PACKETS.slice(0, 1)));
    await run("editcap", ["-F", "pcapng", ours, theirs]);
    const file = await readFile(theirs);
    assert.throws(() => readPcap(file), /pcapng is not supported/);
  });
});
