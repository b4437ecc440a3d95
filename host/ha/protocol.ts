// The redundant pair's wire format: HEARTBEAT in the signed envelope of host/wire/envelope.ts (the
// one service advertisements use: CBOR, HMAC-SHA256 with key ids, seq + time for the replay
// window). docs/ha-protocol.md is the written protocol; this file is its one implementation.
//
// The two protocols share the envelope and version 1 but no message type, so an advertisement
// never passes for a heartbeat nor the reverse, even under a key configured for both (bad-field
// at msg.type). A heartbeat must also name its envelope's sender as its node.

import { Envelope, KEY_ID_MAX, type AuthKey, type Opened } from "../wire/envelope.js";
import { FieldError, bool, id, int, list, need, oneOf, record } from "../wire/fields.js";

export const HA_PROTOCOL_VERSION = 1;
/** A heartbeat is about 300 bytes; the bound keeps decode work small and the datagram unfragmented. */
export const HA_MAX_DATAGRAM_BYTES = 1024;
export const HA_DEFAULT_PORT = 7788;

export const HA_STATES = ["init", "standby", "active", "preempting"] as const;
export type HaState = (typeof HA_STATES)[number];

/** Bounds of the heartbeat's fields (the configuration's are the same or narrower). */
export const HA_LIMITS = {
  priority: { min: 1, max: 254 },
  intervalMs: { min: 10, max: 10_000 },
  keyIds: 16,
} as const;

/** configDigest before the host has told the node its configuration. */
export const UNKNOWN_DIGEST = "0".repeat(64);

/** HEARTBEAT: who the sender is, what it is, and what it holds; sent on every link every interval and at once on a change. */
export interface HeartbeatMsg {
  type: "heartbeat";
  /** The sender's node id; equal to the envelope's sender. */
  node: string;
  /** Random per start of the sender's heartbeat service: a new one means the peer restarted and lost its state. */
  bootId: string;
  state: HaState;
  priority: number;
  /** The sender holds the full flow state of the pair (always true while active). */
  ready: boolean;
  /** The operator holds the sender in standby: it will not become active. */
  maintenance: boolean;
  configVersion: number;
  /** SHA-256 of the sender's running configuration, 64 lowercase hex digits. */
  configDigest: string;
  /** How often the sender sends: the receiver's dead timer is its deadCount times this. */
  intervalMs: number;
  /** Name of the link the datagram was sent on. */
  link: string;
  /** Ids of the keys the sender accepts, ascending: each side signs with the highest both hold. */
  keyIds: number[];
}

export type HaMessage = HeartbeatMsg;
export type HaDecodeResult = Opened<HaMessage>;

const HEX64 = /^[0-9a-f]{64}$/;

function message(v: unknown, p: string): HaMessage {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new FieldError(p, "must be a map");
  oneOf((v as Record<string, unknown>).type, `${p}.type`, ["heartbeat"] as const);
  const o = record(v, p, ["type", "node", "bootId", "state", "priority", "ready", "maintenance", "configVersion", "configDigest", "intervalMs", "link", "keyIds"]);
  const f = (k: string): string => `${p}.${k}`;
  const digest = need(o, "configDigest", p);
  if (typeof digest !== "string" || !HEX64.test(digest)) throw new FieldError(f("configDigest"), "must be 64 lowercase hex digits");
  const keyIds = list(need(o, "keyIds", p), f("keyIds"), 1, HA_LIMITS.keyIds, (x, q) => int(x, q, 0, KEY_ID_MAX));
  keyIds.forEach((k, i) => {
    if (i > 0 && k <= keyIds[i - 1]!) throw new FieldError(`${f("keyIds")}[${i}]`, "must be above the one before (ascending, each once)");
  });
  return {
    type: "heartbeat",
    node: id(need(o, "node", p), f("node")),
    bootId: id(need(o, "bootId", p), f("bootId")),
    state: oneOf(need(o, "state", p), f("state"), HA_STATES),
    priority: int(need(o, "priority", p), f("priority"), HA_LIMITS.priority.min, HA_LIMITS.priority.max),
    ready: bool(need(o, "ready", p), f("ready")),
    maintenance: bool(need(o, "maintenance", p), f("maintenance")),
    configVersion: int(need(o, "configVersion", p), f("configVersion"), 0, Number.MAX_SAFE_INTEGER),
    configDigest: digest,
    intervalMs: int(need(o, "intervalMs", p), f("intervalMs"), HA_LIMITS.intervalMs.min, HA_LIMITS.intervalMs.max),
    link: id(need(o, "link", p), f("link")),
    keyIds,
  };
}

const ENVELOPE = new Envelope<HaMessage>({ version: HA_PROTOCOL_VERSION, maxBytes: HA_MAX_DATAGRAM_BYTES, message });

/** Encodes and signs a heartbeat; the sender is its node. Throws a RangeError naming a bad field (a caller's bug). */
export function encodeHa(msg: HaMessage, key: AuthKey, seq: number, now: number): Uint8Array {
  return ENVELOPE.encode(msg, key, seq, now, msg.node);
}

/** Verifies and decodes one datagram. Never throws. */
export function decodeHa(bytes: Uint8Array, keys: ReadonlyMap<number, Uint8Array>): HaDecodeResult {
  const r = ENVELOPE.decode(bytes, keys);
  if (r.ok && r.msg.node !== r.sender) return { ok: false, reason: "bad-field", detail: `msg.node: ${r.msg.node} is not the envelope's sender ${r.sender}` };
  return r;
}

/**
 * The key to sign with: the highest id that both this node and the peer hold (the peer's from its
 * last heartbeat), else this node's highest. A key added on one side first is not used until the
 * other has it, and a key removed on one side stops being used by the other within one heartbeat.
 */
export function pickKey(own: readonly AuthKey[], peerKeyIds: readonly number[] | undefined): AuthKey | undefined {
  let best: AuthKey | undefined;
  for (const k of own) {
    if (peerKeyIds !== undefined && !peerKeyIds.includes(k.id)) continue;
    if (best === undefined || k.id > best.id) best = k;
  }
  if (best !== undefined || peerKeyIds === undefined) return best;
  return pickKey(own, undefined);
}
