// Replay protection for authenticated advertisements: a timestamp window plus, per sender, an
// IPsec-style sliding window over sequence numbers (RFC 4303 section 3.4.3, 64 wide).
//
// A datagram is accepted once if its timestamp is within now ± windowMs and its sequence number is
// either above the highest seen or one of the 64 below it not yet seen. Sequence numbers more than
// 63 below the highest are refused as "replayed": they cannot be told apart from a replay.
//
// Memory is bounded without weakening the check: a sender's state is kept only while some message
// it sent could still pass the timestamp test. Once the newest timestamp seen from a sender is older
// than now - windowMs, every message it ever sent is "stale", so its state can go. Past maxSenders
// (only key holders get here: the MAC is checked first) the least recently heard sender is dropped,
// which reopens its last window's messages to one replay each; that is counted in forcedEvictions.

export type ReplayVerdict = "ok" | "replayed" | "stale" | "future";

export interface ReplayGuardOptions {
  /** Accepted clock difference either way, and how long a silent sender's state is kept. Default 30 000. */
  windowMs?: number;
  /** Clock in ms; default Date.now. */
  now?: () => number;
  /** Senders tracked at most; default 65 536 (about 100 bytes each). */
  maxSenders?: number;
}

/** Width of the sequence-number window, as in IPsec's anti-replay window. */
export const REPLAY_WINDOW_BITS = 64;
const WINDOW_MASK = (1n << BigInt(REPLAY_WINDOW_BITS)) - 1n;

interface SenderState {
  /** Highest sequence number accepted. */
  top: number;
  /** Bit i set: sequence number top - i was accepted. */
  seen: bigint;
  /** Newest message timestamp accepted; decides when the state may be forgotten. */
  newestTime: number;
}

export class ReplayGuard {
  readonly windowMs: number;
  readonly maxSenders: number;
  private readonly now: () => number;
  /** Insertion order = least recently accepted first. */
  private readonly senders = new Map<string, SenderState>();
  private lastSweep = -Infinity;
  /** Senders dropped by the maxSenders bound while their state still mattered. */
  forcedEvictions = 0;

  constructor(opts: ReplayGuardOptions = {}) {
    this.windowMs = opts.windowMs ?? 30_000;
    this.maxSenders = opts.maxSenders ?? 65_536;
    this.now = opts.now ?? Date.now;
    if (!(this.windowMs > 0)) throw new RangeError("windowMs must be positive");
    if (!(Number.isInteger(this.maxSenders) && this.maxSenders > 0)) throw new RangeError("maxSenders must be a positive integer");
  }

  /** Number of senders whose state is held. */
  get size(): number {
    return this.senders.size;
  }

  /** Decides whether a verified datagram is fresh, and records it if so. */
  check(sender: string, seq: number, time: number): ReplayVerdict {
    const now = this.now();
    if (!Number.isSafeInteger(seq) || seq < 0) return "replayed";
    if (!Number.isFinite(time) || time < now - this.windowMs) return "stale";
    if (time > now + this.windowMs) return "future";
    if (now - this.lastSweep >= this.windowMs) this.sweep(now);

    const s = this.senders.get(sender);
    if (s === undefined) {
      if (this.senders.size >= this.maxSenders) this.makeRoom(now);
      this.senders.set(sender, { top: seq, seen: 1n, newestTime: time });
      return "ok";
    }
    if (seq > s.top) {
      const shift = seq - s.top;
      s.seen = shift >= REPLAY_WINDOW_BITS ? 1n : ((s.seen << BigInt(shift)) | 1n) & WINDOW_MASK;
      s.top = seq;
    } else {
      const behind = s.top - seq;
      if (behind >= REPLAY_WINDOW_BITS) return "replayed";
      const bit = 1n << BigInt(behind);
      if (s.seen & bit) return "replayed";
      s.seen |= bit;
    }
    if (time > s.newestTime) s.newestTime = time;
    this.senders.delete(sender); // move to the most recently heard end
    this.senders.set(sender, s);
    return "ok";
  }

  /** Drops the state of senders none of whose messages could pass the timestamp test any more. */
  sweep(now = this.now()): void {
    this.lastSweep = now;
    for (const [name, s] of this.senders) {
      if (s.newestTime < now - this.windowMs) this.senders.delete(name);
    }
  }

  private makeRoom(now: number): void {
    this.sweep(now);
    if (this.senders.size < this.maxSenders) return;
    const oldest = this.senders.keys().next();
    if (!oldest.done) {
      this.senders.delete(oldest.value);
      this.forcedEvictions++;
    }
  }
}
