// The data plane's memory layout, limits, flags and counter indexes: declared once, imported by
// both the engine (AssemblyScript) and the host (TypeScript). Written in the subset both compilers
// read: plain integer constants, no types, no functions. Byte offsets unless a name says otherwise.
//
// An engine's memory holds, at offsets the host fixes at boot from the configuration:
//   control block | rings (rx, tx, punt, free) | packet buffers | counters | flow tables (v4, v6)
//   | two config copies (ports, service index, services, backends, Maglev tables) | scratch
// The host writes every offset into the control block; the engine copies them into globals once.

export const LAYOUT_MAGIC = 0x46535731; // "FSW1": a control block the engine recognises
export const LAYOUT_VERSION = 1;

// ---- limits -------------------------------------------------------------------------------
export const MAX_PORTS = 16; // board ports an engine can address (u8 port numbers, 0xff = none)
export const PORT_NONE = 0xff;
export const MAX_BATCH = 256; // frames handled per run() call; bounds the per-packet scratch area
export const MAX_VLAN_TAGS = 2; // 802.1Q and QinQ; a third tag is dropped, counted
export const MAX_MPLS_LABELS = 8; // deeper stacks are dropped, counted
export const MAX_IPV6_EXT = 8; // extension headers walked before the packet is called malformed
export const BACKEND_NONE = 0xffff; // Maglev slot / flow value with no backend
export const HEADROOM = 128; // bytes before each frame for encapsulation without moving payload
export const TAILROOM = 64; // bytes after the largest frame, so replies built in place fit
export const SWEEP_BUCKETS_PER_BATCH = 16; // expired flows reclaimed incrementally, per batch
export const ICMP4_QUOTE_MAX = 548; // RFC 1812: an ICMPv4 error stays within 576 bytes
export const ICMP6_QUOTE_MAX = 1232; // RFC 4443: an ICMPv6 error stays within 1280 bytes
export const DEFAULT_MAGLEV_SIZE = 65537; // prime; ~650 slots per backend at 100 backends
export const MAGLEV_SEED = 0x2545f491; // fixed: every engine and appliance must pick alike
export const SERVICE_HASH_SEED = 0x5bd1e995;
export const MAX_FLOW_RULES = 255; // a flow entry keeps its rule as index + 1 in 8 bits (FV_RULE)

// ---- control block (at the memory base, CB_SIZE bytes) -------------------------------------
export const CB_SIZE = 512;
export const CB_MAGIC = 0;
export const CB_VERSION = 4;
export const CB_NOW_MS = 8; // coarse clock, host-written; u32 milliseconds, wraps (compared wrap-safe)
export const CB_CONFIG_GEN = 12; // host: which config copy (gen & 1) is live
export const CB_ACK_GEN = 16; // engine: the generation it read at the start of its last batch
export const CB_ENGINE_ID = 20;
export const CB_FLOW_SEED = 24; // per-boot random seed for the flow-table hash (collision attacks)
export const CB_SINK = 28; // engine: where the bucket-prefetch pass leaves its (meaningless) sum
// Threaded engines: doorbells are i32 words for Atomics.wait / notify.
export const CB_RX_BELL = 32; // host: bumped after frames were put on the rx ring; the engine waits on it
export const CB_TX_BELL = 36; // engine: bumped after a batch that produced frames for the host
export const CB_IDLE = 40; // engine: 1 while it sleeps between batches (it holds no config copy then)
export const CB_STOP = 44; // host: 1 asks the engine's worker to return
export const CB_BATCHES_RUN = 48; // engine worker: run() calls, for the host's liveness view
export const CB_RX_RING = 64;
export const CB_TX_RING = 68;
export const CB_PUNT_RING = 72;
export const CB_FREE_RING = 76;
export const CB_EVENT_RING = 80; // engine -> host: flow events (EV_* records), for HA flow-state sync
export const CB_SYNC_RING = 84; // host -> engine: flow entries to install (EV_* records), from the HA peer
export const CB_BUF_BASE = 96;
export const CB_BUF_COUNT = 100;
export const CB_BUF_SIZE = 104;
export const CB_COUNTERS = 112;
export const CB_COUNTER_WORDS = 116;
export const CB_BACKEND_COUNTERS = 120; // index of backend 0's first counter word
export const CB_FLOW4_BASE = 128;
export const CB_FLOW4_BUCKETS = 132; // any count: a hash picks a bucket by multiply-shift
export const CB_FLOW6_BASE = 136;
export const CB_FLOW6_BUCKETS = 140;
export const CB_CONFIG0 = 144;
export const CB_CONFIG1 = 148;
export const CB_MAX_SERVICES = 160;
export const CB_MAX_BACKENDS = 164;
export const CB_SCRATCH = 168; // the engine's scratch area (SCR_*)
export const CB_SWEEP_CURSOR4 = 172; // engine-owned: next bucket the sweeper looks at
export const CB_SWEEP_CURSOR6 = 176;
export const CB_EXTRA_COUNTERS = 180; // index of the first chain/ACL counter word (XC_* below)

