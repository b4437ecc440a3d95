// The supervisor as the appliance runs it (config `discovery.supervisor`): a Supervisor on a
// kernel UDP socket bound to a management address of the management CPU (not the data plane),
// its leases in the appliance's state directory, re-configured on every commit. It also hears the
// advertisements the engines punt from the server-facing port (hearFrame), so that it knows the
// end systems there and relays their advertisements to appliances on other segments.
//
// Configuration changes are applied one after the other (rebinding a socket is asynchronous);
// a socket that cannot be bound is logged and tried again at the next change.

import { join } from "node:path";
import type { Config } from "../config/schema.js";
import { FileLeaseStore } from "./lease-store.js";
import { Supervisor, type Source, type SupervisorConfig } from "./supervisor.js";
import { SupervisorSocket, hostPort } from "./supervisor-socket.js";

/** The lease store's file in the state directory. */
export const LEASE_FILE = "supervisor-leases.json";

export interface SupervisorHostOptions {
  /** Where leases are kept; without one, configured pools are refused. */
  stateDir?: string;
  log: (line: string) => void;
}

export class SupervisorHost {
  private sup?: Supervisor;
  private socket?: SupervisorSocket;
  private discoveryPort = 0;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly opts: SupervisorHostOptions) {}

  /** The running supervisor; undefined while none is configured or its socket is not bound. */
  get supervisor(): Supervisor | undefined {
    return this.socket ? this.sup : undefined;
  }

  /** Where it listens: the address and the port bound. */
  get endpoint(): Source | undefined {
    return this.socket && { address: this.socket.endpoint.address, port: this.socket.port };
  }

  /** Applies the configuration's discovery.supervisor (absent: stops it). */
  configure(c: Config): Promise<void> {
    this.chain = this.chain.then(() => this.apply(c)).catch((e: Error) => this.opts.log(`supervisor: ${e.message}`));
    return this.chain;
  }

  /** A frame the engines punted to the discovery port. */
  hearFrame(frame: Uint8Array): void {
    if (this.sup) void this.sup.hearFrame(frame, this.discoveryPort);
  }

  async stop(): Promise<void> {
    this.chain = this.chain.then(() => this.close());
    await this.chain;
  }

  private async apply(c: Config): Promise<void> {
    const s = c.discovery?.supervisor;
    if (!c.discovery || !s) return this.close();
    this.discoveryPort = c.discovery.port;
    const config: SupervisorConfig = {
      id: c.hostname,
      keys: c.discovery.keys.map((k) => ({ id: k.id, secret: k.secret })),
      intervalMs: s.intervalMs,
      maxEndSystems: s.maxEndSystems,
      pools: s.pools.map((p) => ({ ...p })),
      relay: s.relay.map((r) => ({ address: r.address.text, port: r.port })),
      peers: s.peers.map((p) => p.text),
    };
    if (!this.sup) {
      const store = this.opts.stateDir ? new FileLeaseStore(join(this.opts.stateDir, LEASE_FILE)) : undefined;
      this.sup = new Supervisor(config, { send: (bytes, to) => this.send(bytes, to), store, log: this.opts.log });
      await this.sup.start();
    } else {
      await this.sup.update(config);
    }
    const want = { address: s.address.text, port: s.port, groups: [] };
    const have = this.socket?.endpoint;
    if (have && have.address === want.address && (have.port === want.port || want.port === 0)) return;
    await this.socket?.close();
    this.socket = undefined;
    try {
      const sup = this.sup;
      this.socket = await SupervisorSocket.open(want, (bytes, from) => void sup.handle(bytes, from), this.opts.log);
      this.opts.log(`supervisor: listening on ${hostPort(want.address, this.socket.port)}${config.pools.length ? `, pools ${config.pools.map((p) => p.name).join(", ")}` : ""}${config.relay.length ? `, relaying to ${config.relay.length} appliance(s)` : ""}`);
    } catch (e) {
      this.opts.log(`supervisor: not running: ${(e as Error).message}`);
    }
  }

  private send(bytes: Uint8Array, to: Source): Promise<void> {
    if (!this.socket) return Promise.reject(new Error("the supervisor's socket is not bound"));
    return this.socket.send(bytes, to);
  }

  private async close(): Promise<void> {
    await this.sup?.stop();
    await this.socket?.close();
    if (this.sup) this.opts.log("supervisor: stopped");
    this.sup = undefined;
    this.socket = undefined;
  }
}
