// One Linux network interface as a board port, through libpcap (the `cap` package).
//
// What `cap` 0.2.1 on libpcap 1.10 forces, each checked on veth pairs (see the Linux board test):
// - Direction. cap has no pcap_setdirection, and libpcap's `inbound` filter loses the first frame
//   after open: libpcap re-runs a newly set filter in user space on one ring slot, where the
//   direction test can never pass. So this port relies on the kernel never looping a packet
//   socket's own sends back to it, and drops frames carrying the port's own source MAC (what the
//   kernel stack sends) in the BPF filter and again here. Frames other programs send out of the
//   same interface with a foreign source MAC would be seen as received: the box owns its ports.
// - Ring size. libpcap sizes each slot of the kernel ring for the MTU only when segmentation and
//   receive offloads are off; with any of them on, every slot takes 64 KiB and a few MB hold ~60
//   frames. GRO would also merge frames into ones larger than the MTU that could not be
//   forwarded. So open() turns GRO, LRO, TSO and GSO off with ethtool. Set the MTU before opening:
//   the kernel cuts frames longer than the slot it sized at open time, and cap cannot tell.
// - Batches. cap emits one event per frame while it drains the ring in one native loop; frames
//   are collected and handed over once the loop ends (setImmediate runs right after the poll
//   phase), or every MAX_BATCH frames so that a long drain never holds an unbounded batch. That
//   loop only ends when the ring is empty: while frames arrive faster than they are handled, no
//   other JavaScript (timers, I/O) runs in this thread.
// - Native hazards. A Cap object must never be garbage-collected: after a failed open its
//   destructor stops an uninitialised libuv handle (abort), and a closed one would leave its freed
//   handle in libuv's list. So every Cap created stays in `retained` for the life of the process.
//   (cap also prints "Warning: <dev>: no IPv4 address assigned" on stderr at every open: harmless.)
//   cap also aborts the process if the interface is set down or removed while open (an assert in
//   its poll callback): carrier loss is fine, `ip link set down` is not. cap registers its poll
//   handle on the main loop, so ports cannot live in a worker thread.
// - Immediate mode (no waiting for a ring block to fill) is on: cap finds pcap_set_immediate_mode
//   with dlsym, which works with or without libpcap-dev's libpcap.so symlink.
// - Kernel ring drops are invisible through cap (no pcap_stats); rxDropped counts what this port
//   itself drops.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { BoardPort, Frame } from "../types.js";

export interface PcapPortOptions {
  /** Kernel ring size in bytes (libpcap buffer size). */
  bufferBytes?: number;
  /** Largest frame delivered whole; longer ones are dropped and counted as truncated. */
  snaplen?: number;
}

export interface PcapPortStats {
  rxFrames: number;
  txFrames: number;
  txErrors: number;
  /** Frames received but not delivered: truncated, or arrived before start(). */
  rxDropped: number;
  /** Frames longer than the snaplen (also counted in rxDropped). */
  rxTruncated: number;
  /** Frames carrying the port's own source MAC: its own kernel's transmissions. Not delivered. */
  rxOwnMac: number;
  /** Deliveries to the listener: rxFrames / rxBatches is the mean batch size. */
  rxBatches: number;
}

/** 8 MiB: ~5000 slots at MTU 1500, ~900 at MTU 9000 (libpcap slots are MTU + ~100 bytes). */
const DEFAULT_BUFFER_BYTES = 8 << 20;
/** libpcap's snapshot length as cap sets it; frames up to this size are delivered whole. */
const CAP_SNAPLEN = 65535;
/** Frames handed over at once at most while cap is still draining the ring. */
const MAX_BATCH = 256;
const ETH_HEADER_BYTES = 14;
/** Linux IFNAMSIZ - 1. */
const MAX_IFNAME_CHARS = 15;

/** The part of cap's native Cap object used here. */
interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  close(): boolean;
  send(frame: Uint8Array): void;
  on(event: "packet", listener: (nbytes: number, truncated: boolean) => void): unknown;
}

interface CapModule {
  Cap: new () => CapHandle;
}

let capModule: CapModule | undefined;

