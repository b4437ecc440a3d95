// The agent's life: up -> draining -> leaving -> gone.
//
//   up        every interval: SERVICE (state up), LOAD, and each configured FLOW add.
//   draining  entered on `drain` or SIGTERM/SIGINT: SERVICE (draining) at once and then each
//             interval with LOAD, until no established connection to a served port is left or the
//             drain timeout passes.
//   leaving   SERVICE (leaving) three times one interval apart, FLOW withdraw for each flow with
//             the first one, then the agent stops (docs/advertisement-protocol.md, "Leaving").
//
// Ticks never overlap: the next one is scheduled when the previous has sent, so a slow probe
// stretches an interval instead of piling up sends.

import type { FlowMsg, LoadMsg, Message, ServerState, ServiceMsg } from "../../host/discovery/protocol.js";
import type { AgentConfig } from "./config.js";
import { countedPorts, cpuPercent, establishedConnections, probeOnce } from "./load.js";
import type { ControlEvent } from "./control.js";

/** SERVICE leaving is repeated this many times before the agent stops. */
export const LEAVING_REPEATS = 3;

export interface Measurement {
  cpu: number;
  connections: number;
  /** Microseconds of the local probe; undefined without a probe. A failed probe counts as its timeout. */
  responseTimeUs?: number;
  probeError?: string;
}

export async function measure(config: AgentConfig, ports = countedPorts(config.services)): Promise<Measurement> {
  const m: Measurement = { cpu: cpuPercent(), connections: establishedConnections(ports) };
  if (config.probe) {
    const r = await probeOnce(config.probe.url, config.probe.timeoutMs);
    if (r.ok) m.responseTimeUs = r.us;
    else {
      m.responseTimeUs = config.probe.timeoutMs * 1000;
      m.probeError = r.reason;
    }
  }
  return m;
}

export function serviceMsg(config: AgentConfig, state: ServerState): ServiceMsg {
  return { type: "service", endSystem: config.id, addresses: config.addresses, state, intervalMs: config.intervalMs, services: config.services };
}

/** The protocol requires responseTimeUs; without a probe it is 0, which appliances read as "no delay measured". */
export function loadMsg(config: AgentConfig, m: Measurement): LoadMsg {
  return { type: "load", endSystem: config.id, cpu: m.cpu, connections: Math.min(m.connections, 0xffffffff), responseTimeUs: Math.min(m.responseTimeUs ?? 0, 0xffffffff) };
}

export function flowMsgs(config: AgentConfig, op: "add" | "withdraw"): FlowMsg[] {
  return config.flows.map((f) => ({ type: "flow", op, pattern: f.pattern, endSystem: f.endSystem, attributes: f.attributes }));
}

export interface AgentIo {
  send(msg: Message): Promise<void>;
  log(line: string): void;
  measure(): Promise<Measurement>;
  now(): number;
}

export class Agent {
  private state: ServerState = "up";
  private drainDeadline = 0;
  private leavingSent = 0;
  private drainingSent = 0;
  private done = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: ((e: ControlEvent) => void)[] = [];
  private stopped!: () => void;
  /** Resolves once the agent has left (or was stopped). */
  readonly finished = new Promise<void>((r) => (this.stopped = r));
  private lastProbeError: string | undefined;

  constructor(
    private config: AgentConfig,
    private readonly io: AgentIo,
  ) {}

  get currentState(): ServerState {
    return this.state;
  }

  get intervalMs(): number {
    return this.config.intervalMs;
  }

  /** The supervisor's interval: adopted, and SERVICE goes out at once with it. */
  setIntervalMs(ms: number): void {
    if (ms === this.config.intervalMs) return;
    this.io.log(`${this.config.id}: advertising every ${ms} ms (the supervisor's interval; was ${this.config.intervalMs} ms)`);
    this.config = { ...this.config, intervalMs: ms };
    if (this.state === "up") this.reschedule();
  }

  start(): void {
    this.io.log(`${this.config.id}: up, advertising ${this.config.services.length} service(s) every ${this.config.intervalMs} ms`);
    void this.tick();
  }

  /** Starts a drain (or, while draining, shortens it to `timeoutS` if that is sooner). */
  drain(timeoutS: number | undefined, notify?: (e: ControlEvent) => void): void {
    if (notify) this.listeners.push(notify);
    const deadline = this.io.now() + (timeoutS ?? this.config.drainTimeoutS) * 1000;
    if (this.state === "up") {
      this.state = "draining";
      this.drainDeadline = deadline;
      this.io.log(`${this.config.id}: draining (up to ${timeoutS ?? this.config.drainTimeoutS} s)`);
      this.reschedule(); // advertise the change at once
    } else if (this.state === "draining") {
      this.drainDeadline = Math.min(this.drainDeadline, deadline);
    } else if (notify) {
      notify({ event: "leaving", reason: "already leaving" });
    }
  }

  /** Skips the drain and leaves at once (a second SIGTERM). */
  leaveNow(): void {
    if (this.state === "leaving") return;
    this.enterLeaving("asked to leave at once");
    this.reschedule();
  }

  private reschedule(): void {
    if (this.timer === undefined || this.done) return; // a tick is running; it reads the new state when it sends
    clearTimeout(this.timer);
    this.timer = undefined;
    void this.tick();
  }

  private emit(e: ControlEvent): void {
    for (const l of this.listeners) l(e);
  }

  private enterLeaving(reason: string): void {
    this.state = "leaving";
    this.io.log(`${this.config.id}: leaving (${reason})`);
    this.emit({ event: "leaving", reason });
  }

  private async tick(): Promise<void> {
    if (this.done) return;
    try {
      if (this.state === "leaving") {
        await this.io.send(serviceMsg(this.config, "leaving"));
        if (this.leavingSent === 0) for (const f of flowMsgs(this.config, "withdraw")) await this.io.send(f);
        if (++this.leavingSent >= LEAVING_REPEATS) return this.finish();
      } else {
        const m = await this.io.measure();
        if (m.probeError !== this.lastProbeError) this.io.log(m.probeError ? `probe failed: ${m.probeError}` : "probe answers again");
        this.lastProbeError = m.probeError;
        // The state may have changed while measuring; read it now. At least one draining SERVICE
        // goes out before leaving, so appliances stop new flows even if the server is idle.
        if (this.state === "draining") {
          this.emit({ event: "draining", connections: m.connections });
          if (this.drainingSent++ > 0 && (m.connections === 0 || this.io.now() >= this.drainDeadline)) {
            this.enterLeaving(m.connections === 0 ? "connections ended" : `timeout with ${m.connections} connection(s) open`);
            return this.tick();
          }
        }
        const state = this.state as ServerState;
        await this.io.send(serviceMsg(this.config, state));
        await this.io.send(loadMsg(this.config, m));
        if (state === "up") for (const f of flowMsgs(this.config, "add")) await this.io.send(f);
      }
    } catch (e) {
      this.io.log(`advertising failed: ${(e as Error).message}`);
    }
    if (this.done) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tick();
    }, this.config.intervalMs);
  }

  private finish(): void {
    this.done = true;
    this.io.log(`${this.config.id}: left`);
    this.emit({ event: "done" });
    this.stopped();
  }

  /** Stops advertising without leaving (used on fatal errors). */
  stop(): void {
    this.done = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.stopped();
  }
}
