// The per-batch path, in three passes over a batch: parse every frame and hash its flow; touch
// each flow's two buckets in a tight loop of independent loads, so that the cache misses of the
// whole batch are in flight together (wasm has no prefetch instruction; out-of-order execution
// does the same job when nothing depends on the loads); then look each flow up and act. Every
// frame ends in exactly one of tx, punt, drop (see rings.ts).
import {
  MAX_BATCH, META_SIZE, DESC_ADDR, DESC_LEN, DESC_PORT, DESC_BUF, C_RX, C_BATCHES, PC_RX_PACKETS,
  PC_RX_BYTES, MAX_PORTS, FLOW4_KEY, FLOW6_KEY, FV_FLAGS, FV_PORT, FV_SERVICE, FV_BACKEND,
  FV_COOKIE, FV_EXPIRES, FV_PACKETS, FF_VALID, FF_REVERSE, FF_CLOSING, FF_ESTABLISHED,
  TO_TCP, TO_TCP_SYN, TO_TCP_CLOSING, TO_UDP, TO_ICMP, TO_OTHER, SVC_SIZE, SVC_FLAGS, SVC_MODE,
  SVC_MAGLEV, SVC_TARGET_PORT, SVCF_PRESENT, SVCF_DOWN_RESET, BE_SIZE, BE_STATE, BE_COOKIE,
  BE_PORT, BE_NAT_PORT, BE_ADDR, BES_ACTIVE, BES_DRAINING, BACKEND_NONE, MAGLEV_SEED, MODE_DSR,
  MODE_NAT, SC_PACKETS, SC_BYTES, SC_NEW_FLOWS, SC_DROPS, BC_PACKETS, BC_BYTES, BC_NEW_FLOWS,
  BC_FLOWS_LOST, C_FLOW_INSERTS, C_FLOW_INSERT_FAILED, C_FLOW_EXPIRED, C_RESELECTED,
  C_STATELESS, C_FLOW_REUSED, SIXK_VIP, SIXK_LOCAL, SIXK_VIP_ARP, CFGF_NOVIP_FORWARD, PORT_PEER, PUNT_ARP,
  PUNT_ND, PUNT_LOCAL, PUNT_ICMP_VIP, PUNT_DISCOVERY, DR_BAD_PORT, DR_NO_VIP, DR_NO_SERVICE, DR_NO_BACKEND,
  DR_FLOW_TABLE_FULL, DR_FRAGMENT_TO_VIP, DR_BACKEND_DOWN, CB_SINK, SCR_NAT_KEY, DR_NO_HEADROOM,
  MODE_TUNNEL, FV_RULE, FV_PACKETS_MASK, MAX_FLOW_RULES, FR_SIZE, FR_FAMILY, FR_PROTO,
  FR_PREFIX_LEN, FR_PORT, FR_BACKEND, FR_IDLE_MS, FR_SOURCE, FR_VIP,
  CFGF_STANDBY, DR_STANDBY, SVC_CHAIN, DR_ACL_DENY, DR_CHAIN_DOWN, EVK_NEW, EVK_CLOSING, EV_SIZE, EV_FAMILY, EV_LEFT, EV_ENTRY,
  RING_HEAD, RING_TAIL, RING_MASK, RING_ENTRIES, C_SYNC_INSTALLED, C_SYNC_FAILED,
  DESC_AUX, RXA_NO_RECOVER, CFGF_DECAP, SVCF_RECOVER, PUNT_RECOVER, C_RECOVER_PUNTED,
} from "./layout";
import {
  M_ADDR, M_LEN, M_PORT, M_VERDICT, M_REASON, M_FAMILY, M_PROTO, M_TCPF, M_PFLAGS, M_HASH,
  M_KEY, M_BUF, M_L4, M_L3, M_IPLEN, V_DROP, FAM_IPV4, FAM_IPV6, FAM_ARP, PF_FRAGMENT, PF_HASHED,
  IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6, TCP_SYN, TCP_ACK, TCP_FIN, TCP_RST, M_RXFLAGS,
} from "./meta";
import {
  meta, rxRing, now, timeouts, services, backends, maglevSize, cfgFlags, numServices, scratch,
  beginBatch, cb, rules, numRules, discGroup4, discPort, discGroup6a, discGroup6b, syncRing,
} from "./state";
import { parse } from "./parse";
import { decapsulate } from "./decap";
import { flowHash, touch, lookup, insert, remove, expired, sweep } from "./flow-table";
import { findService, hasAddress } from "./services";
import { hashWords, hash4 } from "./hash";
import { count, countAdd, portCounter, serviceCounter, backendAdd } from "./counters";
import { openRings, closeRings, toTx, toPunt, toDrop, rxPending, rxDesc, rxRelease, flowEvent, tagMirror } from "./rings";
import { chainHops, hopIsMirror, passedHop, hopDevice, devicePort, addressToDevice, aclAllows, prefixMatches } from "./chain";
import { dsr, natForward, natReturn, tunnel, portUp, portRec } from "./rewrite";
import { tcpReset } from "./icmp";
import { applyActions } from "./qos";

