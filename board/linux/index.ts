// The Linux board: real network interfaces as ports (the lab and the reference hardware).

import type { Board } from "../types.js";
import { PcapPort, type PcapPortOptions } from "./pcap-port.js";

export { PcapPort, type PcapPortOptions, type PcapPortStats } from "./pcap-port.js";

export interface LinuxPortConfig {
  /** The port's name in the configuration. */
  name: string;
  /** The network interface, e.g. "eth1". */
  device: string;
}

/**
 * Opens every port, or none: if one fails, the ones already open are closed and the error (which
 * names the device) is thrown. Two ports on one interface would each see the other's frames as
 * received, so that is refused.
 */
export async function openLinuxBoard(ports: LinuxPortConfig[], opts: PcapPortOptions = {}): Promise<Board> {
  const seen = new Map<string, string>();
  for (const p of ports) {
    const other = seen.get(p.device);
    if (other !== undefined) throw new Error(`ports ${other} and ${p.name} both use network interface ${p.device}`);
    seen.set(p.device, p.name);
  }
  const opened: PcapPort[] = [];
  try {
    for (const p of ports) opened.push(PcapPort.open(p.name, p.device, opts));
  } catch (err) {
    for (const port of opened) port.close();
    throw err;
  }
  return {
    kind: "linux",
    ports: opened,
    async close(): Promise<void> {
      for (const port of opened) port.close();
    },
  };
}
