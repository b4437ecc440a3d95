// The XMODEM / XMODEM-1K / YMODEM receiver against a sender written here from the protocol
// descriptions (Christensen's XMODEM, Forsberg's YMODEM), with a line that can damage blocks, lose
// ACKs, go silent or close. Timings are shortened; each test names the behaviour it proves.
import { describe, it } from "node:test";
import assert from "node:assert/strict";

import { XMODEM, crc16, checksum8, receiveFile, type ByteLink, type ReceiveOptions, type ReceiveResult } from "../../host/console/xmodem.js";

const { SOH, STX, EOT, ACK, NAK, CAN, SUB, CRC } = XMODEM;

const FAST: Omit<ReceiveOptions, "maxBytes"> = {
  startTimeoutMs: 2000,
  requestIntervalMs: 100,
  crcTries: 3,
  blockTimeoutMs: 250,
  charTimeoutMs: 150, // also how soon a repeated block counts as answering a stale request: above this process's own hiccups
  maxRetries: 10,
  settleMs: 30,
  settleMaxMs: 500,
};

// ---------------------------------------------------------------------------------------------
// A line: two directions, each delivering asynchronously, as a serial line would.

class Endpoint {
  private readonly buf: number[] = [];
  private waiter: (() => void) | undefined;
  private closed = false;
  /** Every byte this end received, for checks on what the receiver sent. */
  readonly heard: number[] = [];

  deliver(bytes: Uint8Array): void {
    this.buf.push(...bytes);
    this.heard.push(...bytes);
    this.waiter?.();
  }

  close(): void {
    this.closed = true;
    this.waiter?.();
  }

  /** The next byte, or null after `ms` of silence. */
  async byte(ms: number): Promise<number | null> {
    const end = Date.now() + ms;
    while (this.buf.length === 0) {
      if (this.closed || Date.now() >= end) return null;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(0, end - Date.now()));
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.buf.shift()!;
  }

  drain(): void {
    this.buf.length = 0;
  }
}

interface Line {
  /** The receiver's side. */
  link: ByteLink;
  /** The sender's side: what the receiver wrote arrives here. */
  sender: Endpoint;
  /** Bytes from the sender to the receiver. */
  send(bytes: Uint8Array | number[]): void;
  close(): void;
}

function line(): Line {
  const sender = new Endpoint();
  const listeners = new Set<(b: Uint8Array) => void>();
  const closers = new Set<() => void>();
  return {
    link: {
      write: (b) => {
        const copy = Uint8Array.from(b);
        setImmediate(() => sender.deliver(copy));
      },
      onData: (l) => {
        listeners.add(l);
        return () => void listeners.delete(l);
      },
      onClose: (l) => {
        closers.add(l);
        return () => void closers.delete(l);
      },
    },
    sender,
    send: (bytes) => {
      const copy = Uint8Array.from(bytes);
      setImmediate(() => listeners.forEach((l) => l(copy)));
    },
    close: () => setImmediate(() => closers.forEach((l) => l())),
  };
}

// ---------------------------------------------------------------------------------------------
// A sender from the spec, with faults to inject

interface SenderOptions {
  protocol: "xmodem" | "xmodem-1k" | "ymodem";
  /** YMODEM block 0. */
  name?: string;
  /** YMODEM: the size block 0 announces (default: the file's). */
  announce?: number;
  /** Knows only the arithmetic checksum: ignores 'C', waits for NAK. */
  checksumOnly?: boolean;
  /** Damage this transmission of block n (attempt counts from 0). */
  corrupt?: (block: number, attempt: number) => boolean;
  /** Break the block number's complement on this transmission. */
  badComplement?: (block: number, attempt: number) => boolean;
  /** The ACK of this transmission is lost: the sender sends the block again. */
  loseAck?: (block: number, attempt: number) => boolean;
  /** Send CAN CAN instead of this block. */
  cancelAt?: number;
  /** Stop sending (the sender died) before this block. */
  dieAt?: number;
  /** Number this block wrongly. */
  renumber?: { block: number; as: number };
  /** YMODEM: a second file follows the first. */
  secondFile?: boolean;
  /** As lrzsz: 128-byte blocks once at most 896 bytes are left. */
  tailIn128?: boolean;
  /** Milliseconds between blocks (a slow sender). */
  pauseMs?: number;
  /** Keeps requests that were already waiting when it read the first one (lrzsz does); by default they are dropped, so counts are exact. */
  keepStale?: boolean;
}

