// Writes a Config into the inactive config copy of an engine's memory: port, service, backend and
// flow-rule records and one Maglev table per service. The engine then derives its service index from them
// (prepareConfig) and the host flips the generation; a batch in flight keeps the copy it started on.
import * as L from "../../assembly/layout.js";
import type { ChainDevice, Config, FlowRule, Service } from "../config/schema.js";
import type { RegionPlan } from "./memory-plan.js";
import { buildMaglev } from "./maglev.js";
import { SlotBook } from "./slots.js";

const PROTO = { tcp: 6, udp: 17 } as const;
const MODE = { dsr: L.MODE_DSR, nat: L.MODE_NAT, tunnel: L.MODE_TUNNEL } as const;
const STATE = { active: L.BES_ACTIVE, draining: L.BES_DRAINING, down: L.BES_DOWN } as const;

/** Slot numbers shared by every engine of a box, so that their tables agree. */
export interface Slots {
  services: SlotBook;
  backends: SlotBook;
}

export function newSlots(maxServices: number, maxBackends: number): Slots {
  return { services: new SlotBook(maxServices), backends: new SlotBook(maxBackends) };
}

/** Assigns slots for a config's services and backends (once per commit, for all engines). */
export function assignSlots(slots: Slots, config: Config, nowMs: number): void {
  slots.services.assign(config.services.map((s) => s.name), nowMs);
  slots.backends.assign(config.backends.map((b) => b.name), nowMs);
}

/** Maglev tables by service name, in backend slot numbers; computed once, copied to every engine. */
export function maglevTables(config: Config, slots: Slots): Map<string, Uint16Array> {
  const tables = new Map<string, Uint16Array>();
  const byName = new Map(config.backends.map((b) => [b.name, b]));
  for (const s of config.services) tables.set(s.name, serviceTable(s, byName, slots, config.sizes.maglevSize));
  return tables;
}

function serviceTable(s: Service, byName: Map<string, Config["backends"][number]>, slots: Slots, size: number): Uint16Array {
  // only active backends take new flows; draining and down ones keep (or lose) their flows elsewhere
  const members = s.backends.map((m) => ({
    id: m.name,
    weight: usable(byName.get(m.name)) ? m.weight : 0,
    slot: slots.backends.slot(m.name) ?? L.BACKEND_NONE,
  }));
  const table = buildMaglev(members, size);
  for (let i = 0; i < table.length; i++) {
    if (table[i] !== L.BACKEND_NONE) table[i] = members[table[i]].slot;
  }
  return table;
}

/** Does a backend take new flows? Active, and its MAC known. */
function usable(b: Config["backends"][number] | undefined): boolean {
  return b?.state === "active" && b.mac !== undefined;
}

/**
 * One flow-rule record. A backend that cannot take flows (down, draining, no MAC yet) is still
 * named: the engine checks its state per new flow and falls back to Maglev meanwhile.
 */
function writeRule(u8: Uint8Array, dv: DataView, r: number, rule: FlowRule, slots: Slots): void {
  let actions = 0;
  if (rule.dscp !== undefined) {
    actions |= L.FRA_DSCP;
    dv.setUint8(r + L.FR_DSCP, rule.dscp);
  }
  if (rule.pcp !== undefined) {
    actions |= L.FRA_PCP;
    dv.setUint8(r + L.FR_PCP, rule.pcp);
  }
  if (rule.vlanPush !== undefined) {
    actions |= L.FRA_VLAN_PUSH;
    dv.setUint16(r + L.FR_TCI, ((rule.pcp ?? 0) << 13) | rule.vlanPush, true);
  }
  if (rule.vlanPop) actions |= L.FRA_VLAN_POP;
  if (rule.mplsPush) {
    actions |= L.FRA_MPLS_PUSH;
    const m = rule.mplsPush;
    dv.setUint32(r + L.FR_MPLS, ((m.label << 12) | (m.tc << 9) | m.ttl) >>> 0, true);
  }
  if (rule.mplsPop) actions |= L.FRA_MPLS_POP;
  dv.setUint8(r + L.FR_FAMILY, rule.vip.family);
  dv.setUint8(r + L.FR_PROTO, rule.protocol ? PROTO[rule.protocol] : 0);
  dv.setUint8(r + L.FR_PREFIX_LEN, rule.source?.length ?? 0);
  dv.setUint8(r + L.FR_ACTIONS, actions);
  dv.setUint16(r + L.FR_PORT, rule.port, false); // network order: the engine compares raw
  dv.setUint16(r + L.FR_BACKEND, slots.backends.slot(rule.backend) ?? L.BACKEND_NONE, true);
  dv.setUint32(r + L.FR_IDLE_MS, (rule.idleTimeout ?? 0) * 1000, true);
  if (rule.source) u8.set(rule.source.bytes, r + L.FR_SOURCE);
  u8.set(rule.vip.bytes, r + L.FR_VIP);
}

