// Who may read: the configured communities (v2c) and USM users (v3, authPriv only), all
// read-only. A request with another community, user or key is dropped by net-snmp unanswered.
import snmp, { type Agent, type User } from "net-snmp";
import type { SnmpUser } from "../config/schema.js";

export function usmUser(u: SnmpUser): User {
  const authProtocol = snmp.AuthProtocols[u.authProtocol];
  const privProtocol = snmp.PrivProtocols[u.privProtocol];
  if (authProtocol === undefined || privProtocol === undefined) throw new Error(`unknown protocol ${u.authProtocol}/${u.privProtocol}`);
  return { name: u.name, level: snmp.SecurityLevel.authPriv, authProtocol, authKey: u.authKey, privProtocol, privKey: u.privKey };
}

export function grantAccess(agent: Agent, communities: string[], users: SnmpUser[], log: (line: string) => void): void {
  const auth = agent.getAuthorizer();
  const acm = auth.getAccessControlModel();
  for (const c of communities) {
    auth.addCommunity(c);
    acm.setCommunityAccess(c, snmp.AccessLevel.ReadOnly);
  }
  for (const u of users) {
    try {
      auth.addUser(usmUser(u));
      acm.setUserAccess(u.name, snmp.AccessLevel.ReadOnly);
    } catch (e) {
      log(`snmp: user ${u.name} left out: ${(e as Error).message}`); // never its keys
    }
  }
}
