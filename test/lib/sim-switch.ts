// A learning Ethernet switch for simulated boards (test only): each device's SimPort is wired to
// a switch port; the switch learns source MACs, sends a known unicast destination to its port
// only, and floods broadcast, multicast and unknown destinations, as a real switch does. Moving a
// MAC (a takeover's gratuitous ARP) moves its port. `cut()` stops a port passing anything.
import { SimPort } from "../../board/sim/index.js";
import { formatMac, parseMac } from "../../host/net/frame.js";

export class SimSwitch {
  private readonly ports: { port: SimPort; up: boolean }[] = [];
  private readonly macs = new Map<string, number>();

  constructor(readonly name: string) {}

  /** A new switch port wired to `device`. */
  attach(device: SimPort): number {
    const i = this.ports.length;
    const port = new SimPort(`${this.name}.${i}`, parseMac(`02:5e:00:00:00:${(i + 1).toString(16).padStart(2, "0")}`));
    SimPort.wire(port, device);
    this.ports.push({ port, up: true });
    port.start((frames) => {
      if (!this.ports[i].up) return;
      for (const f of frames) this.forward(i, f);
    });
    return i;
  }

  private forward(from: number, f: Uint8Array): void {
    const src = formatMac(f.subarray(6, 12));
    if (!(f[6] & 1)) this.macs.set(src, from);
    const dst = formatMac(f.subarray(0, 6));
    const to = f[0] & 1 ? undefined : this.macs.get(dst);
    for (let i = 0; i < this.ports.length; i++) {
      if (i === from || !this.ports[i].up || (to !== undefined && i !== to)) continue;
      this.ports[i].port.send([f]);
    }
  }

  /** Stops (or restores) a port: nothing in or out, like a pulled cable. */
  cut(i: number, cut = true): void {
    this.ports[i].up = !cut;
  }
}
