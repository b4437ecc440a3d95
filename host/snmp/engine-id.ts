// The SNMPv3 engine ID (RFC 3411 SnmpEngineID): 0x80 | enterprise, format 3 (a MAC address),
// the first port's MAC. It stays the same across restarts, so managers keep their localized
// keys; with no port to take a MAC from, net-snmp's random one is used.
import type { BoxView } from "../observe.js";
import { macBytes } from "./values.js";

export function engineId(enterprise: number, view: BoxView): string | undefined {
  let mac: Buffer;
  try {
    mac = macBytes(view.ports()[0]?.mac ?? "");
  } catch {
    return undefined;
  }
  if (mac.length !== 6) return undefined;
  const id = Buffer.alloc(11);
  id.writeUInt32BE((enterprise | 0x80000000) >>> 0, 0);
  id[4] = 3;
  mac.copy(id, 5);
  return id.toString("hex");
}