let sink: u32 = 0; // keeps the first pass's bucket touches from being optimised away

/** Processes up to max frames from the rx ring; returns how many it took. */
export function runBatch(max: u32): u32 {
  beginBatch();
  if (syncRing) installSynced();
  let n = rxPending(rxRing);
  if (n > max) n = max;
  if (n > <u32>MAX_BATCH) n = MAX_BATCH;
  if (n > 0) {
    openRings();
    for (let i: u32 = 0; i < n; i++) firstPass(rxDesc(rxRing, i), meta + <usize>i * META_SIZE);
    for (let i: u32 = 0; i < n; i++) {
      const m = meta + <usize>i * META_SIZE;
      if (load<u8>(m + M_PFLAGS) & PF_HASHED) sink += touch(load<u8>(m + M_FAMILY) == FAM_IPV6, load<u32>(m + M_HASH));
    }
    for (let i: u32 = 0; i < n; i++) secondPass(meta + <usize>i * META_SIZE);
    closeRings();
    rxRelease(rxRing, n);
    count(C_BATCHES);
  }
  sweep();
  store<u32>(cb + CB_SINK, sink);
  return n;
}

function firstPass(d: usize, m: usize): void {
  const a = <usize>load<u32>(d + DESC_ADDR);
  const len = <u32>load<u16>(d + DESC_LEN);
  const port = <u32>load<u8>(d + DESC_PORT);
  store<u32>(m + M_BUF, load<u32>(d + DESC_BUF));
  store<u8>(m + M_RXFLAGS, load<u8>(d + DESC_AUX));
  count(C_RX);
  parse(m, a, len, port);
  if (!portUp(port)) {
    store<u8>(m + M_VERDICT, V_DROP);
    store<u8>(m + M_REASON, DR_BAD_PORT);
    return;
  }
  count(portCounter(port, PC_RX_PACKETS));
  countAdd(portCounter(port, PC_RX_BYTES), len);
  if (cfgFlags & CFGF_DECAP) decapsulate(m); // here, not in parse: see decap.ts
  if (load<u8>(m + M_VERDICT) == V_DROP) return;
  const fam = load<u8>(m + M_FAMILY);
  if ((fam == FAM_IPV4 || fam == FAM_IPV6) && !(load<u8>(m + M_PFLAGS) & PF_FRAGMENT)) {
    const v6 = fam == FAM_IPV6;
    store<u32>(m + M_HASH, flowHash(m + M_KEY, v6));
    store<u8>(m + M_PFLAGS, load<u8>(m + M_PFLAGS) | PF_HASHED);
  }
}

/** Flow entries the host hands over from the HA peer, installed (or overwritten) before the batch. */
const SYNC_PER_BATCH: u32 = 4096;
function installSynced(): void {
  const head = atomic.load<u32>(syncRing + RING_HEAD);
  let tail = load<u32>(syncRing + RING_TAIL);
  const mask = load<u32>(syncRing + RING_MASK);
  for (let n: u32 = 0; tail != head && n < SYNC_PER_BATCH; n++, tail++) {
    const d = syncRing + RING_ENTRIES + <usize>(tail & mask) * EV_SIZE;
    const v6 = load<u8>(d + EV_FAMILY) == 6;
    const key = d + EV_ENTRY;
    const ko: usize = v6 ? FLOW6_KEY : FLOW4_KEY;
    const h = flowHash(key, v6);
    let e = lookup(key, h, v6);
    if (!e) e = insert(key, h, v6);
    if (!e) {
      count(C_SYNC_FAILED);
      continue;
    }
    memory.copy(e + ko, key + ko, 16);
    store<u8>(e + ko + FV_FLAGS, load<u8>(e + ko + FV_FLAGS) | <u8>FF_VALID);
    store<u32>(e + ko + FV_EXPIRES, now + load<u32>(d + EV_LEFT));
    count(C_SYNC_INSTALLED);
  }
  atomic.store<u32>(syncRing + RING_TAIL, tail);
}