/** cap is loaded on first use, so that the rest of the firmware runs where it failed to build. */
function loadCap(): CapModule {
  if (capModule === undefined) {
    try {
      capModule = createRequire(import.meta.url)("cap") as CapModule;
    } catch (err) {
      throw new Error(
        "the Linux board needs the cap package built against libpcap: apt-get install -y libpcap-dev && npm rebuild cap" +
          ` (${(err as Error).message})`,
        { cause: err },
      );
    }
  }
  return capModule;
}

/** Every Cap ever created: see "Native hazards" at the top. */
const retained: CapHandle[] = [];

export class PcapPort implements BoardPort {
  readonly name: string;
  readonly device: string;
  readonly mac: Uint8Array;

  private readonly cap: CapHandle;
  /** cap copies each frame here without holding a reference: this one keeps it alive while open. */
  private buffer: Buffer | undefined;
  /** A plain Uint8Array over `buffer`, so that slice() copies. */
  private readonly view: Uint8Array;
  private listener: ((frames: Frame[]) => void) | undefined;
  private pending: Frame[] = [];
  private flushScheduled = false;
  private closed = false;
  private readonly counters: PcapPortStats = {
    rxFrames: 0,
    txFrames: 0,
    txErrors: 0,
    rxDropped: 0,
    rxTruncated: 0,
    rxOwnMac: 0,
    rxBatches: 0,
  };

  /**
   * Opens `device` in promiscuous, immediate mode. Throws an Error naming the device when it does
   * not exist, is down, or the process lacks the privileges.
   */
  static open(name: string, device: string, opts: PcapPortOptions = {}): PcapPort {
    const bufferBytes = opts.bufferBytes ?? DEFAULT_BUFFER_BYTES;
    const snaplen = opts.snaplen ?? CAP_SNAPLEN;
    if (!Number.isInteger(bufferBytes) || bufferBytes < 1 << 16 || bufferBytes > 1 << 30) {
      throw new RangeError(`port ${name}: bufferBytes ${bufferBytes} is not an integer from 65536 to 2^30`);
    }
    if (!Number.isInteger(snaplen) || snaplen < ETH_HEADER_BYTES || snaplen > CAP_SNAPLEN) {
      throw new RangeError(`port ${name}: snaplen ${snaplen} is not an integer from ${ETH_HEADER_BYTES} to ${CAP_SNAPLEN}`);
    }
    const mac = readMac(device);
    const { Cap } = loadCap();
    if (!hasNetRaw()) throw new Error(`opening network interface ${device} needs root or CAP_NET_RAW`);
    turnOffOffloads(device);

    const cap = new Cap();
    retained.push(cap);
    const buffer = Buffer.alloc(snaplen);
    try {
      cap.open(device, `not ether src ${macText(mac)}`, bufferBytes, buffer);
    } catch (err) {
      throw openError(device, err);
    }
    return new PcapPort(name, device, mac, cap, buffer);
  }

  private constructor(name: string, device: string, mac: Uint8Array, cap: CapHandle, buffer: Buffer) {
    this.name = name;
    this.device = device;
    this.mac = mac;
    this.cap = cap;
    this.buffer = buffer;
    this.view = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    cap.on("packet", this.onPacket);
  }

  start(onFrames: (frames: Frame[]) => void): void {
    if (this.closed) throw new Error(`port ${this.name} (${this.device}) is closed`);
    this.listener = onFrames;
  }

  /** Sends each frame; a frame the kernel refuses (too long, link down ...) is counted, never thrown. */
  send(frames: readonly Frame[]): number {
    if (this.closed) {
      this.counters.txErrors += frames.length;
      return 0;
    }
    let sent = 0;
    for (let i = 0; i < frames.length; i++) {
      // cap reports a failed pcap_sendpacket only by throwing.
      try {
        this.cap.send(frames[i]);
        sent++;
      } catch {
        this.counters.txErrors++;
      }
    }
    this.counters.txFrames += sent;
    return sent;
  }

  stats(): PcapPortStats {
    return { ...this.counters };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cap.close();
    this.counters.rxDropped += this.pending.length;
    this.pending = [];
    this.listener = undefined;
    this.buffer = undefined; // cap no longer writes to it once closed
  }

