// The door heartbeats come in by: a datagram is verified and decoded (host/ha/protocol.ts), then
// checked against replay (ReplayGuard, the advertisements' window), and only then handed on.
// Every refusal is counted by reason and by source address, with the reason names of the
// discovery registry, so `show ha` reads like `show discovery`.

import { countBySource } from "../wire/refusals.js";
import { ReplayGuard, type ReplayVerdict } from "../discovery/replay.js";
import type { EnvelopeFailure } from "../wire/envelope.js";
import { decodeHa, type HeartbeatMsg } from "./protocol.js";

export type RejectReason = EnvelopeFailure | Exclude<ReplayVerdict, "ok">;
export const REJECT_REASONS: readonly RejectReason[] = ["malformed", "unknown-key", "bad-mac", "unsupported-version", "bad-field", "replayed", "stale", "future"];

export interface InboxOptions {
  /** This node's id: a heartbeat carrying it is our own, looped back, or a twin with the same id. */
  node: string;
  keys: ReadonlyMap<number, Uint8Array>;
  /** Wall clock for the replay window's time test; default Date.now. */
  now?: () => number;
  /** Accepted clock difference either way, ms (default 30 000, as for advertisements). */
  windowMs?: number;
}

export interface InboxStats {
  accepted: number;
  rejected: Record<RejectReason, number>;
  /** By source ("address:port"), only the reasons that occurred. */
  rejectedBy: Record<string, Partial<Record<RejectReason, number>>>;
  /** Valid heartbeats carrying this node's own id (a loop, or a peer configured with the same node id). */
  ownNode: number;
}

export type Admitted = { ok: true; hb: HeartbeatMsg; seq: number; keyId: number } | { ok: false; reason: RejectReason | "own-node"; detail: string };

export class HeartbeatInbox {
  private node: string;
  private keys: ReadonlyMap<number, Uint8Array>;
  private readonly guard: ReplayGuard;
  private readonly counts = {
    accepted: 0,
    ownNode: 0,
    rejected: Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>,
    rejectedBy: new Map<string, Partial<Record<RejectReason, number>>>(),
  };

  constructor(opts: InboxOptions) {
    this.node = opts.node;
    this.keys = opts.keys;
    this.guard = new ReplayGuard({ now: opts.now ?? Date.now, windowMs: opts.windowMs ?? 30_000, maxSenders: 64 });
  }

  /** New keys or node id; the replay state is kept (a sender's numbers only ever grow). */
  configure(node: string, keys: ReadonlyMap<number, Uint8Array>): void {
    this.node = node;
    this.keys = keys;
  }

  admit(bytes: Uint8Array, from: string): Admitted {
    const r = decodeHa(bytes, this.keys);
    if (!r.ok) return this.reject(r.reason, from, r.detail);
    if (r.sender === this.node) {
      // checked before the replay window: our own numbers must not enter it as a "peer's"
      this.counts.ownNode++;
      return { ok: false, reason: "own-node", detail: `heartbeat from ${from} carries this node's own id ${r.sender}` };
    }
    const verdict = this.guard.check(r.sender, r.seq, r.time);
    if (verdict !== "ok") return this.reject(verdict, from, `seq ${r.seq} time ${r.time} from ${r.sender}`);
    this.counts.accepted++;
    return { ok: true, hb: r.msg, seq: r.seq, keyId: r.keyId };
  }

  stats(): InboxStats {
    return {
      accepted: this.counts.accepted,
      rejected: { ...this.counts.rejected },
      rejectedBy: Object.fromEntries([...this.counts.rejectedBy].map(([k, v]) => [k, { ...v }])),
      ownNode: this.counts.ownNode,
    };
  }

  private reject(reason: RejectReason, from: string, detail: string): Admitted {
    this.counts.rejected[reason]++;
    countBySource(this.counts.rejectedBy, from, reason);
    return { ok: false, reason, detail };
  }
}
