// The test's end of a simulated wire: joined to one of the appliance's ports, it sends frames in
// and records every frame the appliance sends out, so a test can wait for one.
import assert from "node:assert/strict";
import { SimPort } from "../../board/sim/index.js";
import { parseMac } from "../../host/net/frame.js";

export class Wire {
  readonly port: SimPort;
  readonly got: Uint8Array[] = [];
  constructor(name: string, mac: string, readonly peer: SimPort) {
    this.port = new SimPort(name, parseMac(mac));
    SimPort.wire(this.port, peer);
    this.port.start((frames) => void this.got.push(...frames));
  }

  send(f: Uint8Array): void {
    this.port.send([f]);
  }

  /** The first frame so far that pred accepts; fails naming `what` after ms. */
  async waitFor(what: string, pred: (f: Uint8Array) => boolean, ms = 3000): Promise<Uint8Array> {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = this.got.find(pred);
      if (f) return f;
      if (Date.now() > deadline) assert.fail(`${this.port.name}: no ${what} within ${ms} ms (got ${this.got.length} frames)`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}
