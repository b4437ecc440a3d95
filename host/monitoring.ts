// The monitoring agents (SNMP, MQTT telemetry) follow the configuration: each starts when its
// section appears, restarts when its section changes, stops when it goes. A failing agent is
// logged and retried at the next change; it never blocks a commit or forwarding.
import type { Config } from "./config/schema.js";
import type { BoxView } from "./observe.js";
import { startSnmpAgent } from "./snmp/index.js";
import { startTelemetry } from "./telemetry/index.js";

interface Agent {
  stop(): Promise<void>;
}

type Section = "snmp" | "telemetry";

export class Monitoring {
  private readonly running = new Map<Section, { key: string; agent: Agent }>();

  constructor(private readonly view: BoxView, private readonly log: (line: string) => void) {}

  async apply(config: Config): Promise<void> {
    await this.follow("snmp", config.snmp, config.snmp, (c) => startSnmpAgent(c, this.view, this.log));
    // telemetry topics carry the hostname: a new name is a new agent
    await this.follow("telemetry", config.telemetry, [config.telemetry, config.hostname], (c) => startTelemetry(c, this.view, this.log));
  }

  private async follow<T>(section: Section, wanted: T | undefined, identity: unknown, start: (c: T) => Promise<Agent>): Promise<void> {
    const key = JSON.stringify(identity ?? null);
    const now = this.running.get(section);
    if (now?.key === key) return;
    if (now) {
      this.running.delete(section);
      await now.agent.stop().catch((e: Error) => this.log(`${section}: stopping failed: ${e.message}`));
    }
    if (wanted === undefined) return;
    try {
      this.running.set(section, { key, agent: await start(wanted) });
    } catch (e) {
      this.log(`${section}: not started: ${(e as Error).message}`);
    }
  }

  async stop(): Promise<void> {
    const all = [...this.running.values()];
    this.running.clear();
    await Promise.all(all.map((r) => r.agent.stop().catch(() => undefined)));
  }
}
