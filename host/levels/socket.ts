// The levels protocol's UDP socket (node:dgram): one per appliance, bound to levels.local at
// levels.port, for LOAD, PING/PONG and the recovery queries alike. It signs what it sends with the
// first configured key and accepts every configured key; it hands on only datagrams that verify,
// decode, are not this appliance's own (a loop, or a twin with the same name) and pass the replay
// window (the advertisements' ReplayGuard: time within now +/- 30 s, 64-wide sequence window per
// sender). Every refusal is counted by reason and by source address; nothing a peer sends throws.
//
// Trade-off: one socket of the bound address's family. A peer of the other family cannot be
// reached from it (counted as a send error): bind levels.local to an address of the peers' family.

import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";
import type { Address } from "../config/schema.js";
import { ReplayGuard, type ReplayVerdict } from "../discovery/replay.js";
import type { AuthKey, EnvelopeFailure } from "../wire/envelope.js";
import { countBySource } from "../wire/refusals.js";
import { decodeLevels, encodeLevels, type LevelsMessage } from "./protocol.js";

export type LevelsRejectReason = EnvelopeFailure | Exclude<ReplayVerdict, "ok"> | "own-name";
export const LEVELS_REJECT_REASONS: readonly LevelsRejectReason[] = ["malformed", "unknown-key", "bad-mac", "unsupported-version", "bad-field", "replayed", "stale", "future", "own-name"];

export interface LevelsSource {
  address: string;
  port: number;
}

export interface LevelsReceived {
  msg: LevelsMessage;
  /** The envelope's sender: the peer's levels name. */
  sender: string;
  from: LevelsSource;
  keyId: number;
}

export interface LevelsSocketOptions {
  /** Address to bind (0.0.0.0 or :: for every one). */
  address: string;
  /** 0: any free port (tests). */
  port: number;
  /** This appliance's levels name: the sender of what it sends. */
  name: string;
  /** The first signs; all verify. */
  keys: readonly AuthKey[];
  onMessage(m: LevelsReceived): void;
  /** Wall clock, ms since 1970: envelope time and the replay window. Default Date.now. */
  now?: () => number;
  /** Accepted clock difference either way, ms; default 30 000. */
  windowMs?: number;
  log?: (line: string) => void;
}

export interface LevelsSocketStats {
  received: number;
  accepted: number;
  rejected: Record<LevelsRejectReason, number>;
  /** By source ("address:port"), only the reasons that occurred. */
  rejectedBy: Record<string, Partial<Record<LevelsRejectReason, number>>>;
  sent: number;
  sendErrors: number;
  /** The handler threw on an accepted message (a bug: logged, and the socket goes on). */
  handlerErrors: number;
}

export type LevelsAdmitted = { ok: true; received: LevelsReceived } | { ok: false; reason: LevelsRejectReason; detail: string };

export class LevelsSocket {
  private name: string;
  private signing: AuthKey;
  private keys: ReadonlyMap<number, Uint8Array>;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly guard: ReplayGuard;
  private seq: number;
  private readonly family: 4 | 6;
  private readonly counts = {
    received: 0, accepted: 0, sent: 0, sendErrors: 0, handlerErrors: 0,
    rejected: Object.fromEntries(LEVELS_REJECT_REASONS.map((r) => [r, 0])) as Record<LevelsRejectReason, number>,
    rejectedBy: new Map<string, Partial<Record<LevelsRejectReason, number>>>(),
  };

  private constructor(
    private readonly socket: Socket,
    private readonly o: LevelsSocketOptions,
  ) {
    this.name = o.name;
    this.signing = signingKey(o.keys);
    this.keys = new Map(o.keys.map((k) => [k.id, k.secret]));
    this.now = o.now ?? Date.now;
    this.log = o.log ?? (() => {});
    this.guard = new ReplayGuard({ now: this.now, windowMs: o.windowMs ?? 30_000, maxSenders: 4096 });
    // As the advertisements do: start at the wall clock, so a restarted sender's numbers are higher than before.
    this.seq = Math.floor(this.now());
    this.family = isIP(o.address) === 6 ? 6 : 4;
  }