/** Writes the whole copy `which` (0 or 1). */
export function writeConfigCopy(
  mem: ArrayBufferLike, plan: RegionPlan, which: 0 | 1, config: Config, slots: Slots,
  tables: Map<string, Uint16Array>,
): number {
  const base = plan.config[which];
  const cl = plan.configLayout;
  const u8 = new Uint8Array(mem, base, cl.bytes);
  const dv = new DataView(mem, base, cl.bytes);
  u8.fill(0);
  const abs = (off: number): number => base + off;

  const flags = (config.noVip === "forward" ? L.CFGF_NOVIP_FORWARD : 0) |
    (config.role?.standby ? L.CFGF_STANDBY : 0) | (config.role?.flowEvents ? L.CFGF_FLOW_EVENTS : 0) |
    (decapsulates(config) ? L.CFGF_DECAP : 0);
  dv.setUint32(L.CFG_FLAGS, flags, true);
  dv.setUint32(L.CFG_SVC_INDEX, abs(cl.svcIndex), true);
  dv.setUint32(L.CFG_SVC_INDEX_MASK, cl.svcIndexSlots - 1, true);
  dv.setUint32(L.CFG_SERVICES, abs(cl.services), true);
  dv.setUint32(L.CFG_BACKENDS, abs(cl.backends), true);
  dv.setUint32(L.CFG_PORTS, abs(cl.ports), true);
  dv.setUint32(L.CFG_MAGLEV, abs(cl.maglev), true);
  dv.setUint32(L.CFG_MAGLEV_SIZE, cl.maglevSize, true);
  dv.setUint32(L.CFG_NUM_SERVICES, slots.services.extent, true);
  dv.setUint32(L.CFG_RULES, abs(cl.rules), true);
  const rules = config.flowRules.slice(0, L.MAX_FLOW_RULES);
  dv.setUint32(L.CFG_NUM_RULES, rules.length, true);
  if (config.discovery) {
    u8.set(config.discovery.group.bytes, L.CFG_DISC_GROUP4);
    u8.set(config.discovery.group6.bytes, L.CFG_DISC_GROUP6);
    dv.setUint16(L.CFG_DISC_PORT, config.discovery.port, false); // raw, as the engine loads packet ports
  }
  rules.forEach((rule, i) => writeRule(u8, dv, cl.rules + i * L.FR_SIZE, rule, slots));
  const t = config.timeouts;
  const ms = (s: number): number => s * 1000;
  dv.setUint32(L.CFG_TIMEOUTS + L.TO_TCP, ms(t.tcp), true);
  dv.setUint32(L.CFG_TIMEOUTS + L.TO_TCP_SYN, ms(t.tcpSyn), true);
  dv.setUint32(L.CFG_TIMEOUTS + L.TO_TCP_CLOSING, ms(t.tcpClosing), true);
  dv.setUint32(L.CFG_TIMEOUTS + L.TO_UDP, ms(t.udp), true);
  dv.setUint32(L.CFG_TIMEOUTS + L.TO_ICMP, ms(t.icmp), true);
  dv.setUint32(L.CFG_TIMEOUTS + L.TO_OTHER, ms(t.other), true);

  for (const p of config.ports) {
    const r = cl.ports + p.index * L.PORT_SIZE;
    dv.setUint8(r + L.PORT_FLAGS, L.PORTF_PRESENT | (p.gatewayMac ? L.PORTF_GW_KNOWN : 0));
    dv.setUint8(r + L.PORT_PEER, p.peer ?? L.PORT_NONE);
    dv.setUint16(r + L.PORT_MTU, p.mtu, true);
    u8.set(p.mac, r + L.PORT_MAC);
    if (p.gatewayMac) u8.set(p.gatewayMac, r + L.PORT_GW_MAC);
    if (p.ipv4) u8.set(p.ipv4.bytes, r + L.PORT_IPV4);
    if (p.ipv6) u8.set(p.ipv6.bytes, r + L.PORT_IPV6);
  }

  for (const b of config.backends) {
    const slot = slots.backends.slot(b.name)!;
    const r = cl.backends + slot * L.BE_SIZE;
    dv.setUint8(r + L.BE_STATE, b.mac ? STATE[b.state] : L.BES_DOWN); // no MAC yet: nowhere to send
    dv.setUint8(r + L.BE_FAMILY, b.address.family);
    dv.setUint8(r + L.BE_PORT, b.via);
    dv.setUint16(r + L.BE_COOKIE, slots.backends.cookie(slot), true);
    dv.setUint16(r + L.BE_NAT_PORT, b.natPort, false); // network order: the engine compares raw
    if (b.mac) u8.set(b.mac, r + L.BE_MAC);
    u8.set(b.address.bytes, r + L.BE_ADDR);
  }

  const tableStride = Math.ceil((cl.maglevSize * 2) / 64) * 64;
  const recovers = config.levels?.recovery?.enabled === true; // TCP only: the punt is for mid-flow segments
  for (const s of config.services) {
    const slot = slots.services.slot(s.name)!;
    const r = cl.services + slot * L.SVC_SIZE;
    const flags = L.SVCF_PRESENT | (s.onBackendDown === "reset" ? L.SVCF_DOWN_RESET : 0) | (s.arp ? L.SVCF_ARP : 0) |
      (recovers && s.protocol === "tcp" ? L.SVCF_RECOVER : 0);
    dv.setUint8(r + L.SVC_FLAGS, flags);
    dv.setUint8(r + L.SVC_FAMILY, s.vip.family);
    dv.setUint8(r + L.SVC_PROTO, PROTO[s.protocol]);
    dv.setUint8(r + L.SVC_MODE, MODE[s.mode]);
    dv.setUint16(r + L.SVC_PORT, s.port, false);
    dv.setUint16(r + L.SVC_TARGET_PORT, s.targetPort, false);
    const tableAt = cl.maglev + slot * tableStride;
    dv.setUint32(r + L.SVC_MAGLEV, abs(tableAt), true);
    dv.setUint8(r + L.SVC_ENCAP, s.tunnel.encap === "gue" ? L.ENCAP_GUE : L.ENCAP_IPIP);
    dv.setUint16(r + L.SVC_GUE_PORT, s.tunnel.guePort, false);
    if (s.tunnel.source4) u8.set(s.tunnel.source4.bytes, r + L.SVC_TUN_SRC4);
    if (s.tunnel.source6) u8.set(s.tunnel.source6.bytes, r + L.SVC_TUN_SRC6);
    u8.set(s.vip.bytes, r + L.SVC_VIP);
    const table = tables.get(s.name)!;
    new Uint8Array(mem, base + tableAt, table.length * 2).set(new Uint8Array(table.buffer, table.byteOffset, table.length * 2));
    const chain = s.chain === undefined ? -1 : config.chains.findIndex((c) => c.name === s.chain);
    if (chain >= 0 && s.mode === "nat") dv.setUint8(r + L.SVC_CHAIN, chain + 1);
  }
  writeChains(u8, dv, cl, config, abs);
  writeAcls(u8, dv, cl, config, slots, abs);
  return base;
}

