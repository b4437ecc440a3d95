// Runs recorded frames through an engine, in order, with the engine's clock following the frames'
// timestamps, so idle timeouts behave as they did on the wire. Used by the pcap runner, fixture
// tests and the demo. Frames with the same millisecond share batches.
import { MAX_BATCH } from "../../assembly/layout.js";
import type { Engine } from "./engine.js";

export interface TimedFrame {
  tsUs: number;
  port: number;
  data: Uint8Array;
}

export interface EndedFrame extends TimedFrame {
  /** Punt reason (punted frames) or drop reason (dropped frames); 0 for transmitted ones. */
  reason: number;
}

export interface OfflineResult {
  tx: EndedFrame[];
  punted: EndedFrame[];
  dropped: EndedFrame[];
  /** Frames the engine never saw: larger than a buffer takes. */
  rejected: TimedFrame[];
}

export function runFrames(engine: Engine, frames: readonly TimedFrame[]): OfflineResult {
  const out: OfflineResult = { tx: [], punted: [], dropped: [], rejected: [] };
  const tsOfBuf = new Map<number, number>();
  const flush = (): void => {
    engine.runAll();
    const take = (into: EndedFrame[]) => (e: { port: number; reason: number; buf: number; frame: Uint8Array }): void => {
      into.push({ tsUs: tsOfBuf.get(e.buf) ?? 0, port: e.port, reason: e.reason, data: e.frame.slice() });
    };
    engine.drainTx(take(out.tx));
    engine.drainPunt(take(out.punted));
    engine.drainDropped(take(out.dropped));
    tsOfBuf.clear();
  };
  let pending = 0;
  let ms = -1;
  for (const f of frames) {
    const fms = Math.floor(f.tsUs / 1000);
    if (pending && (fms !== ms || pending === MAX_BATCH)) {
      flush();
      pending = 0;
    }
    if (fms !== ms) engine.clock = fms;
    ms = fms;
    if (!engine.rxPush(f.port, f.data)) {
      out.rejected.push(f);
      continue;
    }
    pending++;
    tsOfBuf.set(engine.lastPushedBuffer, f.tsUs);
  }
  if (pending) flush();
  return out;
}
