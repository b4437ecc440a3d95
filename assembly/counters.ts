// Counters: u64 words owned by this engine alone (no atomics); the host reads them in place.
import { counters, backendCounters } from "./state";
import {
  C_SERVICE_BASE, SERVICE_COUNTER_WORDS, BACKEND_COUNTER_WORDS, C_PORT_BASE, PORT_COUNTER_WORDS,
} from "./layout";

@inline export function count(i: u32): void {
  const p = counters + (<usize>i << 3);
  store<u64>(p, load<u64>(p) + 1);
}

@inline export function countAdd(i: u32, v: u64): void {
  const p = counters + (<usize>i << 3);
  store<u64>(p, load<u64>(p) + v);
}

@inline export function countSub(i: u32): void {
  const p = counters + (<usize>i << 3);
  store<u64>(p, load<u64>(p) - 1);
}

@inline export function portCounter(port: u32, k: u32): u32 {
  return C_PORT_BASE + port * PORT_COUNTER_WORDS + k;
}

@inline export function serviceCounter(svc: u32, k: u32): u32 {
  return C_SERVICE_BASE + svc * SERVICE_COUNTER_WORDS + k;
}

@inline export function backendAdd(be: u32, k: u32, v: u64): void {
  const p = backendCounters + ((<usize>be * BACKEND_COUNTER_WORDS + k) << 3);
  store<u64>(p, load<u64>(p) + v);
}
