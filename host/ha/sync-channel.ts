// The pair's reliable channel: one TCP connection over the HA link carrying the active's config
// and flow state to the standby, and the standby's acknowledgements back. Every frame is a signed
// envelope (the HA keys, replay-checked per sender), length-prefixed: a frame that fails its check
// closes the connection (a stream that carries one forged frame cannot be trusted for the next).
//
// Both nodes listen; the node whose id sorts first dials, and dials again every RETRY_MS while
// the connection is down, so exactly one connection exists and no election is needed for it.
// Reliability: TCP delivers in order while the connection lives; the standby acknowledges each
// batch, the active keeps what is unacknowledged (bounded) and, when a connection is made,
// starts from a full resync, which is the resend of everything.
import { createServer, connect, type Server, type Socket } from "node:net";
import { EventEmitter } from "node:events";

export const RETRY_MS = 300;
/** Largest frame accepted: a batch of flows or a whole configuration. */
export const MAX_FRAME_BYTES = 8 << 20;

export interface FrameCodec<M> {
  encode(msg: M): Uint8Array;
  /** ok false: the frame is refused (reason counted) and the connection closed. */
  decode(bytes: Uint8Array): { ok: true; msg: M } | { ok: false; reason: string };
}

export interface SyncChannelOptions<M> {
  /** Address and port this node listens on (its HA link address). */
  listen: { address: string; port: number };
  /** The peer's. */
  peer: { address: string; port: number };
  /** Whether this node dials (its node id sorts before the peer's). */
  dials: boolean;
  codec: FrameCodec<M>;
  log?: (line: string) => void;
}

export interface SyncChannelStats {
  connects: number;
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  refused: Record<string, number>;
}

/** Events: "up" (a connection is ready), "down" (it closed), "message" (M). */
export class SyncChannel<M> extends EventEmitter {
  private server?: Server;
  private socket?: Socket;
  private retry?: NodeJS.Timeout;
  private stopped = false;
  readonly stats: SyncChannelStats = { connects: 0, framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0, refused: {} };
  private readonly log: (line: string) => void;

  constructor(private readonly opts: SyncChannelOptions<M>) {
    super();
    this.log = opts.log ?? (() => {});
  }

  async start(): Promise<void> {
    this.server = createServer((s) => this.adopt(s, "accepted"));
    this.server.on("error", (e) => this.log(`ha sync: listening on ${this.opts.listen.address}:${this.opts.listen.port}: ${e.message}`));
    await new Promise<void>((ok, fail) => {
      this.server!.once("error", fail);
      this.server!.listen(this.opts.listen.port, this.opts.listen.address, () => {
        this.server!.off("error", fail);
        ok();
      });
    });
    if (this.opts.dials) this.dial();
  }

  get connected(): boolean {
    return this.socket !== undefined;
  }

  private dial(): void {
    if (this.stopped || this.socket) return;
    const s = connect({ host: this.opts.peer.address, port: this.opts.peer.port, localAddress: this.opts.listen.address });
    s.once("connect", () => this.adopt(s, "dialled"));
    s.once("error", () => {
      s.destroy();
      if (!this.socket) this.later();
    });
  }

  private later(): void {
    clearTimeout(this.retry);
    if (this.stopped || !this.opts.dials) return;
    this.retry = setTimeout(() => this.dial(), RETRY_MS);
    this.retry.unref();
  }

  private adopt(s: Socket, how: string): void {
    if (this.stopped) return void s.destroy();
    if (s.remoteAddress && s.remoteAddress.replace(/^::ffff:/, "") !== this.opts.peer.address) {
      this.count("not-the-peer");
      this.log(`ha sync: connection from ${s.remoteAddress} refused: not the peer (${this.opts.peer.address})`);
      return void s.destroy();
    }
    if (this.socket) this.socket.destroy(); // the newest connection wins: the old one is half dead
    this.socket = s;
    s.setNoDelay(true);
    s.setKeepAlive(true, 1000);
    this.stats.connects++;
    let buffered: Buffer = Buffer.alloc(0);
    s.on("data", (chunk: Buffer) => {
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      while (buffered.length >= 4) {
        const len = buffered.readUInt32BE(0);
        if (len > MAX_FRAME_BYTES) return this.refuse(s, "oversized");
        if (buffered.length < 4 + len) break;
        const frame = buffered.subarray(4, 4 + len);
        buffered = buffered.subarray(4 + len);
        this.stats.framesReceived++;
        this.stats.bytesReceived += 4 + len;
        const r = this.opts.codec.decode(new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength));
        if (!r.ok) return this.refuse(s, r.reason);
        if (this.socket !== s) return;
        this.emit("message", r.msg);
      }
    });
    s.on("close", () => {
      if (this.socket !== s) return;
      this.socket = undefined;
      this.emit("down");
      this.later();
    });
    s.on("error", () => s.destroy());
    this.log(`ha sync: connected to ${this.opts.peer.address} (${how})`);
    this.emit("up");
  }

  private count(reason: string): void {
    this.stats.refused[reason] = (this.stats.refused[reason] ?? 0) + 1;
  }

  private refuse(s: Socket, reason: string): void {
    this.count(reason);
    this.log(`ha sync: frame refused (${reason}): closing the connection`);
    s.destroy();
  }

  /** Sends one message; false when there is no connection (the caller resyncs on the next "up"). */
  send(msg: M): boolean {
    const s = this.socket;
    if (!s) return false;
    const body = this.opts.codec.encode(msg);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length, 0);
    s.write(head);
    s.write(body);
    this.stats.framesSent++;
    this.stats.bytesSent += 4 + body.length;
    return true;
  }

  /** Bytes queued in the socket and not yet sent: the caller slows down when this grows. */
  get backlog(): number {
    return this.socket?.writableLength ?? 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    this.socket?.destroy();
    this.socket = undefined;
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