function secondPass(m: usize): void {
  if (load<u8>(m + M_VERDICT) == V_DROP) return toDrop(m, load<u8>(m + M_REASON));
  const fam = load<u8>(m + M_FAMILY);
  if (cfgFlags & CFGF_STANDBY) {
    // the active peer forwards and answers; the standby only listens to advertisements
    if ((fam == FAM_IPV4 || fam == FAM_IPV6) && isDiscovery(m, fam == FAM_IPV6)) return toPunt(m, PUNT_DISCOVERY);
    return toDrop(m, DR_STANDBY);
  }
  if (fam == FAM_IPV4 || fam == FAM_IPV6) {
    const v6 = fam == FAM_IPV6;
    if (load<u8>(m + M_PFLAGS) & PF_FRAGMENT) return fragment(m, v6);
    const e = lookup(m + M_KEY, load<u32>(m + M_HASH), v6);
    if (e && !expired(load<u32>(e + (v6 ? FLOW6_KEY : FLOW4_KEY) + FV_EXPIRES))) {
      return established(m, e, v6);
    }
    return miss(m, e, v6);
  }
  if (fam == FAM_ARP) return arp(m);
  return noVip(m);
}

@inline function dstAddr(m: usize, v6: bool): usize {
  return m + M_KEY + (v6 ? 16 : 4);
}

@inline function dstPort(m: usize, v6: bool): u32 {
  return load<u16>(m + M_KEY + (v6 ? 34 : 10));
}

/** Sets the flow's flags and idle deadline from what this packet shows. */
function refresh(v: usize, m: usize): void {
  const proto = load<u8>(m + M_PROTO);
  const was = load<u8>(v + FV_FLAGS);
  let flags = was;
  let to: usize;
  if (proto == IPPROTO_TCP) {
    const tf = load<u8>(m + M_TCPF);
    if (tf & (TCP_FIN | TCP_RST)) flags |= <u8>FF_CLOSING;
    else if (!(tf & TCP_SYN) || (tf & TCP_ACK)) flags |= <u8>FF_ESTABLISHED;
    to = (flags & FF_CLOSING) ? TO_TCP_CLOSING : (flags & FF_ESTABLISHED) ? TO_TCP : TO_TCP_SYN;
  } else if (proto == IPPROTO_UDP) {
    to = TO_UDP;
  } else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
    to = TO_ICMP;
  } else {
    to = TO_OTHER;
  }
  let idle = load<u32>(timeouts + to);
  // a rule's idle timeout is for the flow's established life; SYN-only and closing stay short
  const ri = <u32>load<u8>(v + FV_RULE);
  if (ri && (to == TO_TCP || to == TO_UDP || to == TO_OTHER) && ri <= numRules) {
    const ruleIdle = load<u32>(ruleAt(ri) + FR_IDLE_MS);
    if (ruleIdle) idle = ruleIdle;
  }
  store<u8>(v + FV_FLAGS, flags);
  store<u32>(v + FV_EXPIRES, now + idle);
  const p = load<u32>(v + FV_PACKETS);
  store<u32>(v + FV_PACKETS, (p & ~FV_PACKETS_MASK) | ((p + 1) & FV_PACKETS_MASK));
  if ((flags & FF_CLOSING) && !(was & FF_CLOSING)) {
    const v6 = load<u8>(m + M_FAMILY) == FAM_IPV6;
    flowEvent(EVK_CLOSING, v - (v6 ? FLOW6_KEY : FLOW4_KEY), v6);
  }
}

/** Rule ri (index + 1, as flows keep it). */
@inline function ruleAt(ri: u32): usize {
  return rules + <usize>(ri - 1) * FR_SIZE;
}