/** A site that takes IP-in-IP from its system appliances opens it in the data plane (CFGF_DECAP). */
export function decapsulates(config: Config): boolean {
  return config.levels?.decapsulate === true && config.levels.role === "site";
}

/** Every chain device once, in the order chains, hops, devices then alternates name them: its index in the engine. */
export function chainDevices(config: Config): ChainDevice[] {
  const out: ChainDevice[] = [];
  const seen = new Set<string>();
  for (const c of config.chains) for (const h of c.hops) for (const d of [...h.devices, ...h.alternates]) {
    if (seen.has(d.name) || out.length >= L.MAX_DEVICES) continue;
    seen.add(d.name);
    out.push(d);
  }
  return out;
}

function writeChains(u8: Uint8Array, dv: DataView, cl: RegionPlan["configLayout"], config: Config, abs: (off: number) => number): void {
  dv.setUint32(L.CFG_CHAINS, abs(cl.chains), true);
  dv.setUint32(L.CFG_DEVICES, abs(cl.devices), true);
  const devs = chainDevices(config);
  const index = new Map(devs.map((d, i) => [d.name, i]));
  devs.forEach((d, i) => {
    const r = cl.devices + i * L.DEV_SIZE;
    const up = d.mac !== undefined && d.up !== false; // no MAC yet: nowhere to send
    dv.setUint8(r + L.DEV_FLAGS, L.DEVF_PRESENT | (up ? L.DEVF_UP : 0));
    dv.setUint8(r + L.DEV_PORT, d.port);
    if (d.mac) u8.set(d.mac, r + L.DEV_MAC);
  });
  config.chains.slice(0, L.MAX_CHAINS).forEach((c, ci) => {
    const r = cl.chains + ci * L.CH_SIZE;
    const hops = c.hops.slice(0, L.MAX_HOPS);
    dv.setUint8(r + L.CH_HOPS, hops.length);
    hops.forEach((h, hi) => {
      const hr = r + L.CH_HOP + hi * L.HOP_SIZE;
      const list = [...h.devices, ...h.alternates].slice(0, L.MAX_HOP_DEVICES);
      dv.setUint8(hr + L.HOP_KIND, h.kind === "mirror" ? L.HOPK_MIRROR : L.HOPK_INLINE);
      dv.setUint8(hr + L.HOP_ACTIVE, Math.min(h.devices.length, list.length));
      dv.setUint8(hr + L.HOP_COUNT, list.length);
      list.forEach((d, k) => dv.setUint8(hr + L.HOP_DEV + k, index.get(d.name) ?? 0xff));
    });
  });
}

