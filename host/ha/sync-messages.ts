// The messages of the pair's sync channel (sync-channel.ts), and their checks. They travel in the
// same signed envelope as heartbeats; the envelope proves who sent them, these checks that they
// are well formed before anything acts on them. docs/ha-protocol.md describes each one.
import * as L from "../../assembly/layout.js";
import type { SyncFlow } from "./flow-sync.js";

export interface HelloMsg {
  type: "hello";
  node: string;
  bootId: string;
  role: string;
  configVersion: number;
  configDigest: string;
}

/** The sender's shared configuration (config-sync.ts), as JSON text. */
export interface ConfigMsg {
  type: "config";
  version: number;
  digest: string;
  input: string;
}

/** A flow as it travels: [family, key, service, backend, rule ("" = none), flags, port, leftMs, kind]. */
export type WireFlow = [number, Uint8Array, string, string, string, number, number, number, number];

export interface FlowsMsg {
  type: "flows";
  seq: number;
  flows: WireFlow[];
}

export interface AckMsg {
  type: "ack";
  seq: number;
}

/** Bracket a full copy of the flow tables; `total` flows were sent between begin and end. */
export interface ResyncMsg {
  type: "resync";
  phase: "begin" | "end";
  seq: number;
  total: number;
}

/** The active's resolved neighbours, so that a standby (which sends nothing) can forward at once. */
export interface NeighborsMsg {
  type: "neighbors";
  entries: [string, string, number][]; // ip, mac, port
}

export type SyncMsg = HelloMsg | ConfigMsg | FlowsMsg | AckMsg | ResyncMsg | NeighborsMsg;

export const MAX_FLOWS_PER_MESSAGE = 2048;

export function toWire(f: SyncFlow): WireFlow {
  return [f.family, f.key, f.service, f.backend, f.rule ?? "", f.flags, f.port, f.leftMs, f.kind];
}

export function fromWire(w: WireFlow): SyncFlow {
  const f: SyncFlow = { family: w[0] === 6 ? 6 : 4, key: w[1], service: w[2], backend: w[3], flags: w[5], port: w[6], leftMs: w[7], kind: w[8] };
  if (w[4]) f.rule = w[4];
  return f;
}

class Bad extends Error {}

const isInt = (v: unknown, min: number, max: number): v is number => typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
const isText = (v: unknown, max: number): v is string => typeof v === "string" && v.length <= max;

function need(ok: boolean, what: string): void {
  if (!ok) throw new Bad(what);
}

function flow(v: unknown, i: number): WireFlow {
  need(Array.isArray(v) && v.length === 9, `flows[${i}] is not a 9-item flow`);
  const a = v as unknown[];
  need(a[0] === 4 || a[0] === 6, `flows[${i}].family`);
  need(a[1] instanceof Uint8Array && a[1].length === (a[0] === 6 ? L.FLOW6_KEY : L.FLOW4_KEY), `flows[${i}].key`);
  need(isText(a[2], 64) && a[2].length > 0, `flows[${i}].service`);
  need(isText(a[3], 64) && a[3].length > 0, `flows[${i}].backend`);
  need(isText(a[4], 64), `flows[${i}].rule`);
  need(isInt(a[5], 0, 255), `flows[${i}].flags`);
  need(isInt(a[6], 0, 255), `flows[${i}].port`);
  need(isInt(a[7], 0, 0x7fffffff), `flows[${i}].leftMs`);
  need(isInt(a[8], 1, 3), `flows[${i}].kind`);
  return a as WireFlow;
}

/** A decoded value as a sync message, or the reason it is not one. */
export function checkSyncMsg(v: unknown): { ok: true; msg: SyncMsg } | { ok: false; reason: string } {
  try {
    need(typeof v === "object" && v !== null && !Array.isArray(v), "not a map");
    const o = v as Record<string, unknown>;
    switch (o.type) {
      case "hello":
        need(isText(o.node, 64) && isText(o.bootId, 64) && isText(o.role, 16), "hello: node, bootId, role");
        need(isInt(o.configVersion, 0, Number.MAX_SAFE_INTEGER) && isText(o.configDigest, 64), "hello: config version and digest");
        return { ok: true, msg: { type: "hello", node: o.node as string, bootId: o.bootId as string, role: o.role as string, configVersion: o.configVersion as number, configDigest: o.configDigest as string } };
      case "config":
        need(isInt(o.version, 0, Number.MAX_SAFE_INTEGER) && isText(o.digest, 64) && isText(o.input, 4 << 20), "config: version, digest, input");
        return { ok: true, msg: { type: "config", version: o.version as number, digest: o.digest as string, input: o.input as string } };
      case "flows": {
        need(isInt(o.seq, 0, Number.MAX_SAFE_INTEGER), "flows: seq");
        need(Array.isArray(o.flows) && (o.flows as unknown[]).length <= MAX_FLOWS_PER_MESSAGE, "flows: a list");
        return { ok: true, msg: { type: "flows", seq: o.seq as number, flows: (o.flows as unknown[]).map(flow) } };
      }
      case "ack":
        need(isInt(o.seq, 0, Number.MAX_SAFE_INTEGER), "ack: seq");
        return { ok: true, msg: { type: "ack", seq: o.seq as number } };
      case "resync":
        need((o.phase === "begin" || o.phase === "end") && isInt(o.seq, 0, Number.MAX_SAFE_INTEGER) && isInt(o.total, 0, Number.MAX_SAFE_INTEGER), "resync: phase, seq, total");
        return { ok: true, msg: { type: "resync", phase: o.phase as "begin" | "end", seq: o.seq as number, total: o.total as number } };
      case "neighbors": {
        need(Array.isArray(o.entries) && (o.entries as unknown[]).length <= 65536, "neighbors: a list");
        for (const e of o.entries as unknown[]) need(Array.isArray(e) && e.length === 3 && isText(e[0], 64) && isText(e[1], 17) && isInt(e[2], 0, L.MAX_PORTS - 1), "neighbors: [ip, mac, port]");
        return { ok: true, msg: { type: "neighbors", entries: o.entries as [string, string, number][] } };
      }
      default:
        throw new Bad(`unknown message type ${JSON.stringify(o.type)}`);
    }
  } catch (e) {
    if (e instanceof Bad) return { ok: false, reason: e.message };
    throw e;
  }
}