interface SenderReport {
  ok: boolean;
  why?: string;
  /** What the sender heard after each EOT it sent. */
  eotAnswers: number[];
  transmissions: number;
}

/** How long the sender waits for an answer: longer than the receiver's block timeout, as in lrzsz. */
const ANSWER_MS = 600;

async function runSender(l: Line, file: Uint8Array, o: SenderOptions): Promise<SenderReport> {
  const rep: SenderReport = { ok: false, eotAnswers: [], transmissions: 0 };
  const s = l.sender;
  const ymodem = o.protocol === "ymodem";
  const big = o.protocol !== "xmodem";

  let crc = false;
  /** Waits for the receiver's request: 'C' (CRC, unless we only know the checksum) or NAK. */
  const request = async (): Promise<boolean> => {
    for (;;) {
      const b = await s.byte(3000);
      if (b === null || b === CAN) return false;
      if (b === NAK || (b === CRC && !o.checksumOnly)) {
        crc = b === CRC;
        if (!o.keepStale) s.drain();
        return true;
      }
    }
  };
  const frame = (n: number, data: Uint8Array, attempt: number): number[] => {
    const seq = n & 0xff;
    const body = Array.from(data);
    const check = crc ? [crc16(data) >> 8, crc16(data) & 0xff] : [checksum8(data)];
    if (o.corrupt?.(n, attempt)) body[body.length >> 1] ^= 0x40;
    const comp = o.badComplement?.(n, attempt) ? (255 - seq + 1) & 0xff : 255 - seq;
    const numbered = o.renumber?.block === n ? o.renumber.as : seq;
    return [data.length === 1024 ? STX : SOH, numbered, o.renumber?.block === n ? 255 - o.renumber.as : comp, ...body, ...check];
  };
  /** Sends block n until it is acknowledged; false when the receiver cancelled or went away. Faults hit the file's blocks only. */
  const block = async (n: number, data: Uint8Array, batchEnd = false): Promise<boolean> => {
    for (let attempt = 0; attempt < 12; attempt++) {
      rep.transmissions++;
      l.send(batchEnd ? frame(n, data, -1) : frame(n, data, attempt));
      let lost = (!batchEnd && o.loseAck?.(n, attempt)) ?? false;
      for (;;) {
        const answer = await s.byte(ANSWER_MS);
        if (answer === null || answer === NAK || answer === CRC) break; // send again
        if (answer === CAN) {
          rep.why = "cancelled by the receiver";
          return false;
        }
        if (answer === ACK && lost) lost = false; // the line ate it: wait on
        else if (answer === ACK) return true;
      }
    }
    rep.why = `no ACK for block ${n}`;
    return false;
  };
  const header = (name: string, size: number): Uint8Array => {
    const h = new Uint8Array(128);
    const text = new TextEncoder().encode(`${name}\0${size} 14567156000 100644 0 1 ${size}`);
    h.set(text);
    return h;
  };

  if (!(await request())) return { ...rep, why: "no request from the receiver" };
  if (ymodem) {
    if (!(await block(0, header(o.name ?? "image.img", o.announce ?? file.length)))) return rep;
    if (!(await request())) return { ...rep, why: "no request after block 0" };
  }
  let n = 1;
  for (let at = 0; at < file.length; n++) {
    if (o.pauseMs) await new Promise((r) => setTimeout(r, o.pauseMs));
    if (n === o.cancelAt) {
      l.send([CAN, CAN]);
      return { ...rep, why: "we cancelled" };
    }
    if (n === o.dieAt) return { ...rep, why: "we died" };
    // lrzsz: 1024-byte blocks while more than 896 bytes remain, then 128.
    const size = big && (!o.tailIn128 || file.length - at > 896) ? 1024 : 128;
    const data = new Uint8Array(size).fill(SUB);
    data.set(file.subarray(at, at + size));
    if (!(await block(n, data))) return rep;
    at += size;
  }
  for (let attempt = 0; attempt < 10; attempt++) {
    l.send([EOT]);
    const answer = await s.byte(ANSWER_MS);
    rep.eotAnswers.push(answer ?? -1);
    if (answer === ACK) break;
  }
  if (rep.eotAnswers.at(-1) !== ACK) return { ...rep, why: "no ACK for EOT" };
  if (ymodem) {
    if (!(await request())) return { ...rep, why: "no request for the next file" };
    if (o.secondFile) {
      if (!(await block(0, header("second.img", 10)))) return rep;
      return { ...rep, ok: true };
    }
    if (!(await block(0, new Uint8Array(128), true))) return rep;
  }
  return { ...rep, ok: true };
}