function writeAcls(u8: Uint8Array, dv: DataView, cl: RegionPlan["configLayout"], config: Config, slots: Slots, abs: (off: number) => number): void {
  if (!config.acls.length) return; // CFG_ACL_TABLES 0: nothing judged
  dv.setUint32(L.CFG_ACL_TABLES, abs(cl.aclTables), true);
  dv.setUint32(L.CFG_ACL_RULES, abs(cl.aclRules), true);
  dv.setUint32(L.CFG_ACL_MAP, abs(cl.aclMap), true);
  let next = 0;
  config.acls.slice(0, L.MAX_ACL_TABLES).forEach((t, ti) => {
    const r = cl.aclTables + ti * L.ACLT_SIZE;
    const rules = t.rules.slice(0, L.MAX_ACL_RULES - next);
    dv.setUint16(r + L.ACLT_FIRST, next, true);
    dv.setUint16(r + L.ACLT_COUNT, rules.length, true);
    dv.setUint8(r + L.ACLT_DENY, t.deny ? 1 : 0);
    for (const rule of rules) {
      const rr = cl.aclRules + next++ * L.ACLR_SIZE;
      dv.setUint8(rr + L.ACLR_FAMILY, rule.family);
      dv.setUint8(rr + L.ACLR_PROTO, rule.protocol);
      dv.setUint8(rr + L.ACLR_DENY, rule.deny ? 1 : 0);
      dv.setUint16(rr + L.ACLR_SPORT_LO, rule.sourcePorts[0], true);
      dv.setUint16(rr + L.ACLR_SPORT_HI, rule.sourcePorts[1], true);
      dv.setUint16(rr + L.ACLR_DPORT_LO, rule.destinationPorts[0], true);
      dv.setUint16(rr + L.ACLR_DPORT_HI, rule.destinationPorts[1], true);
      if (rule.source) {
        dv.setUint8(rr + L.ACLR_PREFIX_LEN, rule.source.length);
        u8.set(rule.source.bytes, rr + L.ACLR_SOURCE);
      }
    }
    if (t.service === undefined) dv.setUint8(cl.ports + t.port * L.PORT_SIZE + L.PORT_ACL, ti + 1);
    else {
      const slot = slots.services.slot(t.service);
      if (slot !== undefined) dv.setUint8(cl.aclMap + slot * L.MAX_PORTS + t.port, ti + 1);
    }
  });
}
