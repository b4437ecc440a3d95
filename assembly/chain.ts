// Service chains and ACLs.
//
// Chains: a chained (NAT) service's packets pass its chain's hops before the server, and replies
// pass them in reverse before the client. The packet's place in the chain is known from where it
// came from: a frame whose source MAC is a device of hop h, arriving on that device's port, has
// just passed hop h; anything else starts the chain (from the client, or from the server on the
// way back). An inline hop sends the frame to the flow's device (destination MAC rewritten, the
// IP packet untouched) and ends the packet's turn; a mirror hop tags the frame so that the host
// sends a copy to its device, and the packet goes on.
//
// ACLs: a table (rules in order, a default) judges the first packet of a flow entering a port,
// the service's own table for that port if it has one, else the port's.
import {
  CH_SIZE, CH_HOPS, CH_HOP, HOP_SIZE, HOP_KIND, HOP_ACTIVE, HOP_COUNT, HOP_DEV, HOPK_MIRROR,
  DEV_SIZE, DEV_FLAGS, DEV_PORT, DEV_MAC, DEVF_PRESENT, DEVF_UP, MAX_HOPS, MAX_CHAINS, MAX_DEVICES,
  XC_HOP_BASE, XC_HOP_WORDS, HC_TO_PACKETS, HC_TO_BYTES, HC_FROM_PACKETS, HC_FROM_BYTES,
  XC_DEV_BASE, DC_SENT, DC_RETURNED, XC_ACL_BASE, XC_ACL_DEFAULT_BASE, MAX_PORTS, PORT_SIZE,
  PORT_ACL, ACLT_SIZE, ACLT_FIRST, ACLT_COUNT, ACLT_DENY, ACLR_SIZE, ACLR_FAMILY, ACLR_PROTO,
  ACLR_PREFIX_LEN, ACLR_DENY, ACLR_SPORT_LO, ACLR_SPORT_HI, ACLR_DPORT_LO, ACLR_DPORT_HI, ACLR_SOURCE,
  MAX_ACL_TABLES, MAX_ACL_RULES, PORT_MAC,
} from "./layout";
import { M_ADDR, M_LEN, M_PORT, M_PROTO, M_KEY, M_HASH, IPPROTO_TCP, IPPROTO_UDP } from "./meta";
import { chains, devices, extraCounters, aclTables, aclRules, aclMap, ports } from "./state";

@inline function xcount(i: u32, v: u64): void {
  const p = extraCounters + (<usize>i << 3);
  store<u64>(p, load<u64>(p) + v);
}

@inline function hopAt(c: u32, h: u32): usize {
  return chains + <usize>c * CH_SIZE + CH_HOP + <usize>h * HOP_SIZE;
}

@inline function devAt(d: u32): usize {
  return devices + <usize>d * DEV_SIZE;
}

export function chainHops(c: u32): u32 {
  if (!chains || c >= <u32>MAX_CHAINS) return 0;
  const n = <u32>load<u8>(chains + <usize>c * CH_SIZE + CH_HOPS);
  return n > <u32>MAX_HOPS ? MAX_HOPS : n;
}

export function hopIsMirror(c: u32, h: u32): bool {
  return load<u8>(hopAt(c, h) + HOP_KIND) == HOPK_MIRROR;
}

/**
 * The hop of chain c the packet has just passed (returned from its device), or -1: it starts the
 * chain. Counts the return for the hop and the device.
 */
export function passedHop(c: u32, m: usize): i32 {
  const n = chainHops(c);
  if (!n) return -1;
  const a = <usize>load<u32>(m + M_ADDR);
  const port = <u32>load<u8>(m + M_PORT);
  const srcLo = load<u32>(a + 6);
  const srcHi = load<u16>(a + 10);
  for (let h: u32 = 0; h < n; h++) {
    const hop = hopAt(c, h);
    if (load<u8>(hop + HOP_KIND) == HOPK_MIRROR) continue; // copies do not come back
    let k = <u32>load<u8>(hop + HOP_COUNT);
    if (k > 8) k = 8;
    for (let i: u32 = 0; i < k; i++) {
      const d = <u32>load<u8>(hop + HOP_DEV + i);
      if (d >= <u32>MAX_DEVICES) continue;
      const dev = devAt(d);
      if (!(load<u8>(dev + DEV_FLAGS) & DEVF_PRESENT) || <u32>load<u8>(dev + DEV_PORT) != port) continue;
      if (load<u32>(dev + DEV_MAC) == srcLo && load<u16>(dev + DEV_MAC + 4) == srcHi) {
        const len = <u64>load<u16>(m + M_LEN);
        const hc = XC_HOP_BASE + (c * MAX_HOPS + h) * XC_HOP_WORDS;
        xcount(hc + HC_FROM_PACKETS, 1);
        xcount(hc + HC_FROM_BYTES, len);
        xcount(XC_DEV_BASE + d * 2 + DC_RETURNED, 1);
        return <i32>h;
      }
    }
  }
  return -1;
}

/**
 * The flow's device for hop h (its position by the flow's hash; an alternate that is up when
 * that device is down), or -1 when none is up. Counts what is sent to it.
 */
