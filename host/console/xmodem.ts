// Receives one file over a byte stream by XMODEM (128-byte blocks, arithmetic checksum or
// CRC-16), XMODEM-1K (1024-byte blocks) or YMODEM batch (a block 0 with the file's name and size
// before the data, an empty block 0 after it): what an operator's terminal program sends with
// `sz --ymodem`, `sz --xmodem --1k`, minicom, picocom, Tera Term or SecureCRT. Pure protocol
// logic over write()/onData(), so it runs the same on a serial console and in a unit test.
//
// What it trades away, and why:
// - Receive only, one file. A batch with a second file is cancelled (an upgrade is one image).
// - The block check is chosen by the sender: the receiver asks for CRC-16 ('C') first and, after
//   `crcTries` unanswered requests, for the checksum variant (NAK), as the spec says. Requests a
//   sender did not read in time pile up in its input, so which one it acts on is not known; the
//   first block's length (CRC blocks are one byte longer, and the sender then waits for an
//   answer) tells which check it chose.
// - XMODEM carries no length: the last block's padding (SUB, 0x1a) stays in the data and
//   `padded` says so; the image format must know its own length. YMODEM's size trims it.
// - No YMODEM-g (it has no error recovery) and no ZMODEM; a ZMODEM sender is recognised by its
//   first header and told, in the reason, to use YMODEM.
// - Written here rather than taken from npm: the published packages only send, or only speak
//   XMODEM, and none caps the size or reports why a transfer failed.

/** Protocol bytes and the spec's timings, each with where it comes from. */
export const XMODEM = {
  SOH: 0x01, // a 128-byte block follows
  STX: 0x02, // a 1024-byte block follows (XMODEM-1K, YMODEM)
  EOT: 0x04, // end of the file
  ACK: 0x06,
  NAK: 0x15, // resend; before the first block: "send with the arithmetic checksum"
  CAN: 0x18, // two in a row cancel the transfer (Ctrl-X at a keyboard)
  SUB: 0x1a, // pads the last XMODEM block (CP/M's end of file)
  CRC: 0x43, // 'C': before the first block, "send with CRC-16"
  CTRL_C: 0x03, // before any block, an operator giving up at the keyboard
  /** Requests for CRC before falling back to the checksum variant (the spec says about 3). */
  CRC_TRIES: 3,
  /** Errors in a row on one block before giving up (the spec's 10). */
  MAX_RETRIES: 10,
  /** Waiting for a block after an ACK or NAK (the spec's 10 s). */
  BLOCK_TIMEOUT_MS: 10_000,
  /** Silence inside a block that makes it a short block (the spec's 1 s). */
  CHAR_TIMEOUT_MS: 1_000,
  /** Between requests while no sender has started; lrzsz's sz waits 10 s for one, three times. */
  REQUEST_INTERVAL_MS: 3_000,
  /** How long a sender may take to start. */
  START_TIMEOUT_MS: 60_000,
  /** Cancels sent in a row: lrzsz needs three to be sure; more cost nothing. */
  CANCEL_COUNT: 8,
  /** After a cancel or an error the line must be quiet this long before the receiver returns. */
  SETTLE_MS: 1_000,
  /** ... but no longer than this (a sender that never stops talking). */
  SETTLE_MAX_MS: 10_000,
} as const;

/** The byte stream to the sender: what a Terminal's raw session gives. */
export interface ByteLink {
  write(bytes: Uint8Array): void;
  /** Delivers the sender's bytes as they arrive; returns a function that stops the delivery. */
  onData(listener: (bytes: Uint8Array) => void): () => void;
  /** Called once if the line goes away (the operator's side closed). */
  onClose?(listener: () => void): () => void;
}

