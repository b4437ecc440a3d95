// IF-MIB (RFC 2863): ifNumber, ifTable and ifXTable for every board port, ifIndex = port + 1.
// The engines count frames per port without telling unicast from multicast and broadcast, so all
// packets are reported as unicast and the multicast / broadcast columns stay 0. The 32-bit
// counters wrap; managers should read the HC (64-bit) ones.
import snmp from "net-snmp";
import type { BoxView, PortView } from "../observe.js";
import type { ScalarDef, TableDef } from "./objects.js";
import { IF_ENTRY, IF_NUMBER, IFX_ENTRY } from "./oids.js";
import { counter32, counter64, display, gauge, macBytes } from "./values.js";

const ETHERNET_CSMACD = 6; // IANAifType
const UP = 1;
const DOWN = 2;
const TRUE = 1;
const FALSE = 2;

export function ifScalars(view: BoxView): ScalarDef[] {
  return [{ name: "ifNumber", oid: IF_NUMBER, type: snmp.ObjectType.Integer, get: () => view.ports().length }];
}

export function ifTables(view: BoxView): TableDef<PortView>[] {
  const T = snmp.ObjectType;
  const zero = (): number => 0;
  const ifTable: TableDef<PortView> = {
    name: "ifTable",
    oid: IF_ENTRY,
    rows: () => view.ports(),
    columns: [
      { number: 1, name: "ifIndex", type: T.Integer, get: (p) => p.index + 1 },
      { number: 2, name: "ifDescr", type: T.OctetString, get: (p) => display(`${p.name} (${p.device})`) },
      { number: 3, name: "ifType", type: T.Integer, get: () => ETHERNET_CSMACD },
      { number: 4, name: "ifMtu", type: T.Integer, get: (p) => p.mtu },
      { number: 5, name: "ifSpeed", type: T.Gauge, get: zero }, // unknown on the boards we have
      { number: 6, name: "ifPhysAddress", type: T.OctetString, get: (p) => macBytes(p.mac) },
      { number: 7, name: "ifAdminStatus", type: T.Integer, get: () => UP },
      { number: 8, name: "ifOperStatus", type: T.Integer, get: (p) => (p.up ? UP : DOWN) },
      { number: 9, name: "ifLastChange", type: T.TimeTicks, get: zero },
      { number: 10, name: "ifInOctets", type: T.Counter, get: (p) => counter32(p.rxBytes) },
      { number: 11, name: "ifInUcastPkts", type: T.Counter, get: (p) => counter32(p.rxPackets) },
      { number: 12, name: "ifInNUcastPkts", type: T.Counter, get: zero },
      { number: 13, name: "ifInDiscards", type: T.Counter, get: (p) => counter32(p.drops) },
      { number: 14, name: "ifInErrors", type: T.Counter, get: zero },
      { number: 15, name: "ifInUnknownProtos", type: T.Counter, get: zero },
      { number: 16, name: "ifOutOctets", type: T.Counter, get: (p) => counter32(p.txBytes) },
      { number: 17, name: "ifOutUcastPkts", type: T.Counter, get: (p) => counter32(p.txPackets) },
      { number: 18, name: "ifOutNUcastPkts", type: T.Counter, get: zero },
      { number: 19, name: "ifOutDiscards", type: T.Counter, get: zero },
      { number: 20, name: "ifOutErrors", type: T.Counter, get: zero },
      { number: 21, name: "ifOutQLen", type: T.Gauge, get: zero },
      { number: 22, name: "ifSpecific", type: T.OID, get: () => "0.0" },
    ],
  };
  const ifXTable: TableDef<PortView> = {
    name: "ifXTable",
    oid: IFX_ENTRY,
    indexOf: "ifTable",
    rows: () => view.ports(),
    columns: [
      { number: 0, name: "ifIndex", type: T.Integer, get: (p) => p.index + 1 }, // the foreign index
      { number: 1, name: "ifName", type: T.OctetString, get: (p) => display(p.name) },
      { number: 2, name: "ifInMulticastPkts", type: T.Counter, get: zero },
      { number: 3, name: "ifInBroadcastPkts", type: T.Counter, get: zero },
      { number: 4, name: "ifOutMulticastPkts", type: T.Counter, get: zero },
      { number: 5, name: "ifOutBroadcastPkts", type: T.Counter, get: zero },
      { number: 6, name: "ifHCInOctets", type: T.Counter64, get: (p) => counter64(p.rxBytes) },
      { number: 7, name: "ifHCInUcastPkts", type: T.Counter64, get: (p) => counter64(p.rxPackets) },
      { number: 8, name: "ifHCInMulticastPkts", type: T.Counter64, get: () => counter64(0) },
      { number: 9, name: "ifHCInBroadcastPkts", type: T.Counter64, get: () => counter64(0) },
      { number: 10, name: "ifHCOutOctets", type: T.Counter64, get: (p) => counter64(p.txBytes) },
      { number: 11, name: "ifHCOutUcastPkts", type: T.Counter64, get: (p) => counter64(p.txPackets) },
      { number: 12, name: "ifHCOutMulticastPkts", type: T.Counter64, get: () => counter64(0) },
      { number: 13, name: "ifHCOutBroadcastPkts", type: T.Counter64, get: () => counter64(0) },
      { number: 14, name: "ifLinkUpDownTrapEnable", type: T.Integer, get: () => FALSE },
      { number: 15, name: "ifHighSpeed", type: T.Gauge, get: () => gauge(0) },
      { number: 16, name: "ifPromiscuousMode", type: T.Integer, get: () => TRUE }, // ports run promiscuous
      { number: 17, name: "ifConnectorPresent", type: T.Integer, get: () => TRUE },
      { number: 18, name: "ifAlias", type: T.OctetString, get: () => "" },
      { number: 19, name: "ifCounterDiscontinuityTime", type: T.TimeTicks, get: zero },
    ],
  };
  return [ifTable, ifXTable];
}