/** Does rule r take this packet (family, protocol, VIP, port, source prefix)? */
function ruleMatches(r: usize, m: usize, v6: bool): bool {
  if (<u32>load<u8>(r + FR_FAMILY) != (v6 ? 6 : 4)) return false;
  const proto = load<u8>(r + FR_PROTO);
  if (proto && proto != load<u8>(m + M_PROTO)) return false;
  const port = load<u16>(r + FR_PORT);
  if (port && <u32>port != dstPort(m, v6)) return false;
  const dst = dstAddr(m, v6);
  const vip = r + FR_VIP;
  if (v6) {
    if (load<u64>(dst) != load<u64>(vip) || load<u64>(dst + 8) != load<u64>(vip + 8)) return false;
  } else if (load<u32>(dst) != load<u32>(vip)) {
    return false;
  }
  return prefixMatches(m + M_KEY, r + FR_SOURCE, <u32>load<u8>(r + FR_PREFIX_LEN), v6);
}

/** The first rule (index + 1) that takes a new flow's packet, or 0: a linear scan, new flows only. */
function matchRule(m: usize, v6: bool): u32 {
  let n = numRules;
  if (n > <u32>MAX_FLOW_RULES) n = MAX_FLOW_RULES;
  for (let i: u32 = 1; i <= n; i++) if (ruleMatches(ruleAt(i), m, v6)) return i;
  return 0;
}

/** Does backend b take new flows (the slot a rule names may be gone, down or draining)? */
@inline function takesNewFlows(b: u32): bool {
  return b != BACKEND_NONE && load<u8>(backends + <usize>b * BE_SIZE + BE_STATE) == BES_ACTIVE;
}

function established(m: usize, e: usize, v6: bool): void {
  const v = e + (v6 ? FLOW6_KEY : FLOW4_KEY);
  const si = <u32>load<u16>(v + FV_SERVICE);
  const s = services + <usize>si * SVC_SIZE;
  if (si >= numServices || !(load<u8>(s + SVC_FLAGS) & SVCF_PRESENT)) {
    remove(e, v6); // its service is gone: decide afresh
    return miss(m, 0, v6);
  }
  const b = <u32>load<u16>(v + FV_BACKEND);
  const be = backends + <usize>b * BE_SIZE;
  const len = <u64>load<u16>(m + M_LEN);
  if (load<u8>(v + FV_FLAGS) & FF_REVERSE) {
    refresh(v, m);
    const chained = <u32>load<u8>(s + SVC_CHAIN);
    if (chained && chainStep(m, chained - 1, true)) return; // on its way through the chain
    countAdd(serviceCounter(si, SC_PACKETS), 1);
    countAdd(serviceCounter(si, SC_BYTES), len);
    backendAdd(b, BC_PACKETS, 1);
    backendAdd(b, BC_BYTES, len);
    return natReturn(m, s, load<u8>(v + FV_PORT), v6);
  }
  // A bare SYN on a flow that has seen FIN or RST is a new connection reusing the 5-tuple (the
  // client recycled its port): it chooses afresh, so a draining backend gets no new connection.
  if ((load<u8>(v + FV_FLAGS) & FF_CLOSING) && load<u8>(m + M_PROTO) == IPPROTO_TCP &&
      (load<u8>(m + M_TCPF) & (TCP_SYN | TCP_ACK)) == TCP_SYN) {
    count(C_FLOW_REUSED);
    return newFlow(m, s, si, e, v6);
  }
  const st = load<u8>(be + BE_STATE);
  const sameBackend = load<u16>(be + BE_COOKIE) == load<u16>(v + FV_COOKIE);
  if ((st != BES_ACTIVE && st != BES_DRAINING) || !sameBackend) {
    if (sameBackend) backendAdd(b, BC_FLOWS_LOST, 1);
    if (load<u8>(s + SVC_FLAGS) & SVCF_DOWN_RESET) {
      remove(e, v6);
      if (load<u8>(m + M_PROTO) == IPPROTO_TCP && !(load<u8>(m + M_TCPF) & TCP_RST)) {
        return tcpReset(m, v6);
      }
      return toDrop(m, DR_BACKEND_DOWN);
    }
    count(C_RESELECTED);
    return newFlow(m, s, si, e, v6);
  }
  refresh(v, m);
  // the rule list may have changed since the flow began: its actions apply while it still matches
  let ri = <u32>load<u8>(v + FV_RULE);
  if (ri && (ri > numRules || !ruleMatches(ruleAt(ri), m, v6))) ri = 0;
  forward(m, s, si, b, be, v6, ri);
}