export interface ReceiveOptions {
  /** Largest file accepted, in bytes; a bigger one is cancelled as soon as it is known to be bigger. */
  maxBytes: number;
  startTimeoutMs?: number;
  requestIntervalMs?: number;
  crcTries?: number;
  blockTimeoutMs?: number;
  charTimeoutMs?: number;
  maxRetries?: number;
  /** The whole transfer, from the first request to the end; none by default. */
  overallTimeoutMs?: number;
  settleMs?: number;
  settleMaxMs?: number;
}

export interface TransferStats {
  /** What the sender spoke; undefined until its first block. */
  protocol?: "xmodem" | "xmodem-1k" | "ymodem";
  check?: "crc16" | "checksum";
  /** Data blocks accepted (YMODEM's block 0 not counted). */
  blocks: number;
  /** Blocks received again after their ACK was lost, and acknowledged again. */
  duplicates: number;
  /** NAKs and repeated requests for bad, short or missing blocks. */
  retries: number;
  /** Bytes of the file kept (after YMODEM's trim). */
  bytes: number;
  /** From the first block to the end of the transfer. */
  elapsedMs: number;
}

export type ReceiveResult =
  | {
      ok: true;
      data: Uint8Array;
      /** The name YMODEM's block 0 gave. */
      name?: string;
      /** Modification time from YMODEM's block 0, ms since the epoch. */
      mtime?: number;
      /** XMODEM: the data may end in padding the protocol cannot tell from the file. */
      padded: boolean;
      stats: TransferStats;
    }
  | {
      ok: false;
      reason: string;
      /** Who ended it: the sender (CAN CAN), the receiver (an error, a limit), or the line closing. */
      by: "sender" | "receiver" | "line";
      stats: TransferStats;
    };

/** Receives one file from `link`; never throws for anything the sender or the line does. */
export async function receiveFile(link: ByteLink, opts: ReceiveOptions): Promise<ReceiveResult> {
  const r = new Receiver(link, opts);
  try {
    return await r.run();
  } finally {
    r.detach();
  }
}

// ---------------------------------------------------------------------------------------------
// Block checks

const CRC_TABLE: Uint16Array = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let k = 0; k < 8; k++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

/** CRC-16/XMODEM: polynomial 0x1021, initial 0, no reflection, sent high byte first. */
export function crc16(data: Uint8Array, from = 0, to = data.length): number {
  let crc = 0;
  for (let i = from; i < to; i++) crc = ((crc << 8) & 0xff00) ^ CRC_TABLE[((crc >> 8) ^ data[i]) & 0xff];
  return crc;
}

/** The original XMODEM check: the sum of the data bytes, modulo 256. */
export function checksum8(data: Uint8Array, from = 0, to = data.length): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum = (sum + data[i]) & 0xff;
  return sum;
}

// ---------------------------------------------------------------------------------------------
// The sender's bytes, buffered: blocks are read whole, with a timeout on silence.

