// The simulated board: in-process ports joined by virtual wires. A frame sent on one end of a
// wire arrives, as a copy, on the other end in the next turn of the event loop, in batches like a
// NIC's. Runs anywhere without privileges: the default for demos, and for tests of the host.
import type { Board, BoardPort, Frame } from "../types.js";
import type { Flash } from "../flash.js";

export class SimPort implements BoardPort {
  private listener?: (frames: Frame[]) => void;
  private peer?: SimPort;
  private pending: Frame[] = [];
  private counts = { rxFrames: 0, txFrames: 0, txErrors: 0, rxDropped: 0 };
  private closed = false;

  constructor(readonly name: string, readonly mac: Uint8Array) {}

  /** Joins two ports back to back. */
  static wire(a: SimPort, b: SimPort): void {
    a.peer = b;
    b.peer = a;
  }

  start(onFrames: (frames: Frame[]) => void): void {
    this.listener = onFrames;
  }

  send(frames: readonly Frame[]): number {
    if (this.closed || !this.peer) {
      this.counts.txErrors += frames.length;
      return 0;
    }
    for (const f of frames) this.peer.arrive(f.slice());
    this.counts.txFrames += frames.length;
    return frames.length;
  }

  private arrive(f: Frame): void {
    if (this.closed || !this.listener) {
      this.counts.rxDropped++;
      return;
    }
    if (this.pending.push(f) === 1) {
      setImmediate(() => {
        const batch = this.pending;
        this.pending = [];
        this.counts.rxFrames += batch.length;
        this.listener?.(batch);
      });
    }
  }

  stats(): { rxFrames: number; txFrames: number; txErrors: number; rxDropped: number } {
    return { ...this.counts };
  }

  close(): void {
    this.closed = true;
  }
}

export class SimBoard implements Board {
  readonly kind = "sim" as const;
  /** The flash: a file (see board/flash.ts), when the box keeps its configuration. */
  constructor(readonly ports: SimPort[], readonly flash?: Flash) {}

  async close(): Promise<void> {
    for (const p of this.ports) p.close();
    await this.flash?.close();
  }
}