// ---- rings: single producer, single consumer; head/tail are free-running u32 counters ----------
export const RING_HEAD = 0; // producer-written
export const RING_MASK = 4; // capacity - 1 (capacity a power of two, >= buffer count: never full)
export const RING_TAIL = 64; // consumer-written, its own cache line
export const RING_ENTRIES = 128;
export const DESC_SIZE = 16;
export const DESC_ADDR = 0; // u32 absolute address of the frame's first byte
export const DESC_LEN = 4; // u16 frame length
export const DESC_PORT = 6; // u8 ingress port (rx), egress port (tx), ingress port (punt)
export const DESC_REASON = 7; // u8 punt reason, or drop reason on the free ring
export const DESC_BUF = 8; // u32 buffer slot index: the buffer goes back to its owner by this
export const DESC_AUX = 12; // u32 rx: RXA_* flags from the host (written on every push); else spare
export const RXA_NO_RECOVER = 1; // a frame the host re-injects after asking peers: never punted for recovery again

// punt reasons (DESC_REASON on the punt ring)
export const PUNT_ARP = 1; // ARP for a VIP that answers ARP, or for one of our addresses
export const PUNT_ND = 2; // IPv6 neighbour solicitation for such an address
export const PUNT_LOCAL = 3; // IP packet addressed to the appliance itself
export const PUNT_ICMP_VIP = 4; // ICMP/ICMPv6 echo to a VIP: the host answers
export const PUNT_DISCOVERY = 5; // UDP to the advertisement group or to our own address, at the discovery port
export const PUNT_RECOVER = 6; // mid-flow TCP with no entry, to a recovering service: the host asks its peers who has it

// ---- config copy: header, then ports, service index, services, backends, Maglev tables --------
export const CFG_HEADER_SIZE = 256;
export const CFG_FLAGS = 0;
export const CFG_SVC_INDEX = 4; // absolute address of the service index (open addressing)
export const CFG_SVC_INDEX_MASK = 8; // slots - 1
export const CFG_SERVICES = 12; // absolute address of service records
export const CFG_BACKENDS = 16; // absolute address of backend records
export const CFG_PORTS = 20; // absolute address of port records
export const CFG_MAGLEV = 24; // absolute address of the first Maglev table
export const CFG_MAGLEV_SIZE = 28; // M, prime
export const CFG_NUM_SERVICES = 32; // records in use (index keys are built from these)
export const CFG_RULES = 36; // absolute address of the flow-rule records (FR_*), in priority order
export const CFG_NUM_RULES = 40; // rules in use, at most MAX_FLOW_RULES
export const CFG_DISC_GROUP4 = 44; // u32 raw: IPv4 group service advertisements are sent to (0: none)
export const CFG_DISC_PORT = 48; // u16 raw: their UDP port; 0 = discovery off, nothing punted for it
export const CFG_CHAINS = 52; // absolute address of the chain records (CH_*), MAX_CHAINS of them
export const CFG_DEVICES = 56; // absolute address of the chain device records (DEV_*), MAX_DEVICES
export const CFG_ACL_TABLES = 152; // absolute address of the ACL table records (ACLT_*), MAX_ACL_TABLES
export const CFG_ACL_RULES = 156; // absolute address of the ACL rule records (ACLR_*), MAX_ACL_RULES
export const CFG_ACL_MAP = 160; // absolute address of u8[service][MAX_PORTS]: ACL table + 1 per ingress port
export const CFG_DISC_GROUP6 = 224; // 16 bytes: IPv6 group service advertisements are sent to (all zero: none)
export const CFG_LOCAL4 = 64; // up to 8 appliance IPv4 addresses (u32 raw), 0 = unused
export const CFG_LOCAL4_MAX = 8;
export const CFG_TIMEOUTS = 128; // u32 milliseconds each, below
export const TO_TCP = 0;
export const TO_TCP_SYN = 4; // a flow that has seen only a SYN: short, so floods age out fast
export const TO_TCP_CLOSING = 8; // after FIN or RST
export const TO_UDP = 12;
export const TO_ICMP = 16;
export const TO_OTHER = 20;