class ByteQueue {
  private chunks: Uint8Array[] = [];
  /** When each chunk arrived (Date.now()). */
  private times: number[] = [];
  private head = 0; // offset in chunks[0]
  length = 0;
  closed = false;
  /** When the first byte of the last read arrived: not when it was read, which may be much later. */
  arrivedAt = 0;
  private wake: (() => void) | undefined;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.times.push(Date.now());
    this.length += chunk.length;
    this.notify();
  }

  close(): void {
    this.closed = true;
    this.notify();
  }

  /** Puts one byte back at the front (a byte read ahead that belongs to what follows). */
  unshift(byte: number): void {
    if (this.chunks.length) this.chunks[0] = this.chunks[0].subarray(this.head);
    this.chunks.unshift(Uint8Array.of(byte));
    this.times.unshift(this.arrivedAt);
    this.head = 0;
    this.length++;
  }

  /**
   * Resolves to the next `n` bytes, or to why they did not come: `idleMs` without a new byte,
   * the absolute `deadline` (Date.now() scale), or the line closing.
   */
  async read(n: number, idleMs: number, deadline: number): Promise<Uint8Array | "idle" | "deadline" | "closed"> {
    while (this.length < n) {
      if (this.closed) return "closed";
      const left = deadline - Date.now();
      if (left <= 0) return "deadline";
      const before = this.length;
      const waitMs = Math.min(idleMs, left);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.wake = undefined;
          resolve();
        }, waitMs);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = undefined;
          resolve();
        };
      });
      if (this.length === before && !this.closed) {
        if (Date.now() >= deadline) return "deadline";
        return "idle";
      }
    }
    return this.take(n);
  }

  /** Drops what arrives until the line has been quiet for `quietMs` (at most `maxMs` in all). */
  async purge(quietMs: number, maxMs: number): Promise<void> {
    const end = Date.now() + maxMs;
    this.drop();
    for (;;) {
      const r = await this.read(1, quietMs, end);
      if (typeof r === "string") return;
      this.drop();
    }
  }

  private drop(): void {
    this.chunks = [];
    this.times = [];
    this.head = 0;
    this.length = 0;
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0];
    this.arrivedAt = this.times[0];
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) this.shift();
      this.length -= n;
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const k = Math.min(n - filled, c.length - this.head);
      out.set(c.subarray(this.head, this.head + k), filled);
      filled += k;
      this.head += k;
      if (this.head === c.length) this.shift();
    }
    this.length -= n;
    return out;
  }

  private shift(): void {
    this.chunks.shift();
    this.times.shift();
    this.head = 0;
  }

  private notify(): void {
    this.wake?.();
  }
}

// ---------------------------------------------------------------------------------------------
// The receiver

/** What reading one block came to. */
type BlockRead =
  | { kind: "block"; seq: number; data: Uint8Array; crc: boolean; at: number }
  | { kind: "bad"; why: string }
  | { kind: "eot" }
  | { kind: "cancel" }
  | { kind: "interrupt" }
  | { kind: "zmodem" }
  | { kind: "timeout" }
  | { kind: "deadline" }
  | { kind: "closed" };

/** Ends the transfer with a reason; `by` says who ended it. */
class Failure {
  constructor(
    readonly reason: string,
    readonly by: "sender" | "receiver" | "line",
    /** The receiver must tell the sender (CAN CAN) before giving up. */
    readonly cancel: boolean,
  ) {}
}

/** ZMODEM's hex header start: "**", ZDLE (CAN), 'B'. sz sends it when not told --ymodem. */
const ZMODEM_HEADER = [0x2a, 0x2a, XMODEM.CAN, 0x42];

interface YmodemHeader {
  name: string;
  size?: number;
  mtime?: number;
}

class Receiver {
  private readonly q = new ByteQueue();
  private readonly detachers: (() => void)[] = [];
  private readonly o: Required<Omit<ReceiveOptions, "overallTimeoutMs">> & { overallTimeoutMs: number };
  private readonly stats: TransferStats = { blocks: 0, duplicates: 0, retries: 0, bytes: 0, elapsedMs: 0 };
  private readonly deadline: number;
  private firstBlockAt = 0;
  /** The last few bytes that were not part of a block (to recognise a ZMODEM sender). */
  private noise: number[] = [];
  private crc = true;

  constructor(
    private readonly link: ByteLink,
    opts: ReceiveOptions,
  ) {
    this.o = {
      maxBytes: opts.maxBytes,
      startTimeoutMs: opts.startTimeoutMs ?? XMODEM.START_TIMEOUT_MS,
      requestIntervalMs: opts.requestIntervalMs ?? XMODEM.REQUEST_INTERVAL_MS,
      crcTries: opts.crcTries ?? XMODEM.CRC_TRIES,
      blockTimeoutMs: opts.blockTimeoutMs ?? XMODEM.BLOCK_TIMEOUT_MS,
      charTimeoutMs: opts.charTimeoutMs ?? XMODEM.CHAR_TIMEOUT_MS,
      maxRetries: opts.maxRetries ?? XMODEM.MAX_RETRIES,
      overallTimeoutMs: opts.overallTimeoutMs ?? Infinity,
      settleMs: opts.settleMs ?? XMODEM.SETTLE_MS,
      settleMaxMs: opts.settleMaxMs ?? XMODEM.SETTLE_MAX_MS,
    };
    this.deadline = Date.now() + this.o.overallTimeoutMs;
    this.detachers.push(link.onData((b) => this.q.push(b)));
    if (link.onClose) this.detachers.push(link.onClose(() => this.q.close()));
  }