function miss(m: usize, e: usize, v6: bool): void {
  const fam: u32 = v6 ? 6 : 4;
  const si = findService(fam, dstAddr(m, v6), load<u8>(m + M_PROTO), dstPort(m, v6));
  if (si >= 0) {
    const s = services + <usize>si * SVC_SIZE;
    if (e) count(C_FLOW_EXPIRED); // the expired entry of this very key is taken over
    else if ((load<u8>(s + SVC_FLAGS) & SVCF_RECOVER) && midFlow(m)) return recover(m);
    return newFlow(m, s, <u32>si, e, v6);
  }
  notService(m, v6);
}

/**
 * A TCP packet that cannot open a connection (no SYN, no RST), not yet asked about: another
 * appliance (the HA peer, a site before a move) may hold its flow, and Maglev's choice here may
 * be another server than the one the connection lives on.
 */
@inline function midFlow(m: usize): bool {
  return load<u8>(m + M_PROTO) == IPPROTO_TCP && !(load<u8>(m + M_TCPF) & (TCP_SYN | TCP_RST)) &&
    !(load<u8>(m + M_RXFLAGS) & RXA_NO_RECOVER);
}

/** To the host, which asks its peers who has the flow and re-injects the frame (RXA_NO_RECOVER). */
function recover(m: usize): void {
  count(C_RECOVER_PUNTED);
  toPunt(m, PUNT_RECOVER);
}

/**
 * Picks a backend and records the flow (reusing entry e of the same key if given): the first flow
 * rule that matches names it, unless that backend takes no new flows; else Maglev picks.
 */
function newFlow(m: usize, s: usize, si: u32, e: usize, v6: bool): void {
  const key = m + M_KEY;
  if (!aclAllows(si, m, v6)) {
    if (e) remove(e, v6);
    count(serviceCounter(si, SC_DROPS));
    return toDrop(m, DR_ACL_DENY);
  }
  const ri = matchRule(m, v6);
  let b: u32 = ri ? <u32>load<u16>(ruleAt(ri) + FR_BACKEND) : BACKEND_NONE;
  if (!takesNewFlows(b)) {
    const mh = v6 ? hashWords(key, 10, MAGLEV_SEED) : hash4(key, MAGLEV_SEED);
    b = <u32>load<u16>(<usize>load<u32>(s + SVC_MAGLEV) + <usize>(mh % maglevSize) * 2);
  }
  if (b == BACKEND_NONE) {
    if (e) remove(e, v6);
    count(serviceCounter(si, SC_DROPS));
    return toDrop(m, DR_NO_BACKEND);
  }
  const be = backends + <usize>b * BE_SIZE;
  const nat = load<u8>(s + SVC_MODE) == MODE_NAT;
  const np: u32 = nat ? natPort(s, be, m, v6) : 0;
  if (!e) e = insert(key, load<u32>(m + M_HASH), v6);
  if (e) {
    fillFlow(e, v6, FF_VALID, m, si, b, be, ri);
    count(C_FLOW_INSERTS);
    if (nat && !insertReverse(m, si, b, be, np, v6)) {
      remove(e, v6);
      count(C_FLOW_INSERT_FAILED);
      count(serviceCounter(si, SC_DROPS));
      return toDrop(m, DR_FLOW_TABLE_FULL);
    }
  } else {
    count(C_FLOW_INSERT_FAILED);
    // Maglev alone still picks the same backend for the flow's later packets; NAT cannot do without
    if (nat) {
      count(serviceCounter(si, SC_DROPS));
      return toDrop(m, DR_FLOW_TABLE_FULL);
    }
    count(C_STATELESS);
  }
  count(serviceCounter(si, SC_NEW_FLOWS));
  backendAdd(b, BC_NEW_FLOWS, 1);
  forwardTo(m, s, si, b, be, v6, np, ri);
}