export const CFGF_NOVIP_FORWARD = 1; // traffic for no VIP goes out the port's peer at L2
export const CFGF_STANDBY = 2; // HA standby: nothing is forwarded or answered; advertisements still punted
export const CFGF_FLOW_EVENTS = 4; // report flow creations and closings on the event ring (HA active)
export const CFGF_DECAP = 8; // site: open IP-in-IP addressed to our own address and serve the inner packet

// port record
export const PORT_SIZE = 64;
export const PORT_FLAGS = 0; // u8
export const PORT_PEER = 1; // u8: where no-VIP traffic goes at L2 (PORT_NONE: drop)
export const PORT_MTU = 2; // u16 IP MTU of the link
export const PORT_MAC = 4; // 6 bytes
export const PORT_GW_MAC = 10; // 6 bytes: next hop for traffic the appliance originates or NATs back
export const PORT_IPV4 = 16; // u32 raw, 0 = none
export const PORT_IPV6 = 32; // 16 bytes
export const PORT_ACL = 48; // u8: ACL table + 1 for new flows entering here (0: none); a service's own table wins
export const PORTF_PRESENT = 1;
export const PORTF_GW_KNOWN = 2;

// service index slot: full key, so a collision can never pick the wrong service
export const SIX_SIZE = 32;
export const SIX_KIND = 0; // u8 } the key: 24 bytes, compared whole
export const SIX_FAMILY = 1; // u8 }  4 or 6
export const SIX_PROTO = 2; // u8 }
export const SIX_PORT = 4; // u16 } raw (network order as loaded); bytes 3, 6, 7 are zero
export const SIX_ADDR = 8; // 16 bytes }
export const SIX_KEY = 24;
export const SIX_SERVICE = 24; // u16
export const SIXK_EMPTY = 0;
export const SIXK_SERVICE = 1; // (addr, proto, port) -> service
export const SIXK_VIP = 2; // (addr): some service lives here; used for fragments and unknown ports
export const SIXK_LOCAL = 3; // (addr): the appliance's own address
export const SIXK_VIP_ARP = 4; // (addr): a VIP the appliance answers ARP / ND for

// service record
export const SVC_SIZE = 64;
export const SVC_FLAGS = 0; // u8
export const SVC_FAMILY = 1; // u8
export const SVC_PROTO = 2; // u8
export const SVC_MODE = 3; // u8
export const SVC_PORT = 4; // u16 raw
export const SVC_TARGET_PORT = 6; // u16 raw, NAT: 0 keeps the client's destination port
export const SVC_MAGLEV = 8; // u32 absolute address of this service's table
export const SVC_ENCAP = 12; // u8 tunnel encapsulation
export const SVC_GUE_PORT = 14; // u16 raw
export const SVC_TUN_SRC4 = 16; // u32 raw
export const SVC_VIP = 20; // 16 bytes
export const SVC_TUN_SRC6 = 36; // 16 bytes
export const SVC_CHAIN = 52; // u8: chain index + 1 (0: none); NAT services only
export const SVCF_PRESENT = 1;
export const SVCF_DOWN_RESET = 2; // flows of a down backend: reset instead of re-selecting
export const SVCF_ARP = 4;
export const SVCF_RECOVER = 8; // TCP: a mid-flow packet with no entry is punted (PUNT_RECOVER) before Maglev picks

