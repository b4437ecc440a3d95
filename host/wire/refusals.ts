// Refusals counted by source address, as every receiver of signed datagrams keeps them (discovery
// registry, supervisor, heartbeats): an operator can tell a mis-keyed peer from an attack. The
// number of sources is bounded: past MAX_SOURCES, new ones are counted together under "other".

export const MAX_SOURCES = 256;

export function countBySource<K extends string>(by: Map<string, Partial<Record<K, number>>>, from: string, reason: K): void {
  const key = by.has(from) || by.size < MAX_SOURCES ? from : "other";
  const e: Partial<Record<K, number>> = by.get(key) ?? {};
  e[reason] = (e[reason] ?? 0) + 1;
  by.set(key, e);
}