export function hopDevice(c: u32, h: u32, m: usize): i32 {
  const hop = hopAt(c, h);
  let active = <u32>load<u8>(hop + HOP_ACTIVE);
  let count = <u32>load<u8>(hop + HOP_COUNT);
  if (count > 8) count = 8;
  if (active > count) active = count;
  if (!active) return -1;
  let d = <u32>load<u8>(hop + HOP_DEV + load<u32>(m + M_HASH) % active);
  if (!devUp(d)) {
    d = 0xff;
    for (let i = active; i < count; i++) {
      const alt = <u32>load<u8>(hop + HOP_DEV + i);
      if (devUp(alt)) {
        d = alt;
        break;
      }
    }
    if (d == 0xff) return -1;
  }
  const len = <u64>load<u16>(m + M_LEN);
  const hc = XC_HOP_BASE + (c * MAX_HOPS + h) * XC_HOP_WORDS;
  xcount(hc + HC_TO_PACKETS, 1);
  xcount(hc + HC_TO_BYTES, len);
  xcount(XC_DEV_BASE + d * 2 + DC_SENT, 1);
  return <i32>d;
}

@inline function devUp(d: u32): bool {
  return d < <u32>MAX_DEVICES && (load<u8>(devAt(d) + DEV_FLAGS) & (DEVF_PRESENT | DEVF_UP)) == (DEVF_PRESENT | DEVF_UP);
}

export function devicePort(d: u32): u32 {
  return <u32>load<u8>(devAt(d) + DEV_PORT);
}

/** The frame's MACs for device d: its MAC as destination, the egress port's own as source. */
export function addressToDevice(m: usize, d: u32): void {
  const a = <usize>load<u32>(m + M_ADDR);
  const dev = devAt(d);
  const pm = ports + <usize>load<u8>(dev + DEV_PORT) * PORT_SIZE + PORT_MAC;
  store<u32>(a, load<u32>(dev + DEV_MAC));
  store<u16>(a + 4, load<u16>(dev + DEV_MAC + 4));
  store<u32>(a + 6, load<u32>(pm));
  store<u16>(a + 10, load<u16>(pm + 4));
}

// ---- ACLs ------------------------------------------------------------------------------------------

/** May the first packet of a new flow of service si, entering its port, pass? Counts the verdict. */
export function aclAllows(si: u32, m: usize, v6: bool): bool {
  if (!aclTables) return true;
  const port = <u32>load<u8>(m + M_PORT);
  if (port >= <u32>MAX_PORTS) return true;
  let t = aclMap ? <u32>load<u8>(aclMap + <usize>si * MAX_PORTS + port) : 0;
  if (!t) t = <u32>load<u8>(ports + <usize>port * PORT_SIZE + PORT_ACL);
  if (!t || t > <u32>MAX_ACL_TABLES) return true;
  const table = aclTables + <usize>(t - 1) * ACLT_SIZE;
  const first = <u32>load<u16>(table + ACLT_FIRST);
  let end = first + <u32>load<u16>(table + ACLT_COUNT);
  if (end > <u32>MAX_ACL_RULES) end = MAX_ACL_RULES;
  for (let i = first; i < end; i++) {
    const r = aclRules + <usize>i * ACLR_SIZE;
    if (aclMatches(r, m, v6)) {
      xcount(XC_ACL_BASE + i, 1);
      return load<u8>(r + ACLR_DENY) == 0;
    }
  }
  xcount(XC_ACL_DEFAULT_BASE + t - 1, 1);
  return load<u8>(table + ACLT_DENY) == 0;
}

function aclMatches(r: usize, m: usize, v6: bool): bool {
  const fam = <u32>load<u8>(r + ACLR_FAMILY);
  if (fam && fam != (v6 ? 6 : 4)) return false;
  const proto = load<u8>(m + M_PROTO);
  const rp = load<u8>(r + ACLR_PROTO);
  if (rp && rp != proto) return false;
  if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
    const key = m + M_KEY + (v6 ? 32 : 8);
    const sport = <u32>bswap<u16>(load<u16>(key));
    const dport = <u32>bswap<u16>(load<u16>(key + 2));
    if (sport < <u32>load<u16>(r + ACLR_SPORT_LO) || sport > <u32>load<u16>(r + ACLR_SPORT_HI)) return false;
    if (dport < <u32>load<u16>(r + ACLR_DPORT_LO) || dport > <u32>load<u16>(r + ACLR_DPORT_HI)) return false;
  } else if (load<u16>(r + ACLR_SPORT_LO) != 0 || load<u16>(r + ACLR_SPORT_HI) != 0xffff ||
             load<u16>(r + ACLR_DPORT_LO) != 0 || load<u16>(r + ACLR_DPORT_HI) != 0xffff) {
    return false; // a rule on ports names TCP or UDP only
  }
  return prefixMatches(m + M_KEY, r + ACLR_SOURCE, <u32>load<u8>(r + ACLR_PREFIX_LEN), v6);
}

/** Does the address at src fall in the prefix (pre, bits)? A byte at a time: whole bytes, then the top bits of the next. */
export function prefixMatches(src: usize, pre: usize, bits: u32, v6: bool): bool {
  if (bits > (v6 ? 128 : 32)) return false;
  let i: usize = 0;
  for (; bits >= 8; bits -= 8, i++) if (load<u8>(src + i) != load<u8>(pre + i)) return false;
  if (bits) {
    const mask = <u8>(<u32>0xff << (8 - bits));
    if ((load<u8>(src + i) & mask) != load<u8>(pre + i)) return false;
  }
  return true;
}