export const MODE_DSR = 1;
export const MODE_NAT = 2;
export const MODE_TUNNEL = 3;
export const ENCAP_IPIP = 1; // IPv4-in-IP (4) or IPv6-in-IP (41), outer family = backend's
export const ENCAP_GUE = 2; // GUE variant 0 over UDP

// backend record
export const BE_SIZE = 64;
export const BE_STATE = 0; // u8
export const BE_FAMILY = 1; // u8
export const BE_PORT = 2; // u8 egress board port
export const BE_COOKIE = 4; // u16: changes when a slot is reused, so old flows do not follow it
export const BE_NAT_PORT = 6; // u16 raw, NAT: overrides the service's target port when non-zero
export const BE_MAC = 8; // 6 bytes
export const BE_ADDR = 16; // 16 bytes
export const BES_UNUSED = 0;
export const BES_ACTIVE = 1;
export const BES_DRAINING = 2; // keeps its flows, gets no new ones
export const BES_DOWN = 3; // gets nothing; its flows are re-selected or reset

// flow rule: a match on new flows (source prefix, protocol, VIP, port) that names the backend and
// the QoS actions applied to the flow's packets toward it (assembly/qos.ts). Scanned in order.
export const FR_SIZE = 64;
export const FR_FAMILY = 0; // u8 4 or 6
export const FR_PROTO = 1; // u8 IP protocol, 0 = any
export const FR_PREFIX_LEN = 2; // u8 bits of FR_SOURCE that must match (0 = any source)
export const FR_ACTIONS = 3; // u8 FRA_* flags
export const FR_PORT = 4; // u16 raw destination port, 0 = any
export const FR_BACKEND = 6; // u16 backend slot (BACKEND_NONE: the backend is gone, Maglev picks)
export const FR_TCI = 8; // u16 TCI of a pushed VLAN tag (PCP and VID), host order
export const FR_DSCP = 10; // u8
export const FR_PCP = 11; // u8
export const FR_MPLS = 12; // u32 label stack entry pushed, host order: label << 12 | tc << 9 | ttl (S bit set by the engine)
export const FR_IDLE_MS = 16; // u32 idle timeout of established flows, ms; 0 = the protocol's
export const FR_SOURCE = 24; // 16 bytes, host bits zero
export const FR_VIP = 40; // 16 bytes
export const FRA_DSCP = 1; // rewrite the DSCP bits of IPv4 TOS / IPv6 traffic class (ECN kept)
export const FRA_PCP = 2; // set the 802.1p priority of the outermost VLAN tag
export const FRA_VLAN_PUSH = 4; // push an 802.1Q tag (TPID 0x8100, FR_TCI)
export const FRA_VLAN_POP = 8; // remove the outermost VLAN tag, if any
export const FRA_MPLS_PUSH = 16; // push the label stack entry FR_MPLS
export const FRA_MPLS_POP = 32; // remove the top label, if any
export const MPLS_TPID = 0x8847;
export const VLAN_TPID = 0x8100;

