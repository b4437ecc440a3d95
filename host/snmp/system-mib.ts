// SNMPv2-MIB system group (RFC 3418): who the box is, how long it has been up, where it stands.
import snmp from "net-snmp";
import type { BoxView } from "../observe.js";
import type { ScalarDef } from "./objects.js";
import { SYSTEM } from "./oids.js";
import { display, ticks } from "./values.js";

/** sysServices: layers 2 (MAC rewrite), 4 (flows by port) and 7 (service selection): 2 + 8 + 64. */
const SYS_SERVICES = 74;

export function systemScalars(view: BoxView, o: { sysObjectID: string; contact: string; location: string }): ScalarDef[] {
  const T = snmp.ObjectType;
  return [
    { name: "sysDescr", oid: `${SYSTEM}.1`, type: T.OctetString, get: () => display(`Flowswitch ${view.version()}, service-aware flow switch (load balancer)`) },
    { name: "sysObjectID", oid: `${SYSTEM}.2`, type: T.OID, get: () => o.sysObjectID },
    { name: "sysUpTime", oid: `${SYSTEM}.3`, type: T.TimeTicks, get: () => ticks(view.uptimeMs()) },
    { name: "sysContact", oid: `${SYSTEM}.4`, type: T.OctetString, get: () => o.contact },
    { name: "sysName", oid: `${SYSTEM}.5`, type: T.OctetString, get: () => display(view.hostname()) },
    { name: "sysLocation", oid: `${SYSTEM}.6`, type: T.OctetString, get: () => o.location },
    { name: "sysServices", oid: `${SYSTEM}.7`, type: T.Integer, get: () => SYS_SERVICES },
  ];
}
