// Load-based weights: what LOAD messages do to an advertised end system's share of NEW flows.
// Established flows never move (a weight change is a new Maglev table for new flows only).
//
// For each service an end system offers, on each LOAD it sends:
//   spare    = min(1 - cpu/100, capacity > 0 ? 1 - connections/capacity : 1), clamped to [0, 1]
//   rt       = ref / responseTimeUs, clamped to [0, 1], where ref is the mean response time of the
//              end systems of that service that reported one (1 when nothing to compare with)
//   target   = advertised * max(FLOOR, spare * rt)            FLOOR = 0.1: never starved outright
//   ema      = ALPHA * target + (1 - ALPHA) * ema             ALPHA = 0.3, ema starts at advertised
//   applied  = round(ema), only when |ema - applied| > HYSTERESIS * applied (HYSTERESIS = 0.1) and
//              at least one of the end system's intervals since the last change.
// Trade-off: the smoothing and hysteresis make the weights lag a real load change by a few
// intervals; in return noisy load reports do not make the Maglev tables flap. The bound: a target
// alternating between a and b each interval leaves the average swinging by ALPHA*|a-b|/(2-ALPHA),
// so swings under ~57% of the weight are absorbed (hysteresis 10%); wilder ones still move it,
// at most once per interval.
import { canonical } from "../net/neighbors.js";
import type { LoadMsg, ServiceKey, ServiceOffer } from "./protocol.js";

/** Weight of a fully loaded end system, relative to the advertised one. */
export const FLOOR = 0.1;
/** Weight of the newest target in the moving average. */
export const ALPHA = 0.3;
/** Smallest relative move of the smoothed weight that is applied. */
export const HYSTERESIS = 0.1;

export type LoadSample = Pick<LoadMsg, "cpu" | "connections" | "responseTimeUs">;

/** What the weights need to know of an end system. */
export interface LoadedSystem {
  id: string;
  intervalMs: number;
  services: readonly ServiceOffer[];
  load?: LoadSample;
}

interface WeightState {
  advertised: number;
  ema: number;
  applied: number;
  changedAt: number;
}

const keyOf = (es: string, s: ServiceKey): string => `${es}|${s.vip}|${s.protocol}|${s.port}`;
const sameService = (a: ServiceKey, b: ServiceKey): boolean => a.protocol === b.protocol && a.port === b.port && canonical(a.vip) === canonical(b.vip);

/** The target weight of one offer, before smoothing. */
export function targetWeight(offer: ServiceOffer, load: LoadSample, peers: readonly LoadSample[]): number {
  const byCpu = 1 - load.cpu / 100;
  const byConnections = offer.capacity > 0 ? 1 - load.connections / offer.capacity : 1;
  const spare = Math.min(1, Math.max(0, Math.min(byCpu, byConnections)));
  const times = peers.map((p) => p.responseTimeUs).filter((t) => t > 0);
  const ref = times.length ? times.reduce((a, b) => a + b, 0) / times.length : 0;
  const rt = load.responseTimeUs > 0 && ref > 0 ? Math.min(1, ref / load.responseTimeUs) : 1;
  return offer.weight * Math.max(FLOOR, spare * rt);
}

export class LoadWeights {
  private readonly state = new Map<string, WeightState>();

  /**
   * A LOAD from `es` (its sample already in `systems`): moves its smoothed weights and applies
   * those that moved enough. Returns whether an applied weight changed.
   */
  onLoad(es: string, systems: readonly LoadedSystem[], now: number): boolean {
    const self = systems.find((s) => s.id === es);
    if (!self?.load) return false;
    let changed = false;
    for (const offer of self.services) {
      const peers = systems.filter((s) => s.load && s.services.some((o) => sameService(o, offer))).map((s) => s.load!);
      const target = targetWeight(offer, self.load, peers);
      const k = keyOf(es, offer);
      let st = this.state.get(k);
      if (!st || st.advertised !== offer.weight) st = { advertised: offer.weight, ema: offer.weight, applied: offer.weight, changedAt: -Infinity };
      st.ema = ALPHA * target + (1 - ALPHA) * st.ema;
      const next = offer.weight > 0 ? Math.max(1, Math.round(st.ema)) : 0;
      if (Math.abs(st.ema - st.applied) > HYSTERESIS * st.applied && next !== st.applied && now - st.changedAt >= self.intervalMs) {
        st.applied = next;
        st.changedAt = now;
        changed = true;
      }
      this.state.set(k, st);
    }
    return changed;
  }

  /** The weight new flows use now: the applied one, or the advertised one when no LOAD moved it. */
  weight(es: string, offer: ServiceOffer): number {
    const st = this.state.get(keyOf(es, offer));
    return st && st.advertised === offer.weight ? st.applied : offer.weight;
  }

  /** Drops what is known of an end system that was forgotten. */
  forget(es: string): void {
    for (const k of this.state.keys()) if (k.startsWith(`${es}|`)) this.state.delete(k);
  }
}