  detach(): void {
    for (const d of this.detachers.splice(0)) d();
  }

  async run(): Promise<ReceiveResult> {
    try {
      const result = await this.transfer();
      this.stats.elapsedMs = this.firstBlockAt ? Date.now() - this.firstBlockAt : 0;
      return result;
    } catch (e) {
      if (!(e instanceof Failure)) throw e;
      this.stats.elapsedMs = this.firstBlockAt ? Date.now() - this.firstBlockAt : 0;
      if (e.cancel) this.sendCancel();
      if (e.by !== "line") await this.q.purge(this.o.settleMs, this.o.settleMaxMs);
      return { ok: false, reason: e.reason, by: e.by, stats: this.stats };
    }
  }

  private async transfer(): Promise<ReceiveResult> {
    const first = await this.firstBlock();
    if (first.seq === 1) {
      this.stats.protocol = first.data.length === 1024 ? "xmodem-1k" : "xmodem";
      const tooBig = `more than ${fmt(this.o.maxBytes)} bytes: the file does not fit`;
      let data = await this.dataBlocks({ first, limit: this.o.maxBytes, tooBig, ymodem: false });
      if (data.length > this.o.maxBytes) {
        // Only the last block's padding may reach past the limit.
        if (!data.subarray(this.o.maxBytes).every((b) => b === XMODEM.SUB)) throw new Failure(tooBig, "receiver", false);
        data = data.subarray(0, this.o.maxBytes);
      }
      this.stats.bytes = data.length;
      return { ok: true, data, padded: true, stats: this.stats };
    }
    if (first.seq !== 0) {
      throw new Failure(`the first block is number ${first.seq}: a sender starts with 0 (YMODEM) or 1 (XMODEM)`, "receiver", true);
    }
    this.stats.protocol = "ymodem";
    const header = this.parseHeader(first.data);
    if (!header) {
      this.send(XMODEM.ACK);
      throw new Failure("the YMODEM batch holds no file", "sender", false);
    }
    if (header.size !== undefined && header.size > this.o.maxBytes) {
      throw new Failure(`${header.name} is ${fmt(header.size)} bytes: at most ${fmt(this.o.maxBytes)} fit`, "receiver", true);
    }
    this.send(XMODEM.ACK);
    this.send(this.request()); // YMODEM: ask again for the data blocks
    const ackedAt = Date.now();
    let data = await this.dataBlocks(
      header.size !== undefined
        ? { ackedAt, limit: header.size, tooBig: `more data than the ${fmt(header.size)} bytes the YMODEM header announced`, ymodem: true }
        : { ackedAt, limit: this.o.maxBytes, tooBig: `more than ${fmt(this.o.maxBytes)} bytes: the file does not fit`, ymodem: true },
    );
    if (header.size !== undefined) {
      if (data.length < header.size) {
        throw new Failure(`the transfer ended after ${fmt(data.length)} of the ${fmt(header.size)} bytes ${header.name} has`, "receiver", true);
      }
      data = data.subarray(0, header.size);
    }
    this.stats.bytes = data.length;
    await this.endOfBatch();
    return { ok: true, data, name: header.name, ...(header.mtime !== undefined ? { mtime: header.mtime } : {}), padded: false, stats: this.stats };
  }