/** The NAT return entry: (backend, backend port) -> (client, client port) finds its way back. */
function insertReverse(m: usize, si: u32, b: u32, be: usize, np: u32, v6: bool): bool {
  const k = scratch + SCR_NAT_KEY;
  const key = m + M_KEY;
  if (v6) {
    memory.copy(k, be + BE_ADDR, 16);
    memory.copy(k + 16, key, 16);
    store<u16>(k + 32, <u16>np);
    store<u16>(k + 34, load<u16>(key + 32));
    store<u32>(k + 36, load<u32>(key + 36));
  } else {
    store<u32>(k, load<u32>(be + BE_ADDR));
    store<u32>(k + 4, load<u32>(key));
    store<u16>(k + 8, <u16>np);
    store<u16>(k + 10, load<u16>(key + 8));
    store<u32>(k + 12, load<u32>(key + 12));
  }
  const h = flowHash(k, v6);
  let e = lookup(k, h, v6);
  if (!e) e = insert(k, h, v6);
  if (!e) return false;
  fillFlow(e, v6, FF_VALID | FF_REVERSE, m, si, b, be, 0); // replies get no actions
  return true;
}

/** A new entry's value: the selection, the port the flow came in on, a first refresh. */
function fillFlow(e: usize, v6: bool, flags: u32, m: usize, si: u32, b: u32, be: usize, ri: u32): void {
  const v = e + (v6 ? FLOW6_KEY : FLOW4_KEY);
  store<u8>(v + FV_FLAGS, <u8>flags);
  store<u8>(v + FV_PORT, load<u8>(m + M_PORT));
  store<u16>(v + FV_SERVICE, <u16>si);
  store<u16>(v + FV_BACKEND, <u16>b);
  store<u16>(v + FV_COOKIE, load<u16>(be + BE_COOKIE));
  store<u32>(v + FV_PACKETS, 0);
  store<u8>(v + FV_RULE, <u8>ri);
  refresh(v, m);
  flowEvent(EVK_NEW, e, v6);
}

/** Where NAT sends a flow: the backend's own port, else the service's target, else the client's. */
@inline function natPort(s: usize, be: usize, m: usize, v6: bool): u32 {
  let np = <u32>load<u16>(be + BE_NAT_PORT);
  if (!np) np = load<u16>(s + SVC_TARGET_PORT);
  if (!np) np = dstPort(m, v6);
  return np;
}

function forward(m: usize, s: usize, si: u32, b: u32, be: usize, v6: bool, ri: u32): void {
  forwardTo(m, s, si, b, be, v6, load<u8>(s + SVC_MODE) == MODE_NAT ? natPort(s, be, m, v6) : 0, ri);
}

/** Sends the packet to backend b the service's way; ri (rule index + 1, or 0): its actions first. */
function forwardTo(m: usize, s: usize, si: u32, b: u32, be: usize, v6: bool, np: u32, ri: u32): void {
  const port = <u32>load<u8>(be + BE_PORT);
  if (!portUp(port)) return toDrop(m, DR_BAD_PORT);
  const chained = <u32>load<u8>(s + SVC_CHAIN);
  if (chained && load<u8>(s + SVC_MODE) == MODE_NAT && chainStep(m, chained - 1, false)) return; // on its way through the chain
  const len = <u64>load<u16>(m + M_LEN);
  countAdd(serviceCounter(si, SC_PACKETS), 1);
  countAdd(serviceCounter(si, SC_BYTES), len);
  backendAdd(b, BC_PACKETS, 1);
  backendAdd(b, BC_BYTES, len);
  const mode = load<u8>(s + SVC_MODE);
  // Actions go before the mode's rewrite, which reads the frame's start and offsets from the
  // metadata the actions keep up to date: the bytes that leave are the same as after it. A tunnel
  // gets none: its outer header is ours, and the inner packet is the client's to mark.
  if (ri && mode != MODE_TUNNEL && !applyActions(m, ruleAt(ri))) return toDrop(m, DR_NO_HEADROOM);
  if (mode == MODE_DSR) return dsr(m, be, port);
  if (mode == MODE_NAT) return natForward(m, be, port, v6, np);
  tunnel(m, s, be, port, v6);
}

/**
 * The packet's next step in chain c (forward, or reverse for replies): to the next inline hop's
 * device (true: handled here), or past the last hop (false: the caller sends it on to the server or
 * the client, with the last mirror's copy tagged). A hop with no device up drops the packet.
 */