// ---- service chains: devices a service's packets pass before its server, reversed on replies ------
// A hop is inline (the packet goes to a device and comes back) or mirror (a copy goes to a
// device; the original goes on). Where a packet is in its chain is known from its ingress port
// and source MAC: a device's own. Within a hop, a flow's device is fixed by the flow's hash
// (position hash % devices); a position whose device is down uses the first alternate up.
export const MAX_CHAINS = 16;
export const MAX_HOPS = 8;
export const MAX_HOP_DEVICES = 8; // per hop, alternates included
export const MAX_DEVICES = 64;
export const CH_SIZE = 8 + MAX_HOPS * 16;
export const CH_HOPS = 0; // u8 hops in use
export const CH_HOP = 8; // + hop * HOP_SIZE
export const HOP_SIZE = 16;
export const HOP_KIND = 0; // u8 HOPK_*
export const HOP_ACTIVE = 1; // u8 devices that take flows (positions)
export const HOP_COUNT = 2; // u8 devices listed: the active ones, then the alternates
export const HOP_DEV = 8; // u8[MAX_HOP_DEVICES]: device indexes
export const HOPK_INLINE = 1;
export const HOPK_MIRROR = 2;
export const DEV_SIZE = 16;
export const DEV_FLAGS = 0; // u8 DEVF_*
export const DEV_PORT = 1; // u8 board port the device is on (out and back)
export const DEV_MAC = 2; // 6 bytes
export const DEVF_PRESENT = 1;
export const DEVF_UP = 2; // takes flows (the host clears it when the device fails)

// ---- ACLs: per ingress port, keyed further by service; judged on a flow's first packet -------------
export const MAX_ACL_TABLES = 32;
export const MAX_ACL_RULES = 256;
export const ACLT_SIZE = 8;
export const ACLT_FIRST = 0; // u16 first rule
export const ACLT_COUNT = 2; // u16 rules, in order
export const ACLT_DENY = 4; // u8 1: what no rule matches is denied
export const ACLR_SIZE = 48;
export const ACLR_FAMILY = 0; // u8 4, 6, or 0: either
export const ACLR_PROTO = 1; // u8 0: any
export const ACLR_PREFIX_LEN = 2; // u8 bits of ACLR_SOURCE that must match
export const ACLR_DENY = 3; // u8 1: deny
export const ACLR_SPORT_LO = 4; // u16 host order } source port range (0-65535: any)
export const ACLR_SPORT_HI = 6; // u16         }
export const ACLR_DPORT_LO = 8; // u16 host order } destination port range
export const ACLR_DPORT_HI = 10; // u16          }
export const ACLR_SOURCE = 16; // 16 bytes, host bits zero

// extra counters, from CB_EXTRA_COUNTERS (u64 words)
export const XC_HOP_BASE = 0; // + (chain * MAX_HOPS + hop) * XC_HOP_WORDS + below
export const XC_HOP_WORDS = 4;
export const HC_TO_PACKETS = 0; // sent to the hop (inline: to its device; mirror: copies)
export const HC_TO_BYTES = 1;
export const HC_FROM_PACKETS = 2; // came back from the hop's device (inline only)
export const HC_FROM_BYTES = 3;
export const XC_DEV_BASE = MAX_CHAINS * MAX_HOPS * XC_HOP_WORDS; // + device * 2 + below
export const DC_SENT = 0;
export const DC_RETURNED = 1;
export const XC_ACL_BASE = XC_DEV_BASE + MAX_DEVICES * 2; // + rule: new flows the rule judged
export const XC_ACL_DEFAULT_BASE = XC_ACL_BASE + MAX_ACL_RULES; // + table: new flows no rule matched
export const XC_WORDS = XC_ACL_DEFAULT_BASE + MAX_ACL_TABLES;

// ---- flow events (engine -> host) and flow installs (host -> engine) ---------------------------
// Both rings hold EV_SIZE records inline (not descriptors): a flow entry as the table holds it,
// with its idle time left instead of the engine's clock. The event ring is never waited on: when
// the host falls behind, events are dropped and counted (the HA bulk resync makes them good).
export const EVENT_RING_CAPACITY = 32768; // records, a power of two
export const EV_SIZE = 80;
export const EV_KIND = 0; // u8 EVK_*
export const EV_FAMILY = 1; // u8 4 or 6
export const EV_LEFT = 4; // u32 ms until the entry expires
export const EV_ENTRY = 8; // FLOW4_ENTRY or FLOW6_ENTRY bytes: key then value
export const EVK_NEW = 1; // a flow entry was created (forward, or a NAT return entry)
export const EVK_CLOSING = 2; // the flow saw its first FIN or RST
export const EVK_INSTALL = 3; // sync ring: install or overwrite this entry