  /** cap's per-frame event: the frame is in `view`, and is overwritten by the next one. */
  private readonly onPacket = (nbytes: number, truncated: boolean): void => {
    if (this.closed) return;
    const c = this.counters;
    if (truncated) {
      c.rxTruncated++;
      c.rxDropped++;
      return;
    }
    const v = this.view;
    const m = this.mac;
    if (nbytes >= ETH_HEADER_BYTES && v[6] === m[0] && v[7] === m[1] && v[8] === m[2] && v[9] === m[3] && v[10] === m[4] && v[11] === m[5]) {
      c.rxOwnMac++;
      return;
    }
    if (this.listener === undefined) {
      c.rxDropped++;
      return;
    }
    this.pending.push(v.slice(0, nbytes));
    if (this.pending.length >= MAX_BATCH) {
      this.flush();
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  };

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const frames = this.pending;
    if (frames.length === 0 || this.listener === undefined) return;
    this.pending = [];
    this.counters.rxFrames += frames.length;
    this.counters.rxBatches++;
    this.listener(frames);
  };
}

/** The interface's own MAC, which also proves the interface exists in this network namespace. */
function readMac(device: string): Uint8Array {
  if (device.length === 0 || device.length > MAX_IFNAME_CHARS || device.includes("/") || device === "." || device === "..") {
    throw new Error(`no network interface ${JSON.stringify(device)}: not a valid interface name`);
  }
  let text: string;
  try {
    text = readFileSync(`/sys/class/net/${device}/address`, "utf8").trim();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === "ENOENT" ? "not found in /sys/class/net" : e.message;
    throw new Error(`no network interface ${device}: ${why}`, { cause: err });
  }
  const bytes = text.split(":").map((h) => Number.parseInt(h, 16));
  if (bytes.length !== 6 || bytes.some((b) => !(b >= 0 && b <= 255))) {
    throw new Error(`network interface ${device} has no Ethernet address (${JSON.stringify(text)})`);
  }
  return Uint8Array.from(bytes);
}

function macText(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/** Root, or CAP_NET_RAW in the effective set (bit 13 of CapEff). */
function hasNetRaw(): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    const line = readFileSync("/proc/self/status", "utf8").match(/^CapEff:\s*([0-9a-f]+)$/m);
    return line !== null && (BigInt(`0x${line[1]}`) & (1n << 13n)) !== 0n;
  } catch {
    return true; // unknown: let libpcap say
  }
}

/** Offloads libpcap looks at when it sizes the ring, and that make the kernel merge frames. */
const OFFLOADS = [
  ["gro", "generic-receive-offload"],
  ["lro", "large-receive-offload"],
  ["tso", "tcp-segmentation-offload"],
  ["gso", "generic-segmentation-offload"],
] as const;

function turnOffOffloads(device: string): void {
  const hint = "the Linux board turns offloads off with ethtool (apt-get install -y ethtool; needs root or CAP_NET_ADMIN)";
  let current: string;
  try {
    current = ethtool(["-k", device]);
  } catch (err) {
    throw new Error(`cannot read the offloads of network interface ${device}: ${toolError(err)}; ${hint}`, { cause: err });
  }
  const on = OFFLOADS.filter(([, long]) => new RegExp(`^${long}: on`, "m").test(current));
  if (on.length === 0) return;
  try {
    ethtool(["-K", device, ...on.flatMap(([short]) => [short, "off"])]);
  } catch (err) {
    throw new Error(`cannot turn off ${on.map(([short]) => short).join(", ")} on network interface ${device}: ${toolError(err)}; ${hint}`, {
      cause: err,
    });
  }
}

/** ethtool lives in /usr/sbin, which is not on every PATH. */
function ethtool(args: string[]): string {
  for (const bin of ["ethtool", "/usr/sbin/ethtool", "/sbin/ethtool"]) {
    try {
      return execFileSync(bin, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  throw Object.assign(new Error("ethtool not found"), { code: "ENOENT" });
}

function toolError(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr ?? "").trim() || (e.message ?? String(err));
}

/** libpcap's messages do not always name the device, and never say what to do. */
function openError(device: string, err: unknown): Error {
  const msg = err instanceof Error ? err.message : String(err);
  if (/No such device/i.test(msg)) return new Error(`no network interface ${device}: ${msg}`, { cause: err });
  if (/not permitted|permission/i.test(msg)) return new Error(`opening network interface ${device} needs root or CAP_NET_RAW: ${msg}`, { cause: err });
  if (/not up/i.test(msg)) return new Error(`network interface ${device} is down (ip link set ${device} up): ${msg}`, { cause: err });
  return new Error(`cannot capture on network interface ${device}: ${msg}`, { cause: err });
}
