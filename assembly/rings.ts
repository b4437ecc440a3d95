// Where every frame ends: a tx ring (forwarded, or answered in place), the punt ring (to the host)
// or the free ring (dropped, with its reason). Each fate counts once, so rx = tx + punt + drop.
// Rings hold at least as many entries as there are buffers, so a producer never finds one full.
import {
  RING_HEAD, RING_MASK, RING_TAIL, RING_ENTRIES, DESC_SIZE, DESC_ADDR, DESC_LEN, DESC_PORT,
  DESC_REASON, DESC_BUF, C_TX, C_PUNT, C_PUNT_REASON_BASE, C_DROP, C_DROP_BASE, PC_TX_PACKETS, PC_TX_BYTES,
  PC_DROPS, PC_PUNTS, MAX_PORTS, EV_SIZE, EV_KIND, EV_FAMILY, EV_LEFT, EV_ENTRY, EVENT_RING_CAPACITY,
  FLOW4_KEY, FLOW6_KEY, FLOW4_ENTRY, FLOW6_ENTRY, FV_EXPIRES, C_FLOW_EVENTS, C_FLOW_EVENTS_LOST,
  CFGF_FLOW_EVENTS,
} from "./layout";
import { M_BUF, M_PORT, M_ADDR, M_LEN } from "./meta";
import { txRing, puntRing, freeRing, eventRing, cfgFlags, now } from "./state";
import { count, countAdd, portCounter } from "./counters";

let txHead: u32 = 0;
let puntHead: u32 = 0;
let freeHead: u32 = 0;
let eventHead: u32 = 0;

export function openRings(): void {
  txHead = load<u32>(txRing + RING_HEAD);
  puntHead = load<u32>(puntRing + RING_HEAD);
  freeHead = load<u32>(freeRing + RING_HEAD);
  if (eventRing) eventHead = load<u32>(eventRing + RING_HEAD);
}

/** Publishes what this batch produced: one release store per ring. */
export function closeRings(): void {
  atomic.store<u32>(txRing + RING_HEAD, txHead);
  atomic.store<u32>(puntRing + RING_HEAD, puntHead);
  atomic.store<u32>(freeRing + RING_HEAD, freeHead);
  if (eventRing) atomic.store<u32>(eventRing + RING_HEAD, eventHead);
}

/**
 * Reports flow entry e (kind EVK_*) on the event ring, when the config asks for flow events (an
 * HA active). A full ring loses the event, counted: the packet path never waits for the host.
 */
export function flowEvent(kind: u32, e: usize, v6: bool): void {
  if (!(cfgFlags & CFGF_FLOW_EVENTS) || !eventRing) return;
  if (eventHead - atomic.load<u32>(eventRing + RING_TAIL) >= <u32>EVENT_RING_CAPACITY) {
    count(C_FLOW_EVENTS_LOST);
    return;
  }
  const d = eventRing + RING_ENTRIES + <usize>(eventHead & (EVENT_RING_CAPACITY - 1)) * EV_SIZE;
  store<u8>(d + EV_KIND, <u8>kind);
  store<u8>(d + EV_FAMILY, v6 ? 6 : 4);
  store<u32>(d + EV_LEFT, load<u32>(e + (v6 ? FLOW6_KEY : FLOW4_KEY) + FV_EXPIRES) - now);
  memory.copy(d + EV_ENTRY, e, v6 ? FLOW6_ENTRY : FLOW4_ENTRY);
  eventHead++;
  count(C_FLOW_EVENTS);
}

@inline function put(ring: usize, head: u32, m: usize, a: usize, len: u32, port: u32, reason: u32): void {
  const d = ring + RING_ENTRIES + <usize>(head & load<u32>(ring + RING_MASK)) * DESC_SIZE;
  store<u32>(d + DESC_ADDR, <u32>a);
  store<u16>(d + DESC_LEN, <u16>len);
  store<u8>(d + DESC_PORT, <u8>port);
  store<u8>(d + DESC_REASON, <u8>reason);
  store<u32>(d + DESC_BUF, load<u32>(m + M_BUF));
}

/** A mirror device (index + 1) the next toTx's frame is copied to by the host; 0: none. */
let mirrorTag: u32 = 0;
export function tagMirror(device: i32): void {
  mirrorTag = device < 0 ? 0 : <u32>device + 1;
}

export function toTx(m: usize, a: usize, len: u32, port: u32): void {
  put(txRing, txHead++, m, a, len, port, mirrorTag);
  mirrorTag = 0;
  count(C_TX);
  count(portCounter(port, PC_TX_PACKETS));
  countAdd(portCounter(port, PC_TX_BYTES), len);
}

export function toPunt(m: usize, reason: u32): void {
  mirrorTag = 0;
  const port = <u32>load<u8>(m + M_PORT);
  put(puntRing, puntHead++, m, <usize>load<u32>(m + M_ADDR), load<u16>(m + M_LEN), port, reason);
  count(C_PUNT);
  count(C_PUNT_REASON_BASE + reason);
  if (port < <u32>MAX_PORTS) count(portCounter(port, PC_PUNTS));
}

export function toDrop(m: usize, reason: u32): void {
  mirrorTag = 0; // a tagged packet that is dropped after all sends no copy either
  const port = <u32>load<u8>(m + M_PORT);
  put(freeRing, freeHead++, m, <usize>load<u32>(m + M_ADDR), load<u16>(m + M_LEN), port, reason);
  count(C_DROP);
  count(C_DROP_BASE + reason);
  if (port < <u32>MAX_PORTS) count(portCounter(port, PC_DROPS));
}

/** Frames waiting on the rx ring, and the consumer's position. */
export function rxPending(rx: usize): u32 {
  return atomic.load<u32>(rx + RING_HEAD) - load<u32>(rx + RING_TAIL);
}

export function rxDesc(rx: usize, i: u32): usize {
  return rx + RING_ENTRIES + <usize>((load<u32>(rx + RING_TAIL) + i) & load<u32>(rx + RING_MASK)) * DESC_SIZE;
}

export function rxRelease(rx: usize, n: u32): void {
  atomic.store<u32>(rx + RING_TAIL, load<u32>(rx + RING_TAIL) + n);
}