function chainStep(m: usize, c: u32, reverse: bool): bool {
  const n = <i32>chainHops(c);
  const passed = passedHop(c, m);
  let mirror: i32 = -1;
  let h: i32 = reverse ? (passed < 0 ? n - 1 : passed - 1) : passed + 1;
  for (; reverse ? h >= 0 : h < n; h += reverse ? -1 : 1) {
    const d = hopDevice(c, <u32>h, m);
    if (hopIsMirror(c, <u32>h)) {
      if (d >= 0) mirror = d;
      continue;
    }
    if (d < 0) {
      toDrop(m, DR_CHAIN_DOWN);
      return true;
    }
    addressToDevice(m, <u32>d);
    tagMirror(mirror);
    toTx(m, <usize>load<u32>(m + M_ADDR), load<u16>(m + M_LEN), devicePort(<u32>d));
    return true;
  }
  tagMirror(mirror);
  return false;
}

/** A service advertisement: UDP to the discovery port, at the group of its family or an address of ours. */
function isDiscovery(m: usize, v6: bool): bool {
  if (!discPort || load<u8>(m + M_PROTO) != IPPROTO_UDP || dstPort(m, v6) != discPort) return false;
  const dst = dstAddr(m, v6);
  if (v6 ? load<u64>(dst) == discGroup6a && load<u64>(dst + 8) == discGroup6b : load<u32>(dst) == discGroup4) return true;
  return hasAddress(SIXK_LOCAL, v6 ? 6 : 4, dst);
}

/** Not a service: neighbour discovery, the appliance's own, a VIP on an unserved port, or transit. */
function notService(m: usize, v6: bool): void {
  const fam: u32 = v6 ? 6 : 4;
  const dst = dstAddr(m, v6);
  const proto = load<u8>(m + M_PROTO);
  const type = load<u8>(m + M_TCPF);
  // A solicitation goes to the solicited-node group, or (reachability probes) to the very address
  // it asks about: a VIP included. Either way it is the target that says whether it is ours.
  if (v6 && proto == IPPROTO_ICMPV6 && type == 135) {
    const a = <usize>load<u32>(m + M_ADDR);
    const l4 = <u32>load<u16>(m + M_L4);
    if (l4 + 24 <= <u32>load<u16>(m + M_L3) + <u32>load<u16>(m + M_IPLEN)) {
      const target = a + l4 + 8;
      if (hasAddress(SIXK_VIP_ARP, 6, target) || hasAddress(SIXK_LOCAL, 6, target)) {
        return toPunt(m, PUNT_ND);
      }
    }
  }
  if (isDiscovery(m, v6)) return toPunt(m, PUNT_DISCOVERY);
  if (hasAddress(SIXK_LOCAL, fam, dst)) return toPunt(m, PUNT_LOCAL);
  if (hasAddress(SIXK_VIP, fam, dst)) {
    if ((proto == IPPROTO_ICMP && type == 8) || (proto == IPPROTO_ICMPV6 && type == 128)) {
      return toPunt(m, PUNT_ICMP_VIP);
    }
    return toDrop(m, DR_NO_SERVICE);
  }
  noVip(m);
}

function fragment(m: usize, v6: bool): void {
  const fam: u32 = v6 ? 6 : 4;
  const dst = dstAddr(m, v6);
  if (hasAddress(SIXK_LOCAL, fam, dst)) return toPunt(m, PUNT_LOCAL);
  // ports are not in every fragment, so no fragment could be kept on its flow's backend
  if (hasAddress(SIXK_VIP, fam, dst)) return toDrop(m, DR_FRAGMENT_TO_VIP);
  noVip(m);
}

function arp(m: usize): void {
  const target = m + M_KEY + 4;
  if (hasAddress(SIXK_VIP_ARP, 4, target) || hasAddress(SIXK_LOCAL, 4, target)) {
    return toPunt(m, PUNT_ARP);
  }
  noVip(m);
}

function noVip(m: usize): void {
  if (cfgFlags & CFGF_NOVIP_FORWARD) {
    const peer = <u32>load<u8>(portRec(load<u8>(m + M_PORT)) + PORT_PEER);
    if (portUp(peer)) return toTx(m, <usize>load<u32>(m + M_ADDR), load<u16>(m + M_LEN), peer);
  }
  toDrop(m, DR_NO_VIP);
}