  /** Asks until a sender answers with a good first block (YMODEM's 0 or XMODEM's 1). */
  private async firstBlock(): Promise<{ seq: number; data: Uint8Array }> {
    const startBy = Math.min(Date.now() + this.o.startTimeoutMs, this.deadline);
    let unanswered = 0;
    let errors = 0;
    for (;;) {
      if (Date.now() >= startBy) {
        throw new Failure(`no sender started within ${seconds(this.o.startTimeoutMs)}`, "receiver", true);
      }
      this.send(unanswered < this.o.crcTries ? XMODEM.CRC : XMODEM.NAK);
      const r = await this.readBlock(Math.min(this.o.requestIntervalMs, startBy - Date.now()), { first: true });
      switch (r.kind) {
        case "block":
          this.crc = r.crc;
          this.stats.check = r.crc ? "crc16" : "checksum";
          this.firstBlockAt = Date.now();
          return r;
        case "timeout":
          unanswered++;
          continue;
        case "bad":
          this.stats.retries++;
          if (++errors > this.o.maxRetries) throw new Failure(`the first block failed ${errors} times (last: ${r.why})`, "receiver", true);
          continue;
        case "eot": // a sender with nothing to send, or noise: ask again
          continue;
        default:
          return this.stop(r);
      }
    }
  }

  /**
   * Receives data blocks from number 1 until EOT and returns the data. `limit` is the most the
   * file may hold (a block that starts beyond it is refused: only the last block may be padding).
   *
   * A block sent again that starts within `charTimeoutMs` of our ACK is not answered. No sender
   * times out that fast: it read a request or NAK that was waiting in its input (requests repeated
   * before it started), and answering it would leave the sender reading each answer one late for
   * the rest of the transfer (fatal at YMODEM's end, where it would take the NAK of its first EOT
   * for a request). Unanswered, it reads our earlier ACK and is in step again. A sender that
   * really lost the ACK sends the block again after its timeout, or after our NAK, and is answered.
   */
  private async dataBlocks(o: { first?: { seq: number; data: Uint8Array }; ackedAt?: number; limit: number; tooBig: string; ymodem: boolean }): Promise<Uint8Array> {
    const blocks: Uint8Array[] = [];
    let received = 0;
    let expected = 1;
    let errors = 0;
    let eotNaked = false;
    /** When the last block was acknowledged; 0 once a NAK has been sent since. */
    let ackedAt = o.ackedAt ?? 0;
    const accept = (data: Uint8Array): void => {
      if (received >= o.limit) throw new Failure(o.tooBig, "receiver", true);
      blocks.push(data.slice()); // the queue's buffer is reused by the stream
      received += data.length;
      this.stats.blocks++;
      expected = (expected + 1) & 0xff;
      errors = 0;
      this.send(XMODEM.ACK);
      ackedAt = Date.now();
    };
    if (o.first) accept(o.first.data);
    for (;;) {
      const r = await this.readBlock(this.o.blockTimeoutMs, { first: false });
      if (r.kind === "block") {
        eotNaked = false;
        if (r.seq === expected) {
          if (r.data.length === 1024 && this.stats.protocol === "xmodem") this.stats.protocol = "xmodem-1k";
          accept(r.data);
        } else if (r.seq === ((expected - 1) & 0xff)) {
          // Sent again: keep one copy; acknowledge it unless it answers a stale request (above).
          this.stats.duplicates++;
          if (ackedAt && r.at - ackedAt < this.o.charTimeoutMs) continue;
          this.send(XMODEM.ACK);
          ackedAt = Date.now();
          if (o.ymodem && r.seq === 0) this.send(this.request()); // block 0 again: ask again for block 1
        } else {
          throw new Failure(`block ${r.seq} came where block ${expected} was due: the sender and the receiver lost step`, "receiver", true);
        }
        continue;
      }
      if (r.kind === "eot") {
        // YMODEM: NAK the first EOT, a noise byte could look like one; a real sender repeats it.
        if (o.ymodem && !eotNaked) {
          eotNaked = true;
          this.send(XMODEM.NAK);
          ackedAt = 0;
          continue;
        }
        this.send(XMODEM.ACK);
        return concat(blocks, received);
      }
      if (r.kind === "timeout" && eotNaked) {
        // A sender that does not repeat its EOT after our NAK: the EOT stands.
        this.send(XMODEM.ACK);
        return concat(blocks, received);
      }
      if (r.kind === "timeout" || r.kind === "bad") {
        this.stats.retries++;
        if (++errors > this.o.maxRetries) {
          const what = r.kind === "bad" ? r.why : "no block came";
          throw new Failure(`block ${expected} failed ${errors} times (last: ${what})`, "receiver", true);
        }
        // Before block 1 of YMODEM the request is 'C' again (as after block 0), otherwise NAK.
        this.send(o.ymodem && received === 0 ? this.request() : XMODEM.NAK);
        ackedAt = 0;
        continue;
      }
      return this.stop(r);
    }
  }

