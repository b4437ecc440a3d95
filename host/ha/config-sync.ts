// What the two appliances of a pair share of their configuration, and what stays each node's own.
//
// Shared (the active's wins, replicated on every commit): services, backends, flow rules, the data
// plane's sizes and timeouts, discovery, telemetry, SNMP, and each port's addresses and gateways,
// which move with the active (it announces them on takeover).
// Each node's own: `system` (hostname, users, time), `management` (its own address for checks),
// `ha` (node id, priority, links), and each port's `mac` and `device` (the box's own hardware).
//
// A shared configuration carries a version (the commit's wall-clock time in ms, so that after a
// split the newer one is known) and a digest (SHA-256 of its canonical JSON) that heartbeats carry.
import { createHash } from "node:crypto";
import type { ConfigInput } from "../config/schema.js";

/** Top-level sections that stay with the node. */
export const NODE_SECTIONS = ["system", "management", "ha"] as const;
/** Port fields that stay with the node. */
export const NODE_PORT_FIELDS = ["mac", "device"] as const;

/** The shared part of a configuration: the node's own sections and port fields removed. */
export function sharedPart(input: ConfigInput): ConfigInput {
  const out: Record<string, unknown> = { ...(input as unknown as Record<string, unknown>) };
  for (const k of NODE_SECTIONS) delete out[k];
  if (Array.isArray(input.ports)) {
    out.ports = input.ports.map((p) => {
      const q: Record<string, unknown> = { ...(p as unknown as Record<string, unknown>) };
      for (const k of NODE_PORT_FIELDS) delete q[k];
      return q;
    });
  }
  return out as unknown as ConfigInput;
}

/** JSON with object keys sorted, so that equal configurations have equal text and digest. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

export function digestOf(shared: ConfigInput): string {
  return createHash("sha256").update(canonicalJson(shared)).digest("hex");
}

export type MergeResult = { ok: true; input: ConfigInput } | { ok: false; message: string };

/**
 * The peer's shared configuration with this node's own parts: its sections, and each port's mac
 * and device by port name. A port the peer has and this node lacks cannot run here.
 */
export function mergeShared(local: ConfigInput, shared: ConfigInput): MergeResult {
  const out: Record<string, unknown> = { ...(shared as unknown as Record<string, unknown>) };
  for (const k of NODE_SECTIONS) {
    const v = (local as unknown as Record<string, unknown>)[k];
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  const mine = new Map((local.ports ?? []).map((p) => [p.name, p]));
  const ports = [];
  for (const p of shared.ports ?? []) {
    const own = mine.get(p.name);
    if (!own) return { ok: false, message: `the peer's configuration has port ${p.name}, which this node does not have (its ports: ${[...mine.keys()].join(", ") || "none"})` };
    const q: Record<string, unknown> = { ...(p as unknown as Record<string, unknown>) };
    for (const k of NODE_PORT_FIELDS) {
      const v = (own as unknown as Record<string, unknown>)[k];
      if (v === undefined) delete q[k];
      else q[k] = v;
    }
    ports.push(q);
  }
  out.ports = ports;
  return { ok: true, input: out as unknown as ConfigInput };
}

/** Does `next` change anything but this node's own parts, compared with `current`? */
export function changesShared(current: ConfigInput, next: ConfigInput): boolean {
  return digestOf(sharedPart(current)) !== digestOf(sharedPart(next));
}