function file(size: number, seed = 1): Uint8Array {
  const f = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    f[i] = x >> 16;
  }
  return f;
}

async function transfer(data: Uint8Array, so: SenderOptions, ro: Partial<ReceiveOptions> = {}): Promise<{ r: ReceiveResult; sent: SenderReport; heard: number[] }> {
  const l = line();
  const [r, sent] = await Promise.all([receiveFile(l.link, { ...FAST, maxBytes: 1 << 20, ...ro }), runSender(l, data, so)]);
  return { r, sent, heard: l.sender.heard };
}

function ok(r: ReceiveResult): Extract<ReceiveResult, { ok: true }> {
  assert.ok(r.ok, `the transfer failed: ${r.ok ? "" : r.reason}`);
  return r;
}

function failed(r: ReceiveResult): Extract<ReceiveResult, { ok: false }> {
  assert.ok(!r.ok, "the transfer should have failed");
  return r;
}

/** Ends in CANs: the receiver told the sender it gave up. */
function cancelled(heard: number[]): boolean {
  return heard.length >= 2 && heard.at(-1) === CAN && heard.at(-2) === CAN;
}

// ---------------------------------------------------------------------------------------------

describe("xmodem: block checks", () => {
  it("CRC-16 is CRC-16/XMODEM (check value of '123456789' is 0x31c3)", () => {
    assert.equal(crc16(new TextEncoder().encode("123456789")), 0x31c3);
  });
  it("the checksum is the byte sum modulo 256", () => {
    assert.equal(checksum8(Uint8Array.of(0xff, 0x02, 0x10)), 0x11);
  });
});

describe("xmodem: clean transfers", () => {
  it("XMODEM with CRC: 128-byte blocks arrive whole; the last block's SUB padding stays and `padded` says so", async () => {
    const f = file(1000);
    const { r, sent, heard } = await transfer(f, { protocol: "xmodem" });
    const got = ok(r);
    assert.ok(sent.ok, sent.why);
    assert.equal(heard[0], CRC, "asks for CRC first");
    assert.equal(got.padded, true);
    assert.equal(got.data.length, 1024);
    assert.deepEqual(got.data.subarray(0, 1000), f);
    assert.ok(got.data.subarray(1000).every((b) => b === SUB));
    // (duplicates: a request repeated while this process was still starting can make the sender send block 1 twice)
    assert.deepEqual({ ...got.stats, elapsedMs: 0, duplicates: 0 }, { protocol: "xmodem", check: "crc16", blocks: 8, duplicates: 0, retries: 0, bytes: 1024, elapsedMs: 0 });
    assert.deepEqual(sent.eotAnswers, [ACK], "XMODEM's EOT is acknowledged at once");
  });

  it("XMODEM with the checksum: a sender that ignores 'C' is served once the CRC requests run out (NAK)", async () => {
    const f = file(300);
    const { r, heard } = await transfer(f, { protocol: "xmodem", checksumOnly: true });
    const got = ok(r);
    assert.equal(got.stats.check, "checksum");
    assert.deepEqual(heard.slice(0, 4), [CRC, CRC, CRC, NAK], "three requests for CRC, then NAK");
    assert.deepEqual(got.data.subarray(0, 300), f);
  });

  it("XMODEM-1K: 1024-byte STX blocks, and 128-byte blocks for the tail as lrzsz sends them", async () => {
    const f = file(4500);
    const { r } = await transfer(f, { protocol: "xmodem-1k", tailIn128: true });
    const got = ok(r);
    assert.equal(got.stats.protocol, "xmodem-1k");
    assert.equal(got.stats.blocks, 4 + 4, "4 x 1024, then 4 x 128 for the last 404 bytes");
    assert.deepEqual(got.data.subarray(0, 4500), f);
  });

  it("YMODEM: block 0's name and size trim the padding; the first EOT is NAKed, the second ACKed; an empty block 0 ends the batch", async () => {
    const f = file(3000);
    const { r, sent, heard } = await transfer(f, { protocol: "ymodem", name: "fs-0.2.0.img" });
    const got = ok(r);
    assert.ok(sent.ok, sent.why);
    assert.equal(got.name, "fs-0.2.0.img");
    assert.equal(got.mtime, Number.parseInt("14567156000", 8) * 1000);
    assert.equal(got.padded, false);
    assert.deepEqual(got.data, f, "exactly the file: no padding");
    assert.deepEqual(sent.eotAnswers, [NAK, ACK]);
    assert.equal(got.stats.protocol, "ymodem");
    assert.equal(got.stats.blocks, 3, "block 0 is not a data block");
    assert.equal(got.stats.bytes, 3000);
    // C (file) ... ACK(block 0) C (data) ... NAK ACK (EOTs) C (next file) ACK (empty block 0)
    assert.deepEqual(heard.slice(0, 3), [CRC, ACK, CRC]);
    assert.deepEqual(heard.slice(-4), [NAK, ACK, CRC, ACK]);
  });

  it("YMODEM with the checksum: block 0 and the data blocks use it alike", async () => {
    const f = file(2000);
    const { r } = await transfer(f, { protocol: "ymodem", checksumOnly: true });
    const got = ok(r);
    assert.equal(got.stats.check, "checksum");
    assert.deepEqual(got.data, f);
  });

  it("an empty YMODEM file is received as zero bytes", async () => {
    const { r } = await transfer(new Uint8Array(0), { protocol: "ymodem" });
    assert.equal(ok(r).data.length, 0);
  });

  it("block numbers wrap from 255 to 0", async () => {
    const f = file(300 * 128);
    const { r } = await transfer(f, { protocol: "xmodem" });
    const got = ok(r);
    assert.equal(got.stats.blocks, 300);
    assert.deepEqual(got.data, f);
  });

  it("noise before the first block (a key pressed, a terminal's greeting) is skipped", async () => {
    const l = line();
    l.send(new TextEncoder().encode("\r\nhello\r\n"));
    const f = file(200);
    const [r] = await Promise.all([receiveFile(l.link, { ...FAST, maxBytes: 4096 }), runSender(l, f, { protocol: "ymodem" })]);
    assert.deepEqual(ok(r).data, f);
  });
});

