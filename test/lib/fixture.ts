// A data-plane fixture: one engine, frames sent one at a time on named ports, and what became of
// each (transmitted on a port, punted, or dropped with a reason). Every frame a fixture transmits
// is kept so that a test can hand them all to tshark at the end.
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Engine, DROP_REASON_NAMES, PUNT_REASON_NAMES, fateIdentityHolds, type CounterSnapshot } from "../../host/engine/index.js";
import { validateOrThrow } from "../../host/config/validate.js";
import type { ConfigInput } from "../../host/config/schema.js";
import { writePcap } from "../../tools/lib/pcap.js";
import { validatePcap } from "./tshark.js";

export type Outcome =
  | { fate: "tx"; port: string; frame: Uint8Array }
  | { fate: "punt"; reason: string; frame: Uint8Array }
  | { fate: "drop"; reason: string };

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** Every frame transmitted by every fixture of a test file, labelled, for one tshark pass. */
export const transmitted: { label: string; frame: Uint8Array }[] = [];

export class Fixture {
  clockMs = 1_000;
  private constructor(readonly name: string, readonly engine: Engine) {}

  static async create(name: string, config: ConfigInput, seed = 7): Promise<Fixture> {
    const engine = await Engine.create(validateOrThrow(config), { seed });
    const f = new Fixture(name, engine);
    engine.clock = f.clockMs;
    return f;
  }

  apply(config: ConfigInput): void {
    this.engine.apply(validateOrThrow(config));
  }

  advance(seconds: number): void {
    this.clockMs += seconds * 1000;
    this.engine.clock = this.clockMs;
  }

  portIndex(name: string): number {
    const p = this.engine.config.ports.find((x) => x.name === name);
    if (!p) throw new Error(`no port ${name}`);
    return p.index;
  }

  /** Sends one frame in on a port; returns what became of it (exactly one outcome). */
  send(port: string, frame: Uint8Array): Outcome {
    const e = this.engine;
    assert.ok(e.rxPush(this.portIndex(port), frame), "the engine took the frame");
    e.runAll();
    const outcomes: Outcome[] = [];
    const names = e.config.ports;
    e.drainTx((x) => {
      outcomes.push({ fate: "tx", port: names[x.port]?.name ?? `#${x.port}`, frame: x.frame.slice() });
      transmitted.push({ label: `${this.name} #${transmitted.length}`, frame: x.frame.slice() });
    });
    e.drainPunt((x) => void outcomes.push({ fate: "punt", reason: PUNT_REASON_NAMES[x.reason] ?? `${x.reason}`, frame: x.frame.slice() }));
    e.drainDropped((x) => void outcomes.push({ fate: "drop", reason: DROP_REASON_NAMES[x.reason] ?? `${x.reason}` }));
    assert.equal(outcomes.length, 1, `one frame in, one outcome out: got ${JSON.stringify(outcomes.map((o) => o.fate))}`);
    this.assertIdentity(); // after every frame of every fixture
    return outcomes[0];
  }

  /** Sends and asserts the frame left on `port` exactly as `expected`. */
  expectTx(port: string, frame: Uint8Array, expected: Uint8Array, what = ""): Uint8Array {
    const o = this.send(port, frame);
    assert.equal(o.fate, "tx", `${what}: expected a transmitted frame, got ${JSON.stringify(o)}`);
    if (o.fate !== "tx") throw new Error("unreachable");
    assert.equal(hex(o.frame), hex(expected), `${what}: frame bytes`);
    return o.frame;
  }

  /** Sends and returns the egress port and frame, whatever they are (tx expected). */
  forward(port: string, frame: Uint8Array): { port: string; frame: Uint8Array } {
    const o = this.send(port, frame);
    if (o.fate !== "tx") assert.fail(`expected a transmitted frame, got ${JSON.stringify(o)}`);
    return o;
  }

  expectDrop(port: string, frame: Uint8Array, reason: string): void {
    const o = this.send(port, frame);
    assert.deepEqual({ fate: o.fate, reason: "reason" in o ? o.reason : undefined }, { fate: "drop", reason });
  }

  expectPunt(port: string, frame: Uint8Array, reason: string): void {
    const o = this.send(port, frame);
    assert.deepEqual({ fate: o.fate, reason: "reason" in o ? o.reason : undefined }, { fate: "punt", reason });
  }

  counters(): CounterSnapshot {
    return this.engine.counters();
  }

  /** rx = tx + punt + drop, and the drop reasons add up to drop. */
  assertIdentity(): void {
    const c = this.counters();
    assert.ok(fateIdentityHolds(c), `fate identity: ${JSON.stringify({ rx: c.rx, tx: c.tx, punt: c.punt, drop: c.drop, drops: c.drops })}`);
  }
}

/** Writes every transmitted frame to a pcap and has tshark check them all; returns the problems. */
export async function tsharkProblems(frames: { label: string; frame: Uint8Array }[]): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), "fsw-fixtures-"));
  try {
    const problems: string[] = [];
    const errors = frames.filter((f) => isIcmpError(f.frame));
    const others = frames.filter((f) => !isIcmpError(f.frame));
    for (const [name, set] of [["out", others], ["icmp-errors", errors]] as const) {
      if (!set.length) continue;
      const path = join(dir, `${name}.pcap`);
      await writeFile(path, writePcap(set.map((f, i) => ({ tsUs: 1_000_000 + i, data: f.frame }))));
      const r = await validatePcap(path, { quotedErrors: set === errors });
      assert.equal(r.frames, set.length, "tshark read every frame");
      for (const p of r.problems) {
        const n = /frame (\d+)/.exec(p);
        problems.push(n ? `${set[Number(n[1]) - 1]?.label}: ${p}` : p);
      }
    }
    return problems;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** An ICMPv4 (destination unreachable, time exceeded, parameter problem) or ICMPv6 error frame. */
function isIcmpError(f: Uint8Array): boolean {
  let off = 12;
  let et = (f[off] << 8) | f[off + 1];
  while (et === 0x8100 || et === 0x88a8) {
    off += 4;
    et = (f[off] << 8) | f[off + 1];
  }
  const ip = off + 2;
  if (et === 0x0800) return f[ip + 9] === 1 && [3, 11, 12].includes(f[ip + (f[ip] & 15) * 4]);
  if (et === 0x86dd) return f[ip + 6] === 58 && f[ip + 40] >= 1 && f[ip + 40] <= 4;
  return false;
}

/** The engine's flow key for IPv4 (src, dst, sport, dport, proto), as the data plane lays it out. */
export function flowKey4(src: Uint8Array, dst: Uint8Array, sport: number, dport: number, proto: number): Uint8Array {
  const k = new Uint8Array(16);
  k.set(src, 0);
  k.set(dst, 4);
  new DataView(k.buffer).setUint16(8, sport, false);
  new DataView(k.buffer).setUint16(10, dport, false);
  new DataView(k.buffer).setUint32(12, proto, true);
  return k;
}

export function flowKey6(src: Uint8Array, dst: Uint8Array, sport: number, dport: number, proto: number): Uint8Array {
  const k = new Uint8Array(40);
  k.set(src, 0);
  k.set(dst, 16);
  new DataView(k.buffer).setUint16(32, sport, false);
  new DataView(k.buffer).setUint16(34, dport, false);
  new DataView(k.buffer).setUint32(36, proto, true);
  return k;
}