  /** YMODEM after a file: ask for the next block 0; an empty one ends the batch. */
  private async endOfBatch(): Promise<void> {
    for (let tries = 0; tries < 3; tries++) {
      this.send(this.request());
      const r = await this.readBlock(this.o.blockTimeoutMs, { first: false });
      if (r.kind === "block" && r.seq === 0) {
        if (this.parseHeader(r.data)) throw new Failure("the batch holds more than one file: send only the image", "receiver", true);
        this.send(XMODEM.ACK);
        return;
      }
      if (r.kind === "eot") {
        this.send(XMODEM.ACK); // our ACK of the file's EOT was lost
        continue;
      }
      if (r.kind === "block" || r.kind === "bad" || r.kind === "timeout") continue;
      if (r.kind === "deadline" || r.kind === "closed") return; // the file is whole: keep it
      return this.stop(r);
    }
    // The file is whole and acknowledged; a sender that never ends the batch does not spoil it.
  }

  /**
   * Reads one block within `timeoutMs`: a header byte, then the block whole. Bytes that cannot
   * start a block are skipped (line noise, a key the operator pressed).
   */
  private async readBlock(timeoutMs: number, ctx: { first: boolean }): Promise<BlockRead> {
    const by = Math.min(Date.now() + timeoutMs, this.deadline);
    for (;;) {
      const h = await this.q.read(1, Math.max(0, by - Date.now()), by);
      if (h === "closed") return { kind: "closed" };
      if (h === "idle" || h === "deadline") return by >= this.deadline && Date.now() >= this.deadline ? { kind: "deadline" } : { kind: "timeout" };
      const b = h[0];
      if (b === XMODEM.SOH || b === XMODEM.STX) return this.readBody(b === XMODEM.STX ? 1024 : 128, ctx.first, this.q.arrivedAt);
      if (b === XMODEM.EOT) return { kind: "eot" };
      if (b === XMODEM.CAN) {
        const next = await this.q.read(1, this.o.charTimeoutMs, this.deadline);
        if (typeof next !== "string" && next[0] === XMODEM.CAN) return { kind: "cancel" };
        this.heard(XMODEM.CAN);
        if (typeof next !== "string") this.q.unshift(next[0]);
      } else if (ctx.first && b === XMODEM.CTRL_C) {
        return { kind: "interrupt" };
      } else {
        this.heard(b);
      }
      if (ctx.first && ZMODEM_HEADER.every((x, i) => this.noise[this.noise.length - ZMODEM_HEADER.length + i] === x)) return { kind: "zmodem" };
    }
  }

