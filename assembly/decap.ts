// IP-in-IP termination at a site appliance (CFGF_DECAP): a system appliance sends a client's packet
// to one of our port addresses inside an IPv4 or IPv6 header (protocol 4 or 41); we take the outer
// header off and serve the inner packet exactly as if it had come addressed to the VIP.
//
// It happens in the first pass, right after parse and before the flow hash, so that the key hashed,
// prefetched and looked up is the inner packet's and the second pass never knows of the tunnel.
// hasAddress writes its probe key to scratch: nothing else in the first pass uses that key, and the
// second pass (findService, hasAddress) starts only once every frame of the batch is parsed.
//
// The L2 header (MACs, VLAN tags, ethertype) moves forward over the outer IP header to sit right
// before the inner one. The frame's start only moves later inside its own buffer: the buffer slot
// (M_BUF) that every descriptor returns is unchanged, and the headroom a later encapsulation or
// VLAN push finds (measured from the buffer slot) only grows.
import { SIXK_LOCAL, C_DECAPSULATED } from "./layout";
import {
  M_ADDR, M_PORT, M_VERDICT, M_L3, M_L4, M_FAMILY, M_PROTO, M_PFLAGS, M_IPLEN, M_ETYPE, M_LEN, M_KEY,
  V_LOOKUP, FAM_IPV4, FAM_IPV6, PF_FRAGMENT, PF_MPLS, IPPROTO_IPIP, IPPROTO_IPV6, ETH_IPV4, ETH_IPV6,
} from "./meta";
import { parse } from "./parse";
import { hasAddress } from "./services";
import { count } from "./counters";

/**
 * Opens an IP-in-IP packet addressed to us: the frame becomes the inner packet (parsed afresh,
 * once: a tunnel inside the tunnel is served as the packet it is, never opened in turn). Anything
 * else (another protocol, a fragment, MPLS, another destination, a packet already dropped) is
 * left as it is. A bad inner packet is dropped by the parser with its reason.
 */
export function decapsulate(m: usize): void {
  const proto = load<u8>(m + M_PROTO);
  if (proto != IPPROTO_IPIP && proto != IPPROTO_IPV6) return;
  if (load<u8>(m + M_VERDICT) != V_LOOKUP) return;
  const fam = load<u8>(m + M_FAMILY);
  if (fam != FAM_IPV4 && fam != FAM_IPV6) return;
  // fragments are reassembled by no one here; under MPLS there is no ethertype to rewrite
  if (load<u8>(m + M_PFLAGS) & (PF_FRAGMENT | PF_MPLS)) return;
  const v6 = fam == FAM_IPV6;
  if (!hasAddress(SIXK_LOCAL, v6 ? 6 : 4, m + M_KEY + (v6 ? 16 : 4))) return;
  const a = <usize>load<u32>(m + M_ADDR);
  const l3 = <u32>load<u16>(m + M_L3);
  const outer = <u32>load<u16>(m + M_L4) - l3; // the outer header, IPv6 extension headers included
  const end = l3 + <u32>load<u16>(m + M_IPLEN); // Ethernet padding after the outer packet goes too
  const na = a + outer;
  memory.copy(na, a, l3); // overlapping: memory.copy is memmove
  store<u16>(na + load<u16>(m + M_ETYPE), bswap<u16>(proto == IPPROTO_IPIP ? ETH_IPV4 : ETH_IPV6));
  count(C_DECAPSULATED);
  parse(m, na, end - outer, <u32>load<u8>(m + M_PORT));
  // the inner packet's own length says where it ends (the outer may carry bytes after it)
  const ifam = load<u8>(m + M_FAMILY);
  if (load<u8>(m + M_VERDICT) == V_LOOKUP && (ifam == FAM_IPV4 || ifam == FAM_IPV6)) {
    store<u16>(m + M_LEN, <u16>(l3 + <u32>load<u16>(m + M_IPLEN)));
  }
}
