// Stable slot numbers for services and backends across commits. Flows remember slot numbers, so a
// slot must keep meaning the same thing: a name keeps its slot for as long as it exists; a backend
// slot given to a new name gets a new cookie (flows of the old one see the change). New names take
// the slot that has been free the longest, so a removed service's slot (flows carry no service
// cookie) is handed out again only after every other slot, long after its flows have aged out.

export class SlotBook {
  private readonly byName = new Map<string, number>();
  private readonly cookies: Uint16Array;
  private readonly freedAt: Float64Array; // ms when a slot was last released; -Infinity: never used
  constructor(readonly size: number) {
    this.cookies = new Uint16Array(size);
    this.freedAt = new Float64Array(size).fill(-Infinity);
  }

  /** Slots for exactly these names: kept where they were, new ones take the longest-free slot. */
  assign(names: readonly string[], nowMs: number): Map<string, number> {
    const wanted = new Set(names);
    for (const [name, slot] of this.byName) {
      if (!wanted.has(name)) {
        this.byName.delete(name);
        this.freedAt[slot] = nowMs;
      }
    }
    const used = new Set(this.byName.values());
    for (const name of names) {
      if (this.byName.has(name)) continue;
      let best = -1;
      for (let i = 0; i < this.size; i++) {
        if (used.has(i)) continue;
        if (best < 0 || this.freedAt[i] < this.freedAt[best]) best = i;
        if (this.freedAt[i] === -Infinity) break;
      }
      if (best < 0) throw new Error(`no free slot for ${name}: all ${this.size} are in use`);
      if (this.freedAt[best] !== -Infinity) this.cookies[best] = (this.cookies[best] + 1) & 0xffff;
      this.byName.set(name, best);
      used.add(best);
    }
    return new Map(this.byName);
  }

  slot(name: string): number | undefined {
    return this.byName.get(name);
  }

  cookie(slot: number): number {
    return this.cookies[slot];
  }

  /** The highest slot in use + 1: how many records the engine must look at. */
  get extent(): number {
    let n = 0;
    for (const s of this.byName.values()) n = Math.max(n, s + 1);
    return n;
  }

  names(): Map<number, string> {
    return new Map([...this.byName].map(([n, s]) => [s, n]));
  }
}
