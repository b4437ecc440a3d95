// Frames of the pair's sync channel: sync-messages.ts in the signed envelope (host/wire/envelope.ts),
// with a version of their own so that a heartbeat or an advertisement is never taken for one, and
// the replay check per sender: a recorded connection played back later is stale, and frames
// repeated within one connection are replayed.
import { Envelope, type AuthKey } from "../wire/envelope.js";
import { FieldError } from "../wire/fields.js";
import { ReplayGuard } from "../discovery/replay.js";
import { MAX_FRAME_BYTES, type FrameCodec } from "./sync-channel.js";
import { checkSyncMsg, type SyncMsg } from "./sync-messages.js";

/** The sync channel's envelope version (heartbeats are version 1 of their own format). */
export const SYNC_PROTOCOL_VERSION = 1001;

const ENVELOPE = new Envelope<SyncMsg>({
  version: SYNC_PROTOCOL_VERSION,
  maxBytes: MAX_FRAME_BYTES,
  message(v, path) {
    const r = checkSyncMsg(v);
    if (!r.ok) throw new FieldError(path, r.reason);
    return r.msg;
  },
});

export interface SyncCodecOptions {
  node: string;
  /** Keys frames may be signed with; the highest id signs. */
  keys: readonly AuthKey[];
  now?: () => number;
}

/** A codec for one node's end of the channel: signs with its node id, checks the peer's. */
export function syncCodec(o: SyncCodecOptions): FrameCodec<SyncMsg> {
  const now = o.now ?? Date.now;
  const keys = new Map(o.keys.map((k) => [k.id, k.secret]));
  const signing = [...o.keys].sort((a, b) => b.id - a.id)[0];
  if (!signing) throw new Error("ha sync: no key to sign with");
  const guard = new ReplayGuard({ now });
  let seq = now();
  return {
    encode: (msg) => ENVELOPE.encode(msg, signing, seq++, now(), o.node),
    decode(bytes) {
      const r = ENVELOPE.decode(bytes, keys);
      if (!r.ok) return { ok: false, reason: r.reason };
      if (r.sender === o.node) return { ok: false, reason: "own-node" };
      const verdict = guard.check(r.sender, r.seq, r.time);
      if (verdict !== "ok") return { ok: false, reason: verdict };
      return { ok: true, msg: r.msg };
    },
  };
}
