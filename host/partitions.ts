// Source partitions: who owns each portion of a source-partition service's client address space
// now. The configuration deals the portions; what happens since moves them:
//
//   - an owner that cannot take new flows (down, failing its check, draining, MAC unknown) hands
//     each of its portions to the usable member holding the fewest; when it recovers, its
//     configured portions come back to it (the stand-in's existing flows stay where they are);
//   - an owner at or above `congestedAt` sheds one portion, at most one per `holdS` seconds, to
//     the least loaded member below it, as long as it keeps one; these moves stay until the
//     operator resets them (relief that reverted by itself would bring the congestion back);
//   - the operator moves a portion (`request service repartition`), or resets every move.
// Each change of owner is reported once (onMove), with its reason.
//
// A move is live re-partitioning: each portion is a flow rule in the data plane, so new flows from
// a moved portion go to its new owner while existing flows keep their backend until they end.
import type { FlowRule, Service } from "./config/schema.js";

export interface PartitionMove {
  service: string;
  prefix: string;
  from: string;
  to: string;
  /** failed: its owner cannot take flows; restored: back to the configured owner (recovered, or a reset); congested; operator. */
  reason: "failed" | "restored" | "congested" | "operator";
}

export interface PortionView {
  prefix: string;
  configured: string;
  owner: string;
  why: "configured" | "stand-in" | "congested" | "operator";
}

interface Moved {
  owner: string;
  why: "congested" | "operator";
}

export class PartitionTable {
  /** service -> prefix -> a move that lasts (operator's, congestion's) */
  private readonly moved = new Map<string, Map<string, Moved>>();
  /** service -> prefix -> the member standing in for an owner that cannot take flows */
  private readonly standIns = new Map<string, Map<string, string>>();
  /** service -> member -> when it last shed a portion for congestion (ms) */
  private readonly shed = new Map<string, Map<string, number>>();
  /** service -> its plan as last seen (retain): a changed plan forgets the moves. */
  private readonly plans = new Map<string, string>();
  /** The owners of the last computation, to report changes once. */
  private readonly last = new Map<string, Map<string, string>>();

  constructor(private readonly onMove: (m: PartitionMove) => void) {}

  /**
   * The periodic look at every source-partition service: congested members shed a portion, and
   * every change of owner since the last tick is reported. Returns whether a portion moved for
   * congestion (the caller applies the new rules).
   */
  tick(services: readonly Service[], usable: (name: string) => boolean, load: (name: string) => number, now: number): boolean {
    let moved = false;
    for (const s of services) {
      if (!s.partitions) continue;
      moved = this.relieve(s, usable, load, now) || moved;
      this.report(s, this.owners(s, usable));
    }
    return moved;
  }

  /** Each portion's owner now, as flow rules (one per portion, in address order), given which members can take new flows. */
  rules(s: Service, usable: (name: string) => boolean): FlowRule[] {
    const p = s.partitions;
    if (!p) return [];
    const owners = this.owners(s, usable);
    return p.portions.map((portion, i) => ({
      name: `partition:${s.name}:${portion.prefix.text}`,
      source: portion.prefix.length > 0 ? portion.prefix : undefined,
      protocol: s.protocol,
      vip: s.vip,
      port: s.port,
      backend: owners[i],
      vlanPop: false,
      mplsPop: false,
    }));
  }

  /** `show service partitions`: every portion, its configured and current owner, and why. */
  view(s: Service, usable: (name: string) => boolean): PortionView[] {
    const owners = this.owners(s, usable);
    const moved = this.moved.get(s.name);
    return (s.partitions?.portions ?? []).map((portion, i) => {
      const m = moved?.get(portion.prefix.text);
      const why = owners[i] === portion.owner && !m ? "configured" : m && owners[i] === m.owner ? m.why : "stand-in";
      return { prefix: portion.prefix.text, configured: portion.owner, owner: owners[i], why };
    });
  }

  /** The operator moves one portion (by its prefix text, as shown) to a member. Returns an error, or undefined. */
  assign(s: Service, prefix: string, owner: string): string | undefined {
    const portion = s.partitions?.portions.find((p) => p.prefix.text === prefix);
    if (!s.partitions) return `service ${s.name} is not source-partition`;
    if (!portion) return `service ${s.name} has no portion ${prefix} (portions: ${s.partitions.portions.map((p) => p.prefix.text).join(", ")})`;
    if (!s.backends.some((b) => b.name === owner)) return `${owner} is not a member of service ${s.name} (members: ${s.backends.map((b) => b.name).join(", ")})`;
    this.movedOf(s.name).set(prefix, { owner, why: "operator" });
    this.standIns.get(s.name)?.delete(prefix);
    return undefined;
  }

