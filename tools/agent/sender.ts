// Signs advertisements and sends each one, as one datagram, to the multicast group and to every
// configured appliance. The sequence number starts at the clock in milliseconds and goes up by one
// per datagram (docs/advertisement-protocol.md, "Senders start high"), so a restarted agent needs no
// saved state. The same signed datagram goes to every destination: an appliance that hears it twice
// (multicast and unicast) drops the copy as replayed, which is harmless.
//
// A send that fails (no route to the group, appliance unreachable) is reported once per
// destination until it works again, never fatal: the next interval tries again.
//
// Requests to the supervisor (sendTo) share the one sequence number: the supervisor may also
// hear the advertisements, and a second counter starting at the same clock would collide in its
// replay window. Its answers come back to the socket the request left from (onDatagram).

import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { encode, type Message } from "../../host/discovery/protocol.js";
import type { AgentConfig } from "./config.js";

/** Advertisements stay on the server-facing segment. */
const MULTICAST_TTL = 1;

interface Destination {
  address: string;
  port: number;
  socket: Socket;
}

export class Sender {
  private seq: number;
  private readonly sockets: Socket[] = [];
  private readonly byFamily = new Map<4 | 6, Socket>();
  private readonly destinations: Destination[] = [];
  /** Destinations whose last send failed, with the error shown, so each failure is logged once. */
  private readonly failing = new Map<string, string>();
  sent = 0;
  sendErrors = 0;

  private constructor(
    private readonly config: AgentConfig,
    private readonly log: (line: string) => void,
    private readonly now: () => number,
  ) {
    this.seq = now();
  }

  static async open(config: AgentConfig, log: (line: string) => void, now: () => number = Date.now): Promise<Sender> {
    const s = new Sender(config, log, now);
    const targets = [config.group, ...config.unicast, ...(config.supervisor ? [config.supervisor.address] : [])];
    for (const family of [4, 6] as const) {
      const mine = targets.filter((a) => isIP(a) === family);
      if (mine.length === 0) continue;
      const socket = createSocket(family === 4 ? "udp4" : "udp6");
      s.sockets.push(socket);
      s.byFamily.set(family, socket);
      socket.on("error", (e) => log(`udp${family} socket: ${e.message}`));
      const bindAddress = config.interface !== undefined && isIP(config.interface) === family ? config.interface : undefined;
      await new Promise<void>((ok, fail) => {
        socket.once("error", fail);
        socket.bind({ port: 0, address: bindAddress, exclusive: true }, () => {
          socket.off("error", fail);
          ok();
        });
      });
      socket.setMulticastTTL(MULTICAST_TTL);
      // IPv4 names the interface by an address of it; IPv6 by its scope (the link-local group
      // ff02::77 means nothing without one): the interface that holds the configured address
      if (family === 4 && bindAddress !== undefined) socket.setMulticastInterface(bindAddress);
      const name = family === 6 && config.interface !== undefined ? interfaceOf(config.interface) : undefined;
      if (name !== undefined) socket.setMulticastInterface(`::%${name}`);
      for (const address of mine) s.destinations.push({ address, port: config.port, socket });
    }
    return s;
  }

  /** Signs `msg` with the next sequence number and sends it to one address (a request to the supervisor). */
  async sendTo(msg: Message, address: string, port: number): Promise<void> {
    const seq = this.seq++;
    const bytes = encode(msg, this.config.key, seq, this.now(), this.config.id);
    const family = isIP(address) === 6 ? 6 : 4;
    const socket = this.byFamily.get(family);
    if (!socket) throw new Error(`no IPv${family} socket for ${address}`);
    await this.transmit({ address, port, socket }, bytes);
    this.sent++;
  }

  /** Every datagram that arrives on the sockets (answers to sendTo). */
  onDatagram(f: (bytes: Uint8Array, from: { address: string; port: number }) => void): void {
    for (const s of this.sockets) s.on("message", (msg, rinfo) => f(msg, { address: rinfo.address, port: rinfo.port }));
  }

  /** Signs `msg` with the next sequence number and sends it everywhere. Resolves when every send has finished. */
  async send(msg: Message): Promise<void> {
    const seq = this.seq++;
    const bytes = encode(msg, this.config.key, seq, this.now(), this.config.id);
    await Promise.all(this.destinations.map((d) => this.transmit(d, bytes)));
    this.sent++;
  }

  private transmit(d: Destination, bytes: Uint8Array): Promise<void> {
    const where = `${d.address}:${d.port}`;
    return new Promise((done) => {
      d.socket.send(bytes, d.port, d.address, (e) => {
        if (e) {
          this.sendErrors++;
          if (this.failing.get(where) !== e.message) this.log(`send to ${where} failed: ${e.message}`);
          this.failing.set(where, e.message);
        } else if (this.failing.delete(where)) {
          this.log(`send to ${where} works again`);
        }
        done();
      });
    });
  }

  close(): void {
    for (const s of this.sockets) s.close();
  }
}

/** The name of the network interface that holds `address`, if any. */
export function interfaceOf(address: string): string | undefined {
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if (list?.some((a) => a.address === address)) return name;
  }
  return undefined;
}