describe("xmodem: errors on the line", () => {
  it("a damaged block is NAKed and sent again; the file arrives whole and the retry is counted", async () => {
    const f = file(4000);
    const { r, sent } = await transfer(f, { protocol: "ymodem", corrupt: (n, a) => n === 2 && a === 0 });
    const got = ok(r);
    assert.deepEqual(got.data, f);
    assert.equal(got.stats.retries, 1);
    assert.equal(sent.transmissions, 1 + 4 + 1 + 1, "block 0, four data blocks, one again, the empty block 0");
  });

  it("a damaged first block is asked for again, in the check the sender chose", async () => {
    const f = file(500);
    const { r } = await transfer(f, { protocol: "xmodem", corrupt: (n, a) => n === 1 && a < 2 });
    const got = ok(r);
    assert.equal(got.stats.retries, 2);
    assert.equal(got.stats.check, "crc16");
    assert.deepEqual(got.data.subarray(0, 500), f);
  });

  it("a block whose number and complement disagree is NAKed", async () => {
    const f = file(1000);
    const { r } = await transfer(f, { protocol: "xmodem-1k", badComplement: (n, a) => n === 1 && a === 0 });
    const got = ok(r);
    assert.equal(got.stats.retries, 1);
  });

  it("a lost ACK: the receiver NAKs when the next block does not come; the block sent again is acknowledged and kept once", async () => {
    const f = file(5 * 1024);
    const { r, sent } = await transfer(f, { protocol: "ymodem", loseAck: (n, a) => n === 3 && a === 0 });
    const got = ok(r);
    assert.ok(sent.ok, sent.why);
    assert.deepEqual(got.data, f, "no block twice");
    assert.equal(got.stats.duplicates, 1);
    assert.equal(got.stats.retries, 1, "the receiver's NAK when block 4 did not come");
  });

  it("YMODEM block 0's ACK lost: the sender takes the following 'C' for a NAK; the transfer stays in step", async () => {
    const f = file(3 * 1024);
    const { r, sent } = await transfer(f, { protocol: "ymodem", loseAck: (n, a) => n === 0 && a === 0 });
    const got = ok(r);
    assert.ok(sent.ok, sent.why);
    assert.deepEqual(sent.eotAnswers, [NAK, ACK]);
    assert.deepEqual(got.data, f);
    assert.ok(got.stats.duplicates >= 1, "block 0 came again");
  });

  it("requests that piled up before the sender started: its immediate repeats go unanswered, so it does not read every answer one late", async () => {
    for (const protocol of ["ymodem", "xmodem-1k"] as const) {
      const l = line();
      const f = file(6000);
      const receiving = receiveFile(l.link, { ...FAST, maxBytes: 1 << 20 });
      await new Promise((r) => setTimeout(r, 350)); // several 'C's wait in the sender's input
      assert.ok(l.sender.heard.length >= 2, `requests waiting: ${l.sender.heard.length}`);
      const [r, sent] = await Promise.all([receiving, runSender(l, f, { protocol, keepStale: true })]);
      const got = ok(r);
      assert.ok(sent.ok, `${protocol}: the sender finished cleanly: ${sent.why}`);
      if (protocol === "ymodem") assert.deepEqual(sent.eotAnswers, [NAK, ACK], "the first EOT's NAK reached the sender as a NAK");
      assert.deepEqual(got.data.subarray(0, f.length), f);
      assert.ok(got.stats.duplicates >= 2, `the first block came again for the waiting requests: ${got.stats.duplicates}`);
    }
  });

  it("a block out of sequence cancels the transfer: the two sides lost step", async () => {
    const { r, heard } = await transfer(file(5000), { protocol: "xmodem-1k", renumber: { block: 3, as: 5 } });
    assert.match(failed(r).reason, /block 5 came where block 3 was due/);
    assert.ok(cancelled(heard), "CAN CAN told the sender");
  });

  it("a block damaged every time fails after the retry limit and is cancelled", async () => {
    const { r, heard } = await transfer(file(3000), { protocol: "xmodem-1k", corrupt: (n) => n === 2 }, { maxRetries: 3 });
    const f = failed(r);
    assert.match(f.reason, /block 2 failed 4 times \(last: a CRC error in block 2\)/);
    assert.equal(f.by, "receiver");
    assert.equal(f.stats.blocks, 1);
    assert.ok(cancelled(heard));
  });

  it("a sender that dies mid-file is NAKed up to the retry limit, then cancelled", async () => {
    const { r } = await transfer(file(5000), { protocol: "xmodem-1k", dieAt: 3 }, { maxRetries: 2, blockTimeoutMs: 100 });
    assert.match(failed(r).reason, /block 3 failed 3 times \(last: no block came\)/);
  });

  it("a short block (the line went quiet inside it) is NAKed", async () => {
    const l = line();
    const done = receiveFile(l.link, { ...FAST, maxBytes: 4096 });
    assert.equal(await l.sender.byte(500), CRC);
    const data = file(128);
    const full = [SOH, 1, 254, ...data, crc16(data) >> 8, crc16(data) & 0xff];
    l.send(full.slice(0, 60));
    assert.equal(await l.sender.byte(500), CRC, "the first block asked for again");
    l.send(full);
    assert.equal(await l.sender.byte(500), ACK);
    l.send([EOT]);
    assert.equal(await l.sender.byte(500), ACK);
    const got = ok(await done);
    assert.deepEqual(got.data, data);
    assert.equal(got.stats.retries, 1);
  });
});

