// FLOW advertisements as data-plane flow rules. The engine matches a rule on VIP, client prefix,
// protocol (TCP, UDP or any) and one destination port or any, so a pattern is mapped as follows:
// - dstPorts { first, last } with first === last: that port; any other range: 0 = any port. The
//   rule is then WIDER than advertised (it steers every port of the VIP), which is counted
//   (widened) so that an operator can see it.
// - srcPorts: not matched by the data plane; ignored, which widens the rule the same way.
// - protocol 6 or 17: that protocol; absent: any; anything else (SCTP, ...) cannot be matched
//   and the advertisement is refused.
// Attributes map one to one; vlanPush's own pcp is the rule's pcp when the message has none.
import type { FlowRule } from "../config/schema.js";
import { parsePrefix } from "../config/validate.js";
import { parseIP } from "../net/frame.js";
import { canonical } from "../net/neighbors.js";
import type { FlowMsg } from "./protocol.js";

/** A flow rule from an advertisement, before the appliance names its backend. */
export type AdvertisedRule = Omit<FlowRule, "backend" | "name">;

export type MappedRule = { ok: true; rule: AdvertisedRule; widened: boolean } | { ok: false; reason: string };

/** Identifies a FLOW's rule: its target and its pattern, as withdraw names it. */
export function flowKey(m: FlowMsg): string {
  const p = m.pattern;
  return JSON.stringify([m.endSystem, canonical(p.vip), p.source ?? "", p.protocol ?? -1, p.srcPorts ?? null, p.dstPorts ?? null]);
}

export function mapFlow(m: FlowMsg): MappedRule {
  const p = m.pattern;
  const a = m.attributes;
  let vip: FlowRule["vip"];
  try {
    const ip = parseIP(p.vip);
    vip = { family: ip.family, bytes: ip.bytes, text: canonical(p.vip) };
  } catch {
    return { ok: false, reason: `bad vip ${p.vip}` };
  }
  let protocol: FlowRule["protocol"];
  if (p.protocol === 6) protocol = "tcp";
  else if (p.protocol === 17) protocol = "udp";
  else if (p.protocol !== undefined) return { ok: false, reason: `protocol ${p.protocol} cannot be matched by the data plane (tcp, udp or any)` };
  const source = p.source === undefined ? undefined : parsePrefix(p.source);
  if (p.source !== undefined && (!source || source.family !== vip.family)) return { ok: false, reason: `source ${p.source} is not a prefix of the VIP's family` };
  const d = p.dstPorts;
  const port = d && d.first === d.last ? d.first : 0;
  const widened = (d !== undefined && d.first !== d.last) || p.srcPorts !== undefined;
  const rule: AdvertisedRule = { vip, source, protocol, port, vlanPop: a.vlanPop ?? false, mplsPop: a.mplsPop ?? false };
  if (a.dscp !== undefined) rule.dscp = a.dscp;
  if (a.pcp !== undefined) rule.pcp = a.pcp;
  else if (a.vlanPush?.pcp !== undefined) rule.pcp = a.vlanPush.pcp;
  if (a.vlanPush) rule.vlanPush = a.vlanPush.vid;
  if (a.mplsPush) rule.mplsPush = { label: a.mplsPush.label, tc: a.mplsPush.tc ?? 0, ttl: a.mplsPush.ttl ?? 64 };
  if (a.idleTimeoutS !== undefined) rule.idleTimeout = a.idleTimeoutS;
  return { ok: true, rule, widened };
}