  /** Binds address:port; rejects (closing the socket) when that fails. */
  static async open(o: LevelsSocketOptions): Promise<LevelsSocket> {
    signingKey(o.keys); // no key is a configuration bug: refuse before binding
    const family = isIP(o.address) === 6 ? 6 : 4;
    const socket = createSocket({ type: family === 6 ? "udp6" : "udp4", ipv6Only: family === 6 });
    try {
      await new Promise<void>((ok, fail) => {
        socket.once("error", fail);
        socket.bind({ address: o.address, port: o.port, exclusive: true }, () => {
          socket.off("error", fail);
          ok();
        });
      });
    } catch (e) {
      socket.close();
      throw new Error(`levels: cannot bind ${hostPort(o.address, o.port)}: ${(e as Error).message}`);
    }
    const s = new LevelsSocket(socket, o);
    socket.on("message", (bytes, rinfo) => s.receive(bytes, { address: rinfo.address, port: rinfo.port }));
    socket.on("error", (e) => s.log(`levels: socket error: ${e.message}`));
    return s;
  }

  /** The bound port (the one the OS chose when asked for 0). */
  get port(): number {
    return this.socket.address().port;
  }

  /** New name or keys; the replay state is kept (a sender's numbers only ever grow). */
  configure(name: string, keys: readonly AuthKey[]): void {
    this.signing = signingKey(keys);
    this.name = name;
    this.keys = new Map(keys.map((k) => [k.id, k.secret]));
  }

  /**
   * Signs and sends one message; resolves false (counted) when the kernel refuses it or `to` is of
   * the other address family. An invalid message is the caller's bug and throws a RangeError.
   */
  send(to: { address: string | Address; port: number }, msg: LevelsMessage): Promise<boolean> {
    const address = typeof to.address === "string" ? to.address : to.address.text;
    const bytes = encodeLevels(msg, this.signing, this.seq++, Math.floor(this.now()), this.name);
    if ((isIP(address) === 6 ? 6 : 4) !== this.family) {
      this.counts.sendErrors++;
      this.log(`levels: cannot send to ${hostPort(address, to.port)} from an IPv${this.family} socket`);
      return Promise.resolve(false);
    }
    return new Promise((done) => {
      const failed = (e: Error): void => {
        this.counts.sendErrors++;
        this.log(`levels: send to ${hostPort(address, to.port)}: ${e.message}`);
        done(false);
      };
      try {
        this.socket.send(bytes, to.port, address, (e) => {
          if (e) return failed(e);
          this.counts.sent++;
          done(true);
        });
      } catch (e) {
        failed(e as Error); // the socket is closed already
      }
    });
  }

  /** The checks one datagram goes through, in order; counts the outcome. Exposed for tests and tools. */
  admit(bytes: Uint8Array, from: LevelsSource): LevelsAdmitted {
    this.counts.received++;
    const r = decodeLevels(bytes, this.keys);
    if (!r.ok) return this.reject(r.reason, from, r.detail);
    // before the replay window: our own numbers must not enter it as a peer's
    if (r.sender === this.name) return this.reject("own-name", from, `datagram carries this appliance's own name ${r.sender}`);
    const verdict = this.guard.check(r.sender, r.seq, r.time);
    if (verdict !== "ok") return this.reject(verdict, from, `seq ${r.seq} time ${r.time} from ${r.sender}`);
    this.counts.accepted++;
    return { ok: true, received: { msg: r.msg, sender: r.sender, from, keyId: r.keyId } };
  }

  stats(): LevelsSocketStats {
    return {
      received: this.counts.received,
      accepted: this.counts.accepted,
      rejected: { ...this.counts.rejected },
      rejectedBy: Object.fromEntries([...this.counts.rejectedBy].map(([k, v]) => [k, { ...v }])),
      sent: this.counts.sent,
      sendErrors: this.counts.sendErrors,
      handlerErrors: this.counts.handlerErrors,
    };
  }

  close(): Promise<void> {
    return new Promise((r) => {
      try {
        this.socket.close(() => r());
      } catch {
        r(); // closed already
      }
    });
  }

  private receive(bytes: Uint8Array, from: LevelsSource): void {
    const a = this.admit(bytes, from);
    if (!a.ok) return;
    try {
      this.o.onMessage(a.received);
    } catch (e) {
      this.counts.handlerErrors++;
      this.log(`levels: handler failed on ${a.received.msg.type} from ${a.received.sender}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private reject(reason: LevelsRejectReason, from: LevelsSource, detail: string): LevelsAdmitted {
    this.counts.rejected[reason]++;
    countBySource(this.counts.rejectedBy, hostPort(from.address, from.port), reason);
    return { ok: false, reason, detail };
  }
}

function signingKey(keys: readonly AuthKey[]): AuthKey {
  const k = keys[0];
  if (!k) throw new RangeError("levels: no key to sign with");
  return k;
}

/** "address:port", an IPv6 address in brackets: how the levels name an endpoint in logs, views and peer lists. */
export function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}
