// The SNMP agent (v2c read-only, v3 authPriv): SNMPv2-MIB system group, IF-MIB, and the
// appliance's own FLOWSWITCH-MIB (mib/FLOWSWITCH-MIB.txt), plus notifications of box events.
//   agent.ts          the agent: socket, access, refresh on request, start and stop
//   access.ts         communities and USM users
//   objects.ts        scalars and tables as data, copied into net-snmp's MIB tree
//   system-mib.ts     SNMPv2-MIB system group
//   if-mib.ts         IF-MIB ifNumber, ifTable, ifXTable
//   flowswitch-mib.ts FLOWSWITCH-MIB tables and scalars
//   discovery-mib.ts  FLOWSWITCH-MIB service discovery: counters, refusals, end systems
//   notify.ts         box events -> v2c traps / v3 informs; flow-table threshold
//   oids.ts           every OID, in one place
import type { SnmpConfig } from "../config/schema.js";

export { startSnmpAgent, type SnmpAgent } from "./agent.js";
export { flowswitchOids, FLOWSWITCH_ARC } from "./oids.js";
export type NormalisedSnmpConfig = SnmpConfig;