  /** The rest of a block after its header byte; the first block's length tells its check. */
  private async readBody(size: number, first: boolean, at: number): Promise<BlockRead> {
    const known = first ? 1 : this.crc ? 2 : 1;
    const body = await this.q.read(2 + size + known, this.o.charTimeoutMs, this.deadline);
    if (body === "closed" || body === "deadline") return { kind: body };
    if (body === "idle") return this.bad("a short block");
    let crc = this.crc;
    let trailer = body.subarray(2 + size);
    if (first) {
      // A CRC block has one more byte, and it follows at once; after a checksum block the
      // sender waits for our answer.
      const more = await this.q.read(1, this.o.charTimeoutMs, this.deadline);
      if (more === "closed" || more === "deadline") return { kind: more };
      crc = more !== "idle";
      if (crc) trailer = Uint8Array.of(trailer[0], (more as Uint8Array)[0]);
    }
    const seq = body[0];
    if (((seq ^ body[1]) & 0xff) !== 0xff) return this.bad(`block number ${seq} and its complement ${body[1]} disagree`);
    const data = body.subarray(2, 2 + size);
    if (crc) {
      if (crc16(data) !== ((trailer[0] << 8) | trailer[1])) return this.bad(`a CRC error in block ${seq}`);
    } else if (checksum8(data) !== trailer[0]) {
      return this.bad(`a checksum error in block ${seq}`);
    }
    return { kind: "block", seq, data, crc, at };
  }

  /** A damaged block: wait for the line to go quiet (the rest of it), then it is the caller's to NAK. */
  private async bad(why: string): Promise<BlockRead> {
    await this.q.purge(this.o.charTimeoutMs, this.o.blockTimeoutMs);
    return { kind: "bad", why };
  }

  private stop(r: BlockRead): never {
    switch (r.kind) {
      case "cancel":
        throw new Failure("cancelled by the sender (CAN CAN)", "sender", false);
      case "interrupt":
        throw new Failure("cancelled with Ctrl-C", "sender", false); // no sender runs to be told
      case "zmodem":
        throw new Failure("the sender speaks ZMODEM: send with YMODEM or XMODEM-1K (sz --ymodem --1k FILE)", "receiver", true);
      case "deadline":
        throw new Failure(`the transfer took longer than ${seconds(this.o.overallTimeoutMs)}`, "receiver", true);
      case "closed":
        throw new Failure("the line closed", "line", false);
      default:
        throw new Failure(`unexpected ${r.kind}`, "receiver", true);
    }
  }

  /** Block 0: "name NUL size [mtime [mode ...]] NUL ..."; undefined for the empty block that ends a batch. */
  private parseHeader(data: Uint8Array): YmodemHeader | undefined {
    if (data[0] === 0) return undefined;
    const nameEnd = data.indexOf(0);
    const name = new TextDecoder().decode(data.subarray(0, nameEnd < 0 ? data.length : nameEnd));
    if (nameEnd < 0) return { name };
    let infoEnd = data.indexOf(0, nameEnd + 1);
    if (infoEnd < 0) infoEnd = data.length;
    const fields = new TextDecoder().decode(data.subarray(nameEnd + 1, infoEnd)).trim().split(/\s+/);
    const header: YmodemHeader = { name };
    if (/^\d+$/.test(fields[0] ?? "")) header.size = Number(fields[0]);
    if (/^[0-7]+$/.test(fields[1] ?? "") && Number.parseInt(fields[1], 8) > 0) header.mtime = Number.parseInt(fields[1], 8) * 1000;
    return header;
  }

  private request(): number {
    return this.crc ? XMODEM.CRC : XMODEM.NAK;
  }

  private heard(b: number): void {
    this.noise.push(b);
    if (this.noise.length > 8) this.noise.shift();
  }

  private send(b: number): void {
    this.link.write(Uint8Array.of(b));
  }

  private sendCancel(): void {
    this.link.write(new Uint8Array(XMODEM.CANCEL_COUNT).fill(XMODEM.CAN));
  }
}

function concat(blocks: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

const fmt = (n: number): string => n.toLocaleString("en-US");

function seconds(ms: number): string {
  return ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 100) / 10} s`;
}
