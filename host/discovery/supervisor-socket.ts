// A Supervisor on kernel UDP sockets (node:dgram), as the appliance's management CPU and the
// standalone flowswitch-supervisor run it: one socket bound to the listen address and port takes
// requests and unicast advertisements and sends the answers (from that port, as requesters
// expect); one socket per multicast group joined hears the advertisements sent to the group;
// relays to a target of the other address family go out of an ephemeral socket of that family.
// Listening on the wildcard address (0.0.0.0, ::), the groups of that family are joined on the one
// socket instead, so that no datagram is received twice.
//
// Trade-off: a group socket binds the group address with SO_REUSEADDR, so other listeners on the
// same host and port (an agent's tests, a second supervisor) still get their copy.

import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";
import type { Source } from "./supervisor.js";

export interface GroupJoin {
  address: string;
  /** Local address of the interface to join on (IPv6: an interface name or scope as `::%eth0`); absent: the OS chooses. */
  interface?: string;
}

export interface Endpoint {
  address: string;
  port: number;
  groups: GroupJoin[];
}

export type DatagramHandler = (bytes: Uint8Array, from: Source) => void;

export class SupervisorSocket {
  private readonly others = new Map<4 | 6, Socket>();

  private constructor(
    private readonly main: Socket,
    private readonly groupSockets: Socket[],
    readonly endpoint: Endpoint,
    private readonly log: (line: string) => void,
  ) {}

  /** Binds the listen address and joins the groups; rejects (closing what it opened) when that fails. */
  static async open(ep: Endpoint, onDatagram: DatagramHandler, log: (line: string) => void = () => {}): Promise<SupervisorSocket> {
    const family = isIP(ep.address) === 6 ? 6 : 4;
    const opened: Socket[] = [];
    const receive = (s: Socket): void => {
      s.on("message", (msg, rinfo) => onDatagram(msg, { address: rinfo.address, port: rinfo.port }));
      s.on("error", (e) => log(`supervisor: socket error: ${e.message}`));
    };
    try {
      const main = createSocket({ type: family === 6 ? "udp6" : "udp4", reuseAddr: ep.groups.length > 0, ipv6Only: family === 6 });
      opened.push(main);
      await bind(main, ep.port, ep.address);
      receive(main);
      const groups: Socket[] = [];
      const wildcard = ep.address === "0.0.0.0" || ep.address === "::";
      for (const g of ep.groups) {
        const gf = isIP(g.address) === 6 ? 6 : 4;
        if (wildcard && gf === family) {
          main.addMembership(g.address, g.interface); // a second socket on the same port would get each datagram twice
          continue;
        }
        const s = createSocket({ type: gf === 6 ? "udp6" : "udp4", reuseAddr: true, ipv6Only: gf === 6 });
        opened.push(s);
        await bind(s, main.address().port, g.address);
        s.addMembership(g.address, g.interface);
        receive(s);
        groups.push(s);
      }
      return new SupervisorSocket(main, groups, { ...ep, port: main.address().port }, log);
    } catch (e) {
      for (const s of opened) s.close();
      throw new Error(`cannot listen on ${hostPort(ep.address, ep.port)}${ep.groups.length ? ` with groups ${ep.groups.map((g) => g.address).join(", ")}` : ""}: ${(e as Error).message}`);
    }
  }

  /** The bound address and port (port 0 asked: the one the OS chose). */
  get port(): number {
    return this.endpoint.port;
  }

  send(bytes: Uint8Array, to: Source): Promise<void> {
    const family = isIP(to.address) === 6 ? 6 : 4;
    const mine = isIP(this.endpoint.address) === 6 ? 6 : 4;
    const s = family === mine ? this.main : this.other(family);
    return new Promise((ok, fail) => s.send(bytes, to.port, to.address, (e) => (e ? fail(e) : ok())));
  }

  private other(family: 4 | 6): Socket {
    let s = this.others.get(family);
    if (!s) {
      s = createSocket(family === 6 ? "udp6" : "udp4");
      s.on("error", (e) => this.log(`supervisor: relay socket error: ${e.message}`));
      this.others.set(family, s);
    }
    return s;
  }

  async close(): Promise<void> {
    const all = [this.main, ...this.groupSockets, ...this.others.values()];
    await Promise.all(all.map((s) => new Promise<void>((r) => {
      try {
        s.close(() => r());
      } catch {
        r(); // never bound, or closed already
      }
    })));
  }
}

function bind(s: Socket, port: number, address: string): Promise<void> {
  return new Promise((ok, fail) => {
    s.once("error", fail);
    s.bind({ port, address, exclusive: true }, () => {
      s.off("error", fail);
      ok();
    });
  });
}

export function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}