// ---- flow tables ------------------------------------------------------------------------------
// A bucket is one 64-byte cache line of two IPv4 entries (or two 64-byte IPv6 entries); each key
// hashes to two buckets (cuckoo). The full key is kept and compared. Tables are sized to
// FLOW_TABLE_LOAD of their entries at the configured number of flows.
export const FLOW_TABLE_LOAD_PERCENT = 80;
export const FLOW4_ENTRY = 32;
export const FLOW4_KEY = 16; // src u32, dst u32, ports u32, proto u32
export const FLOW6_ENTRY = 64;
export const FLOW6_KEY = 48; // src 16, dst 16, ports u32, proto u32, 8 zero
export const FLOW_WAYS = 2;
// the 16-byte value sits at the end of every entry
export const FV_FLAGS = 0; // u8
export const FV_PORT = 1; // u8 ingress port of the flow's first packet
export const FV_SERVICE = 2; // u16
export const FV_BACKEND = 4; // u16
export const FV_COOKIE = 6; // u16 backend cookie at selection time
export const FV_EXPIRES = 8; // u32 ms
// FV_PACKETS: packets in the low 24 bits, the flow's rule (index + 1, 0 = none) in the top 8
// (FV_RULE, byte 15 of the little-endian word). The value stays 16 bytes, so an IPv4 bucket stays
// one cache line; the price is a packet count that wraps at 16M, which only `show flows` reads.
export const FV_PACKETS = 12; // u32: FV_PACKETS_MASK of it
export const FV_PACKETS_MASK = 0xffffff;
export const FV_RULE = 15; // u8: rule index + 1 that chose this flow, 0 = none
export const FF_VALID = 1;
export const FF_REVERSE = 2; // a NAT return entry: key is (backend, client)
export const FF_CLOSING = 4; // FIN or RST seen
export const FF_ESTABLISHED = 8; // more than a SYN seen

// ---- scratch: the engine's working memory, and one spot for the host ----------------------------
export const META_SIZE = 128; // per-packet metadata
export const SCR_META = 0; // MAX_BATCH * META_SIZE: metadata of the batch in hand
export const SCR_ENTRY = 32768; // 64: a flow entry being built or moved
export const SCR_PROBE_KEY = 32832; // 32: a service-index key being looked for
export const SCR_NAT_KEY = 32864; // 64: the NAT return key being inserted
export const SCR_SWAP = 32928; // 32: two IPv6 addresses changing places (TCP reset)
export const SCR_BFS = 32960; // CUCKOO_BFS_NODES * 8: the cuckoo search's queue
export const CUCKOO_BFS_NODES = 128; // buckets an insert may visit looking for room (~6 moves deep)
export const SCR_HOST = 33984; // 64: the host's input to the exported hash (tests, tools)
export const SCRATCH_SIZE = 34048;

