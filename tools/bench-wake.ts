// How fast a sleeping engine answers: a threaded engine left idle (asleep on its rx doorbell)
// gets one frame; the time until the frame is on its tx ring is the wake-up latency. Measured
// from the host's side, as the board sees it: rxPush + kick, then spin on the tx ring's head.
import { Engine } from "../host/engine/index.js";
import { validateOrThrow } from "../host/config/validate.js";
import { tcp4Frame, SYN } from "../host/net/frame.js";
import * as L from "../assembly/layout.js";

export interface WakeLatency {
  samples: number;
  medianUs: number;
  p99Us: number;
  maxUs: number;
}

export async function measureWake(samples: number): Promise<WakeLatency> {
  const engine = await Engine.create(validateOrThrow({
    ports: [{ name: "a", mac: "02:00:00:00:00:01" }, { name: "b", mac: "02:00:00:00:00:02" }],
    dataplane: { flows: { ipv4: 4096, ipv6: 256 }, limits: { services: 1, backends: 1 }, buffers: { count: 256 } },
    backends: [{ name: "s", address: "10.0.0.2", mac: "02:00:00:00:00:03", via: "b" }],
    services: [{ name: "v", vip: "10.0.0.1", protocol: "tcp", port: 80, mode: "dsr", backends: ["s"] }],
  }), { threaded: true });
  const all = new Int32Array(engine.memory.buffer);
  const txHead = (engine.plan.txRing + L.RING_HEAD) / 4;
  const idle = L.CB_IDLE / 4;
  const us: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      // let it fall asleep first: a few ms of nothing
      await new Promise((r) => setTimeout(r, 2 + (i % 3)));
      while (Atomics.load(engine.controlWords, idle) !== 1) await new Promise((r) => setTimeout(r, 1));
      const before = Atomics.load(all, txHead);
      const frame = tcp4Frame({ srcMac: "02:00:00:00:00:09", dstMac: "02:00:00:00:00:01", src: "10.9.0.1", dst: "10.0.0.1", sport: 1024 + (i % 60000), dport: 80, flags: SYN });
      const t0 = performance.now();
      engine.rxPush(0, frame);
      engine.kick();
      while (Atomics.load(all, txHead) === before) {
        if (performance.now() - t0 > 1000) throw new Error("the engine did not wake within a second");
      }
      us.push((performance.now() - t0) * 1000);
      engine.drainTx();
    }
  } finally {
    await engine.stop();
  }
  us.sort((a, b) => a - b);
  const at = (q: number): number => Math.round(us[Math.min(us.length - 1, Math.floor(q * us.length))]);
  return { samples, medianUs: at(0.5), p99Us: at(0.99), maxUs: Math.round(us[us.length - 1]) };
}
