// QoS actions of a flow rule (FR_*, FRA_* in layout.ts) on a frame about to be forwarded: VLAN
// pop and push, 802.1p priority, MPLS pop and push, DSCP; in that order, so that a pop and a push
// together rewrite a tag or label, and the priority lands on the tag that leaves outermost.
//
// Tags and labels are inserted or removed by moving the bytes in front of them (12 MAC bytes, or
// the whole L2 header), never the payload: a push takes 4 bytes of the buffer's headroom, a pop
// gives them back. The frame's start, length and the header offsets in its metadata move with
// it, so the mode's rewrite and the tx descriptor that follow see the frame as it now is.
// Every write stays inside the frame as it was or as it becomes.
import {
  FR_ACTIONS, FR_TCI, FR_DSCP, FR_PCP, FR_MPLS, FRA_DSCP, FRA_PCP, FRA_VLAN_PUSH, FRA_VLAN_POP,
  FRA_MPLS_PUSH, FRA_MPLS_POP, MPLS_TPID, VLAN_TPID,
} from "./layout";
import { M_ADDR, M_LEN, M_L3, M_L4, M_ETYPE, M_L2ET, M_FAMILY, M_PFLAGS, PF_MPLS, FAM_IPV6, ETH_IPV4, ETH_IPV6 } from "./meta";
import { bufBase, bufSize } from "./state";
import { update16 } from "./checksum";

@inline function be16(p: usize): u32 {
  return <u32>bswap<u16>(load<u16>(p));
}

@inline function isVlanTpid(t: u32): bool {
  return t == 0x8100 || t == 0x88a8 || t == 0x9100; // the TPIDs the parser takes as tags
}

/** Moves every header offset of the metadata by d bytes (the bytes in front of them moved). */
function shift(m: usize, d: i32, l2et: bool): void {
  store<u16>(m + M_L3, <u16>(<i32>load<u16>(m + M_L3) + d));
  store<u16>(m + M_L4, <u16>(<i32>load<u16>(m + M_L4) + d));
  const et = <i32>load<u16>(m + M_ETYPE);
  if (et && l2et) store<u16>(m + M_ETYPE, <u16>(et + d));
  if (l2et) store<u16>(m + M_L2ET, <u16>(<i32>load<u16>(m + M_L2ET) + d));
}

/** Makes room for 4 bytes at offset at: the `at` bytes in front move 4 bytes earlier. */
function open4(m: usize, at: u32): bool {
  const a = <usize>load<u32>(m + M_ADDR);
  const slot = bufBase + ((a - bufBase) / bufSize) * bufSize;
  if (a - slot < 4) return false;
  memory.copy(a - 4, a, at);
  store<u32>(m + M_ADDR, <u32>(a - 4));
  store<u16>(m + M_LEN, load<u16>(m + M_LEN) + 4);
  return true;
}

/** Removes the 4 bytes at offset at: the `at` bytes in front move 4 bytes later. */
function close4(m: usize, at: u32): void {
  const a = <usize>load<u32>(m + M_ADDR);
  memory.copy(a + 4, a, at);
  store<u32>(m + M_ADDR, <u32>(a + 4));
  store<u16>(m + M_LEN, load<u16>(m + M_LEN) - 4);
}

function vlanPop(m: usize): void {
  const a = <usize>load<u32>(m + M_ADDR);
  if (!isVlanTpid(be16(a + 12))) return;
  close4(m, 12);
  shift(m, -4, true);
}

function vlanPush(m: usize, tci: u32): bool {
  if (!open4(m, 12)) return false;
  const a = <usize>load<u32>(m + M_ADDR);
  store<u16>(a + 12, bswap<u16>(<u16>VLAN_TPID));
  store<u16>(a + 14, bswap<u16>(<u16>tci));
  shift(m, 4, true);
  return true;
}

function setPcp(m: usize, pcp: u32): void {
  const a = <usize>load<u32>(m + M_ADDR);
  if (!isVlanTpid(be16(a + 12))) return; // untagged: nowhere to put a priority
  store<u8>(a + 14, <u8>((load<u8>(a + 14) & 0x1f) | (pcp << 5)));
}

function mplsPop(m: usize): void {
  if (!(load<u8>(m + M_PFLAGS) & PF_MPLS)) return;
  const l2et = <u32>load<u16>(m + M_L2ET);
  const a = <usize>load<u32>(m + M_ADDR);
  const bos = load<u8>(a + l2et + 4) & 1; // S bit of the top label (after the ethertype)
  close4(m, l2et + 2);
  shift(m, -4, false);
  if (bos) { // the last label: the ethertype says again what the IP version says
    const na = <usize>load<u32>(m + M_ADDR);
    const v6 = load<u8>(m + M_FAMILY) == FAM_IPV6;
    store<u16>(na + l2et, bswap<u16>(v6 ? ETH_IPV6 : ETH_IPV4));
    store<u8>(m + M_PFLAGS, load<u8>(m + M_PFLAGS) & ~PF_MPLS);
    store<u16>(m + M_ETYPE, <u16>l2et);
  }
}

function mplsPush(m: usize, lse: u32): bool {
  const l2et = <u32>load<u16>(m + M_L2ET);
  const only = !(load<u8>(m + M_PFLAGS) & PF_MPLS);
  if (!open4(m, l2et + 2)) return false;
  const a = <usize>load<u32>(m + M_ADDR);
  store<u32>(a + l2et + 2, bswap<u32>(lse | (only ? 0x100 : 0)));
  if (only) store<u16>(a + l2et, bswap<u16>(<u16>MPLS_TPID));
  shift(m, 4, false);
  store<u8>(m + M_PFLAGS, load<u8>(m + M_PFLAGS) | PF_MPLS);
  store<u16>(m + M_ETYPE, 0);
  return true;
}

function setDscp(m: usize, dscp: u32): void {
  const l3 = <usize>load<u32>(m + M_ADDR) + load<u16>(m + M_L3);
  if (load<u8>(m + M_FAMILY) == FAM_IPV6) {
    const w = bswap<u32>(load<u32>(l3));
    store<u32>(l3, bswap<u32>((w & 0xf03fffff) | (dscp << 22))); // TC bits 20-27: DSCP is the top 6
    return;
  }
  const old = <u32>load<u16>(l3);
  store<u8>(l3 + 1, <u8>((dscp << 2) | (load<u8>(l3 + 1) & 3)));
  store<u16>(l3 + 10, <u16>update16(load<u16>(l3 + 10), old, load<u16>(l3)));
}

/** Applies rule r's actions to the frame of m; false when a push found no headroom. */
export function applyActions(m: usize, r: usize): bool {
  const f = <u32>load<u8>(r + FR_ACTIONS);
  if (f & FRA_VLAN_POP) vlanPop(m);
  if ((f & FRA_VLAN_PUSH) && !vlanPush(m, load<u16>(r + FR_TCI))) return false;
  if (f & FRA_PCP) setPcp(m, load<u8>(r + FR_PCP));
  if (f & FRA_MPLS_POP) mplsPop(m);
  if ((f & FRA_MPLS_PUSH) && !mplsPush(m, load<u32>(r + FR_MPLS))) return false;
  if (f & FRA_DSCP) setDscp(m, load<u8>(r + FR_DSCP));
  return true;
}