// ---- counters: u64 words ------------------------------------------------------------------------
export const C_RX = 0; // frames taken from the rx ring
export const C_TX = 1; // ... that left on a tx ring (forwarded, or answered in place)
export const C_PUNT = 2; // ... that went to the host
export const C_DROP = 3; // ... that were dropped; the sum of the drop-reason counters
export const C_FLOWS4 = 4; // gauge: live IPv4 flow entries (expired ones count until reclaimed)
export const C_FLOWS6 = 5;
export const C_FLOW_INSERTS = 6;
export const C_FLOW_INSERT_FAILED = 7;
export const C_FLOW_EXPIRED = 8; // entries reclaimed after their idle timeout
export const C_ICMP_SENT = 9; // ICMP errors built in place (fragmentation needed / too big)
export const C_TCP_RST_SENT = 10;
export const C_BATCHES = 11;
export const C_IPV4_OPTIONS = 12; // packets with IPv4 options (forwarded; noted)
export const C_RESELECTED = 13; // flows moved off a down backend
export const C_STATELESS = 14; // forwarded by Maglev alone because the flow table was full
export const C_FLOW_CUCKOO_MOVES = 15;
export const C_PUNT_REASON_BASE = 16; // + punt reason: frames punted for each reason (16-23)
export const PUNT_REASONS = 8;
export const C_FLOW_REUSED = 24; // a SYN on a closing flow's 5-tuple: a new connection, chosen afresh
export const C_FLOW_EVENTS = 25; // records put on the event ring
export const C_FLOW_EVENTS_LOST = 26; // ... that did not fit: the host was behind
export const C_SYNC_INSTALLED = 27; // entries installed from the sync ring
export const C_SYNC_FAILED = 28; // ... that found no room in the table
export const C_DECAPSULATED = 29; // IP-in-IP to our own address opened (CFGF_DECAP); a bad inner packet then drops, counted
export const C_RECOVER_PUNTED = 30; // mid-flow TCP punted for the host to ask peers about (PUNT_RECOVER)

export const C_DROP_BASE = 32; // + drop reason
export const DROP_REASONS = 32;
export const DR_TRUNC_ETHERNET = 1;
export const DR_TRUNC_VLAN = 2;
export const DR_TOO_MANY_VLANS = 3;
export const DR_TRUNC_MPLS = 4;
export const DR_TOO_MANY_LABELS = 5;
export const DR_BAD_ARP = 6;
export const DR_TRUNC_IPV4 = 7;
export const DR_BAD_IPV4_HEADER = 8;
export const DR_BAD_IPV4_CHECKSUM = 9;
export const DR_TRUNC_IPV6 = 10;
export const DR_BAD_IPV6_EXT = 11;
export const DR_TRUNC_L4 = 12;
export const DR_BAD_TCP_HEADER = 13;
export const DR_BAD_UDP_LENGTH = 14;
export const DR_FRAGMENT_TO_VIP = 15;
export const DR_NO_VIP = 16;
export const DR_NO_SERVICE = 17; // a VIP, but no service on that protocol and port
export const DR_NO_BACKEND = 18;
export const DR_FLOW_TABLE_FULL = 19;
export const DR_TTL_EXCEEDED = 20;
export const DR_MTU_EXCEEDED = 21; // too big to encapsulate and fragmentation not allowed to us
export const DR_BACKEND_DOWN = 22;
export const DR_BAD_PORT = 23;
export const DR_UNSUPPORTED = 24;
export const DR_NO_NEIGHBOR = 25;
export const DR_NO_HEADROOM = 26;
export const DR_BAD_ICMP = 27;
export const DR_BAD_IPV6_HEADER = 28;
export const DR_STANDBY = 29; // an HA standby forwards nothing
export const DR_ACL_DENY = 30; // an ACL rule (or a table's default) denied the flow's first packet
export const DR_CHAIN_DOWN = 31; // a chain hop has no device up

export const C_PORT_BASE = 64; // + port * PORT_COUNTER_WORDS + below
export const PORT_COUNTER_WORDS = 8;
export const PC_RX_PACKETS = 0;
export const PC_RX_BYTES = 1;
export const PC_TX_PACKETS = 2;
export const PC_TX_BYTES = 3;
export const PC_DROPS = 4;
export const PC_PUNTS = 5;

export const C_SERVICE_BASE = 192; // 64 + 16 * 8; + service * SERVICE_COUNTER_WORDS + below
export const SERVICE_COUNTER_WORDS = 4;
export const SC_PACKETS = 0;
export const SC_BYTES = 1;
export const SC_NEW_FLOWS = 2;
export const SC_DROPS = 3;
export const BACKEND_COUNTER_WORDS = 4; // from CB_BACKEND_COUNTERS + backend * 4 + below
export const BC_PACKETS = 0;
export const BC_BYTES = 1;
export const BC_NEW_FLOWS = 2;
export const BC_FLOWS_LOST = 3; // flows taken away because the backend went down
