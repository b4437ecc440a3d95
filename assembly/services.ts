// The service index: (kind, family, protocol, port, address) -> service, open addressing with
// linear probing over a table at most half full, full 24-byte key compared. The host fills service
// and port records in the inactive config copy; buildIndex (same code as the lookup, so the two
// can never disagree on the hash) derives the index from them before the copy goes live.
import {
  SIX_SIZE, SIX_KIND, SIX_FAMILY, SIX_PROTO, SIX_PORT, SIX_ADDR, SIX_KEY, SIX_SERVICE,
  SIXK_EMPTY, SIXK_SERVICE, SIXK_VIP, SIXK_LOCAL, SIXK_VIP_ARP, SERVICE_HASH_SEED,
  SVC_SIZE, SVC_FLAGS, SVC_FAMILY, SVC_PROTO, SVC_PORT, SVC_VIP, SVCF_PRESENT, SVCF_ARP,
  CFG_SVC_INDEX, CFG_SVC_INDEX_MASK, CFG_SERVICES, CFG_PORTS, CFG_NUM_SERVICES,
  PORT_SIZE, PORT_FLAGS, PORT_IPV4, PORT_IPV6, PORTF_PRESENT, MAX_PORTS, SCR_PROBE_KEY,
} from "./layout";
import { hashWords } from "./hash";
import { svcIndex, svcIndexMask, scratch } from "./state";

// the 24-byte key being looked for, beside the cuckoo scratch entry
@inline function probeKey(): usize { return scratch + SCR_PROBE_KEY; }

/** Writes a probe key: addr is 4 or 16 bytes at a. */
@inline function makeKey(k: usize, kind: u32, fam: u32, proto: u32, port: u32, a: usize): void {
  store<u64>(k, 0);
  store<u8>(k + SIX_KIND, <u8>kind);
  store<u8>(k + SIX_FAMILY, <u8>fam);
  store<u8>(k + SIX_PROTO, <u8>proto);
  store<u16>(k + SIX_PORT, <u16>port);
  if (fam == 6) {
    store<u64>(k + SIX_ADDR, load<u64>(a));
    store<u64>(k + SIX_ADDR + 8, load<u64>(a + 8));
  } else {
    store<u64>(k + SIX_ADDR, <u64>load<u32>(a));
    store<u64>(k + SIX_ADDR + 8, 0);
  }
}

function find(index: usize, mask: u32, k: usize): usize {
  let i = hashWords(k, SIX_KEY >> 2, SERVICE_HASH_SEED) & mask;
  while (true) {
    const s = index + <usize>i * SIX_SIZE;
    if (load<u8>(s + SIX_KIND) == SIXK_EMPTY) return 0;
    if (load<u64>(s) == load<u64>(k) && load<u64>(s + 8) == load<u64>(k + 8) &&
        load<u64>(s + 16) == load<u64>(k + 16)) return s;
    i = (i + 1) & mask;
  }
}

/** The service for (family, destination address, protocol, raw port), or -1. Port 0 services catch every port. */
export function findService(fam: u32, a: usize, proto: u32, port: u32): i32 {
  const k = probeKey();
  makeKey(k, SIXK_SERVICE, fam, proto, port, a);
  let s = find(svcIndex, svcIndexMask, k);
  if (!s && port != 0) {
    store<u16>(k + SIX_PORT, 0);
    s = find(svcIndex, svcIndexMask, k);
  }
  return s ? <i32>load<u16>(s + SIX_SERVICE) : -1;
}

/** Is address a (of this kind: VIP, LOCAL, VIP_ARP) known? */
export function hasAddress(kind: u32, fam: u32, a: usize): bool {
  const k = probeKey();
  makeKey(k, kind, fam, 0, 0, a);
  return find(svcIndex, svcIndexMask, k) != 0;
}

function add(index: usize, mask: u32, k: usize, svc: u32): void {
  let i = hashWords(k, SIX_KEY >> 2, SERVICE_HASH_SEED) & mask;
  while (true) {
    const s = index + <usize>i * SIX_SIZE;
    if (load<u8>(s + SIX_KIND) == SIXK_EMPTY) {
      memory.copy(s, k, SIX_KEY);
      store<u16>(s + SIX_SERVICE, <u16>svc);
      return;
    }
    if (load<u64>(s) == load<u64>(k) && load<u64>(s + 8) == load<u64>(k + 8) &&
        load<u64>(s + 16) == load<u64>(k + 16)) return; // already there (two services, one VIP)
    i = (i + 1) & mask;
  }
}

/** Builds the service index of a config copy from its service and port records. */
export function buildIndex(copy: usize): void {
  const index = <usize>load<u32>(copy + CFG_SVC_INDEX);
  const mask = load<u32>(copy + CFG_SVC_INDEX_MASK);
  const svcs = <usize>load<u32>(copy + CFG_SERVICES);
  const n = load<u32>(copy + CFG_NUM_SERVICES);
  const ports = <usize>load<u32>(copy + CFG_PORTS);
  memory.fill(index, 0, (<usize>mask + 1) * SIX_SIZE);
  const k = probeKey();
  for (let i: u32 = 0; i < n; i++) {
    const r = svcs + <usize>i * SVC_SIZE;
    const flags = <u32>load<u8>(r + SVC_FLAGS);
    if (!(flags & SVCF_PRESENT)) continue;
    const fam = <u32>load<u8>(r + SVC_FAMILY);
    makeKey(k, SIXK_SERVICE, fam, load<u8>(r + SVC_PROTO), load<u16>(r + SVC_PORT), r + SVC_VIP);
    add(index, mask, k, i);
    makeKey(k, SIXK_VIP, fam, 0, 0, r + SVC_VIP);
    add(index, mask, k, i);
    if (flags & SVCF_ARP) {
      makeKey(k, SIXK_VIP_ARP, fam, 0, 0, r + SVC_VIP);
      add(index, mask, k, i);
    }
  }
  for (let p: u32 = 0; p < <u32>MAX_PORTS; p++) {
    const r = ports + <usize>p * PORT_SIZE;
    if (!(load<u8>(r + PORT_FLAGS) & PORTF_PRESENT)) continue;
    if (load<u32>(r + PORT_IPV4)) {
      makeKey(k, SIXK_LOCAL, 4, 0, 0, r + PORT_IPV4);
      add(index, mask, k, 0);
    }
    if (load<u64>(r + PORT_IPV6) | load<u64>(r + PORT_IPV6 + 8)) {
      makeKey(k, SIXK_LOCAL, 6, 0, 0, r + PORT_IPV6);
      add(index, mask, k, 0);
    }
  }
}