  /** Forgets every operator and congestion move of the service: the configured plan again. */
  reset(service: string): void {
    this.moved.delete(service);
    this.standIns.delete(service);
    this.shed.delete(service);
  }

  /**
   * Drops the state of services that are gone or no longer partitioned, and the moves of a service
   * whose plan (portions, owners, members) a new configuration changed: the new plan is the truth.
   */
  retain(services: readonly Service[]): void {
    const live = new Set(services.filter((s) => s.partitions).map((s) => s.name));
    for (const m of [this.moved, this.standIns, this.shed, this.last, this.plans]) for (const k of m.keys()) if (!live.has(k)) m.delete(k);
    for (const s of services) {
      if (!s.partitions) continue;
      const plan = `${s.partitions.portions.map((p) => `${p.prefix.text}=${p.owner}`).join(",")}|${s.backends.map((b) => b.name).join(",")}`;
      const had = this.plans.get(s.name);
      this.plans.set(s.name, plan);
      if (had !== undefined && had !== plan) {
        this.moved.delete(s.name);
        this.standIns.delete(s.name);
        this.shed.delete(s.name);
      }
    }
  }

  private movedOf(service: string): Map<string, Moved> {
    let m = this.moved.get(service);
    if (!m) this.moved.set(service, (m = new Map()));
    return m;
  }

  /** Owners in portion order: the wanted owner (moved or configured) if usable, else a sticky stand-in. */
  private owners(s: Service, usable: (name: string) => boolean): string[] {
    const portions = s.partitions?.portions ?? [];
    const moved = this.moved.get(s.name);
    let standIns = this.standIns.get(s.name);
    const member = (name: string): boolean => s.backends.some((b) => b.name === name);
    const wanted = portions.map((p) => {
      const m = moved?.get(p.prefix.text)?.owner;
      return m !== undefined && member(m) ? m : p.owner;
    });
    const usableMember = (name: string): boolean => member(name) && usable(name);
    const owners = wanted.slice();
    const held = (name: string): number => owners.filter((o) => o === name).length;
    portions.forEach((p, i) => {
      if (usableMember(wanted[i])) {
        standIns?.delete(p.prefix.text);
        return;
      }
      const had = standIns?.get(p.prefix.text);
      if (had !== undefined && usableMember(had)) {
        owners[i] = had;
        return;
      }
      const pick = s.backends.map((b) => b.name).filter(usable).sort((a, b) => held(a) - held(b))[0];
      if (pick === undefined) return; // nobody can take it: the wanted owner keeps it (the data plane falls back to Maglev)
      owners[i] = pick;
      if (!standIns) this.standIns.set(s.name, (standIns = new Map()));
      standIns.set(p.prefix.text, pick);
    });
    return owners;
  }

  /** A congested member sheds one portion to the least loaded member below the mark, at most once per holdS. */
  private relieve(s: Service, usable: (name: string) => boolean, load: (name: string) => number, now: number): boolean {
    const p = s.partitions!;
    if (p.congestedAt <= 0) return false;
    let moved = false;
    const owners = this.owners(s, usable);
    let shed = this.shed.get(s.name);
    for (const member of s.backends.map((b) => b.name)) {
      if (load(member) < p.congestedAt) continue;
      const mine = owners.map((o, i) => (o === member ? i : -1)).filter((i) => i >= 0);
      if (mine.length < 2) continue; // it keeps one: moving its last would only move the congestion
      if (now - (shed?.get(member) ?? -Infinity) < p.holdS * 1000) continue;
      const to = s.backends.map((b) => b.name).filter((n) => n !== member && usable(n) && load(n) < p.congestedAt).sort((a, b) => load(a) - load(b))[0];
      if (to === undefined) continue;
      const i = mine[mine.length - 1];
      this.movedOf(s.name).set(p.portions[i].prefix.text, { owner: to, why: "congested" });
      owners[i] = to;
      if (!shed) this.shed.set(s.name, (shed = new Map()));
      shed.set(member, now);
      moved = true;
    }
    return moved;
  }

  private report(s: Service, owners: string[]): void {
    const portions = s.partitions?.portions ?? [];
    const before = this.last.get(s.name) ?? new Map(portions.map((p) => [p.prefix.text, p.owner]));
    const after = new Map(portions.map((p, i) => [p.prefix.text, owners[i]]));
    this.last.set(s.name, after);
    const moved = this.moved.get(s.name);
    for (const [prefix, to] of after) {
      const from = before.get(prefix);
      if (from === undefined || from === to) continue;
      const configured = portions.find((p) => p.prefix.text === prefix)?.owner;
      const m = moved?.get(prefix);
      const reason = m && m.owner === to ? m.why : to === configured ? "restored" : "failed";
      this.onMove({ service: s.name, prefix, from, to, reason });
    }
  }
}
