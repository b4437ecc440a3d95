// Which engine a frame goes to. Both directions of a flow must meet on one engine (NAT keeps its
// return entry there), so the hash covers the client's end of the flow: the source address and
// port of frames from the client side, the destination address and port of frames arriving on a
// server-facing port (replies on their way back to that client). Non-IP frames go to engine 0.

/** The ethertype after up to two VLAN tags, and where the L3 header starts. */
function l3Of(f: Uint8Array): { et: number; l3: number } {
  let off = 12;
  let et = (f[off] << 8) | f[off + 1];
  for (let tags = 0; (et === 0x8100 || et === 0x88a8) && tags < 2; tags++) {
    off += 4;
    et = (f[off] << 8) | f[off + 1];
  }
  return { et, l3: off + 2 };
}

/**
 * Where the packet inside IP-in-IP starts (IPv4 protocol 4 or 41, not a fragment; IPv6 next
 * header 4 or 41 right after the fixed header), as l3Of gives it; the frame's own otherwise.
 * Whether the tunnel is addressed to us is not asked: any consistent spread of it will do.
 */
function innerOf(f: Uint8Array, at: { et: number; l3: number }): { et: number; l3: number } {
  const { et, l3 } = at;
  let proto: number;
  let inner: number;
  if (et === 0x0800 && f.length >= l3 + 20) {
    if (((f[l3 + 6] << 8) | f[l3 + 7]) & 0x3fff) return at;
    proto = f[l3 + 9];
    inner = l3 + (f[l3] & 15) * 4;
  } else if (et === 0x86dd && f.length >= l3 + 40) {
    proto = f[l3 + 6];
    inner = l3 + 40;
  } else {
    return at;
  }
  if (proto === 4) return { et: 0x0800, l3: inner };
  if (proto === 41) return { et: 0x86dd, l3: inner };
  return at;
}

/**
 * FNV-1a over the client's address and port: cheap, and all a spread over a few engines needs.
 * openTunnels (a site that serves IP-in-IP's inner packets): a tunnelled packet is hashed by its
 * inner client, as its engine will key it, so that its NAT replies and installed entries meet it.
 */
export function clientSideHash(f: Uint8Array, serverFacing: boolean, openTunnels = false): number {
  const { et, l3 } = openTunnels ? innerOf(f, l3Of(f)) : l3Of(f);
  let addr: number;
  let alen: number;
  let l4: number;
  let proto: number;
  if (et === 0x0800 && f.length >= l3 + 20) {
    alen = 4;
    addr = l3 + (serverFacing ? 16 : 12);
    proto = f[l3 + 9];
    l4 = l3 + (f[l3] & 15) * 4;
    if (((f[l3 + 6] << 8) | f[l3 + 7]) & 0x3fff) proto = 0; // a fragment: no ports in most of them
  } else if (et === 0x86dd && f.length >= l3 + 40) {
    alen = 16;
    addr = l3 + (serverFacing ? 24 : 8);
    proto = f[l3 + 6];
    l4 = l3 + 40;
  } else {
    return 0;
  }
  let h = 0x811c9dc5;
  for (let i = 0; i < alen; i++) h = Math.imul(h ^ f[addr + i], 0x01000193);
  if ((proto === 6 || proto === 17) && f.length >= l4 + 4) {
    const p = l4 + (serverFacing ? 2 : 0);
    h = Math.imul(h ^ f[p], 0x01000193);
    h = Math.imul(h ^ f[p + 1], 0x01000193);
  }
  return h >>> 0;
}

/**
 * Is the frame's destination one of these addresses (IPv4 as 32-bit numbers, IPv6 as hex text)?
 * For ports that see both directions of flows (chain devices send both back): a packet to a VIP
 * is the client's (hash its source), anything else a reply (hash its destination, the client).
 */
export function dstIsIn(f: Uint8Array, v4: ReadonlySet<number>, v6: ReadonlySet<string>): boolean {
  const { et, l3 } = l3Of(f);
  if (et === 0x0800 && f.length >= l3 + 20) return v4.has(((f[l3 + 16] << 24) | (f[l3 + 17] << 16) | (f[l3 + 18] << 8) | f[l3 + 19]) >>> 0);
  if (et === 0x86dd && f.length >= l3 + 40) return v6.has(Buffer.from(f.subarray(l3 + 24, l3 + 40)).toString("hex"));
  return false;
}
