// Per-packet metadata: what the parser learnt, kept for the second pass over a batch. Engine-private.
export const M_ADDR = 0; // u32 frame address
export const M_LEN = 4; // u16 frame length
export const M_PORT = 6; // u8 ingress port
export const M_VERDICT = 7; // u8: V_LOOKUP, or already decided by the parser
export const M_L3 = 8; // u16 offset of the IP (or ARP) header in the frame
export const M_L4 = 10; // u16 offset of the transport header
export const M_FAMILY = 12; // u8 FAM_*
export const M_PROTO = 13; // u8 IP protocol (after IPv6 extension headers)
export const M_TCPF = 14; // u8 TCP flags, or ICMP type
export const M_PFLAGS = 15; // u8 PF_*
export const M_HASH = 16; // u32 flow-table hash of the key
export const M_BUF = 20; // u32 buffer slot, from the rx descriptor
export const M_IPLEN = 24; // u16 length of the IP packet per its header (frame padding excluded)
export const M_REASON = 26; // u8 drop reason when V_DROP
export const M_RXFLAGS = 27; // u8 RXA_* flags of the rx descriptor (DESC_AUX)
export const M_ETYPE = 28; // u16 offset of the ethertype that announces L3; 0 under MPLS
export const M_L2ET = 30; // u16 offset of the ethertype after the VLAN tags (0x8847 under MPLS)
export const M_KEY = 32; // 40 bytes: v4 src,dst,ports,proto | v6 src16,dst16,ports,proto

export const V_LOOKUP = 0;
export const V_DROP = 1;

export const FAM_OTHER: u8 = 0;
export const FAM_IPV4: u8 = 4;
export const FAM_IPV6: u8 = 6;
export const FAM_ARP: u8 = 8;

export const PF_FRAGMENT: u8 = 1;
export const PF_OPTIONS: u8 = 2;
export const PF_MPLS: u8 = 4;
export const PF_HASHED: u8 = 8; // M_HASH holds the flow hash: the packet will be looked up

export const IPPROTO_ICMP: u8 = 1;
export const IPPROTO_IPIP: u8 = 4;
export const IPPROTO_TCP: u8 = 6;
export const IPPROTO_UDP: u8 = 17;
export const IPPROTO_IPV6: u8 = 41;
export const IPPROTO_ICMPV6: u8 = 58;

export const TCP_FIN: u8 = 0x01;
export const TCP_SYN: u8 = 0x02;
export const TCP_RST: u8 = 0x04;
export const TCP_ACK: u8 = 0x10;

export const ETH_IPV4: u16 = 0x0800;
export const ETH_ARP: u16 = 0x0806;
export const ETH_IPV6: u16 = 0x86dd;
