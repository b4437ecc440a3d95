// Chain devices' health, watched from the data plane's own counters: an inline device that is sent
// packets and returns none for STALL_SECONDS consecutive seconds has failed; its flows go to the
// hop's alternate (the engine picks an alternate that is up). It is tried again after a back-off
// (10 s, doubling to 5 minutes): a device known by address only once it has answered ARP / ND
// since it failed, a device known by MAC alone on trial. A trial that fails doubles the back-off.
//
// Mirror devices never send anything back, so only their MAC (or address) decides whether they
// get copies.
import type { Chain } from "./config/schema.js";

const STALL_SECONDS = 2;
/** Packets sent in a second with none back before that second counts as a stall (a quiet flow is no failure). */
const STALL_MIN_SENT = 3;
const RETRY_FIRST_MS = 10_000;
const RETRY_MAX_MS = 300_000;

export interface ChainDeviceChange {
  device: string;
  chain: string;
  hop: string;
  to: "down" | "up";
  reason: string;
  at: number;
}

interface DeviceState {
  sent: number;
  returned: number;
  stalls: number;
  down?: { since: number; retryAt: number; backoffMs: number; reason: string };
  /** Back-off to use at the next failure (a failed trial doubles it). */
  nextBackoffMs: number;
}

export interface ChainDeviceView {
  chain: string;
  hop: string;
  kind: "inline" | "mirror";
  device: string;
  role: "device" | "alternate";
  port: string;
  mac?: string;
  state: "up" | "down" | "unresolved";
  reason?: string;
  sent: number;
  returned: number;
}

export class ChainMonitor {
  private readonly devices = new Map<string, DeviceState>();

  constructor(private readonly report: (e: ChainDeviceChange) => void) {}

  /** Whether the device takes flows now (its MAC aside). */
  isUp(name: string): boolean {
    return !this.devices.get(name)?.down;
  }

  downReason(name: string): string | undefined {
    return this.devices.get(name)?.down?.reason;
  }

  /**
   * Once a second: the devices' counters (sent, returned) and, for devices known by address, when
   * their neighbour entry was last confirmed. Returns whether any device changed state.
   */
  tick(chains: Chain[], counters: Record<string, { sent: number; returned: number }>, heardAt: (device: string) => number | undefined, now = Date.now()): boolean {
    let changed = false;
    const seen = new Set<string>();
    for (const c of chains) for (const h of c.hops) for (const d of [...h.devices, ...h.alternates]) {
      if (seen.has(d.name)) continue;
      seen.add(d.name);
      const k = counters[d.name] ?? { sent: 0, returned: 0 };
      let st = this.devices.get(d.name);
      if (!st) {
        st = { sent: k.sent, returned: k.returned, stalls: 0, nextBackoffMs: RETRY_FIRST_MS };
        this.devices.set(d.name, st);
        continue;
      }
      const sent = k.sent - st.sent;
      const returned = k.returned - st.returned;
      st.sent = k.sent;
      st.returned = k.returned;
      const change = (to: "down" | "up", reason: string): void => {
        changed = true;
        this.report({ device: d.name, chain: c.name, hop: h.name, to, reason, at: now });
      };
      if (st.down) {
        if (now < st.down.retryAt) continue;
        const heard = heardAt(d.name);
        if (d.address && (heard === undefined || heard <= st.down.since)) continue; // not heard from since it failed
        st.nextBackoffMs = Math.min(RETRY_MAX_MS, st.down.backoffMs * 2);
        st.down = undefined;
        st.stalls = 0;
        change("up", d.address ? "answers ARP again: on trial" : "back-off over: on trial");
        continue;
      }
      if (h.kind !== "inline") continue;
      if (returned > 0) {
        st.stalls = 0;
        if (st.nextBackoffMs > RETRY_FIRST_MS && sent > 0) st.nextBackoffMs = RETRY_FIRST_MS; // the trial passed
        continue;
      }
      st.stalls = sent >= STALL_MIN_SENT ? st.stalls + 1 : st.stalls;
      if (st.stalls >= STALL_SECONDS) {
        const reason = `sent packets and returned none for ${STALL_SECONDS} s`;
        st.down = { since: now, retryAt: now + st.nextBackoffMs, backoffMs: st.nextBackoffMs, reason };
        st.stalls = 0;
        change("down", reason);
      }
    }
    for (const name of [...this.devices.keys()]) if (!seen.has(name)) this.devices.delete(name);
    return changed;
  }
}