describe("xmodem: cancels and limits", () => {
  it("CAN CAN from the sender cancels; what it says is the reason", async () => {
    const { r } = await transfer(file(5000), { protocol: "ymodem", cancelAt: 2 });
    const f = failed(r);
    assert.equal(f.reason, "cancelled by the sender (CAN CAN)");
    assert.equal(f.by, "sender");
    assert.equal(f.stats.blocks, 1);
  });

  it("Ctrl-X Ctrl-X typed before a sender starts cancels; so does Ctrl-C", async () => {
    for (const [keys, reason] of [[[CAN, CAN], "cancelled by the sender (CAN CAN)"], [[0x03], "cancelled with Ctrl-C"]] as const) {
      const l = line();
      const done = receiveFile(l.link, { ...FAST, maxBytes: 4096 });
      assert.equal(await l.sender.byte(500), CRC);
      l.send([...keys]);
      const f = failed(await done);
      assert.equal(f.reason, reason);
      assert.equal(f.stats.protocol, undefined);
    }
  });

  it("a single CAN is line noise, not a cancel", async () => {
    const l = line();
    l.send([CAN, 0x41]);
    const f = file(100);
    const [r] = await Promise.all([receiveFile(l.link, { ...FAST, maxBytes: 4096 }), runSender(l, f, { protocol: "xmodem" })]);
    assert.deepEqual(ok(r).data.subarray(0, 100), f);
  });

  it("YMODEM: a file announced bigger than the limit is refused at block 0, before any data", async () => {
    const { r, heard } = await transfer(file(5000), { protocol: "ymodem", name: "huge.img" }, { maxBytes: 4096 });
    const f = failed(r);
    assert.equal(f.reason, "huge.img is 5,000 bytes: at most 4,096 fit");
    assert.equal(f.stats.blocks, 0);
    assert.ok(cancelled(heard));
  });

  it("YMODEM: more data than block 0 announced is refused", async () => {
    const { r } = await transfer(file(5000), { protocol: "ymodem", announce: 1000 });
    assert.match(failed(r).reason, /more data than the 1,000 bytes the YMODEM header announced/);
  });

  it("YMODEM: less data than block 0 announced is refused", async () => {
    const { r } = await transfer(file(1000), { protocol: "ymodem", announce: 5000 });
    assert.match(failed(r).reason, /ended after 1,024 of the 5,000 bytes/);
  });

  it("XMODEM: the first block past the limit is refused and cancelled", async () => {
    const { r, heard } = await transfer(file(9000), { protocol: "xmodem-1k" }, { maxBytes: 4096 });
    const f = failed(r);
    assert.equal(f.reason, "more than 4,096 bytes: the file does not fit");
    assert.equal(f.stats.blocks, 4);
    assert.ok(cancelled(heard));
  });

  it("XMODEM: padding may reach past the limit, data may not", async () => {
    const fits = await transfer(file(1000), { protocol: "xmodem" }, { maxBytes: 1000 });
    assert.equal(ok(fits.r).data.length, 1000, "1024 received, the 24 bytes of padding dropped");
    const tooBig = await transfer(file(1010), { protocol: "xmodem" }, { maxBytes: 1000 });
    assert.match(failed(tooBig.r).reason, /does not fit/);
  });

  it("a second file in a YMODEM batch is refused: an upgrade is one image", async () => {
    const { r } = await transfer(file(100), { protocol: "ymodem", secondFile: true });
    assert.match(failed(r).reason, /more than one file/);
  });

  it("no sender within the start timeout: the receiver gives up and says so", async () => {
    const l = line();
    const f = failed(await receiveFile(l.link, { ...FAST, maxBytes: 4096, startTimeoutMs: 300 }));
    assert.equal(f.reason, "no sender started within 0.3 s");
    const requests = l.sender.heard.filter((b) => b === CRC || b === NAK).length;
    assert.ok(requests >= 2 && requests <= 4, `a request every 100 ms: ${requests}`);
  });

  it("the overall timeout stops a sender that trickles forever", async () => {
    const { r } = await transfer(file(20 * 128), { protocol: "xmodem", pauseMs: 30 }, { overallTimeoutMs: 250 });
    assert.match(failed(r).reason, /took longer than 0.3 s|took longer than 0.2 s/);
  });

  it("a ZMODEM sender (plain `sz`) is recognised and told to use YMODEM", async () => {
    const l = line();
    const done = receiveFile(l.link, { ...FAST, maxBytes: 4096 });
    l.send(new TextEncoder().encode("rz\r**\x18B00000000000000\r\n\x11"));
    assert.match(failed(await done).reason, /ZMODEM: send with YMODEM or XMODEM-1K \(sz --ymodem --1k FILE\)/);
  });

  it("the line closing ends the transfer", async () => {
    const l = line();
    const done = receiveFile(l.link, { ...FAST, maxBytes: 4096 });
    await l.sender.byte(500);
    l.close();
    const f = failed(await done);
    assert.equal(f.reason, "the line closed");
    assert.equal(f.by, "line");
  });

  it("the first block numbered neither 0 nor 1 is refused", async () => {
    const l = line();
    const done = receiveFile(l.link, { ...FAST, maxBytes: 4096 });
    await l.sender.byte(500);
    const data = file(128);
    l.send([SOH, 7, 248, ...data, crc16(data) >> 8, crc16(data) & 0xff]);
    assert.match(failed(await done).reason, /the first block is number 7/);
  });
});
