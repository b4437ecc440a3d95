// Telemetry: the appliance's state, metrics and events published over MQTT (docs/telemetry.md).
//
//   flowswitch/<site>/<hostname>/state     online / offline, retained; offline is the last will
//   flowswitch/<site>/<hostname>/metrics   a snapshot every interval (QoS 0), discovery included
//   flowswitch/<site>/<hostname>/events    one message per BoxEvent (QoS 1), end-system changes included
//
// It only reads the BoxView and listens to its events: a broker that is slow or gone costs the
// box a bounded queue of events and nothing else. Nothing here throws into the caller, and
// nothing it awaits outlives a few seconds.
import { readFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import type { BoxEvent, BoxView } from "../observe.js";
import type { TelemetryConfig } from "../config/schema.js";
import { topicsFor, STATE_ONLINE, STATE_OFFLINE } from "./topics.js";
import { encodePayload } from "./encoding.js";
import { metricsOf } from "./metrics.js";
import { EventQueue } from "./event-queue.js";
import { startEmbeddedBroker, brokerUrl, type EmbeddedBroker } from "./embedded-broker.js";
import { Connection } from "./connection.js";

export type NormalisedTelemetryConfig = TelemetryConfig;
export type { MetricsPayload } from "./metrics.js";
export { topicsFor, TOPIC_ROOT, STATE_ONLINE, STATE_OFFLINE } from "./topics.js";

export interface TelemetryStats {
  connected: boolean;
  /** Messages the broker took since start (state, metrics, events). */
  published: number;
  /** Events dropped because the queue was full while the broker was away. */
  eventsDropped: number;
}

export interface Telemetry {
  /** Publishes offline (if connected), disconnects and closes the embedded broker. Bounded. */
  stop(): Promise<void>;
  stats(): TelemetryStats;
}

/** Events handed to the client and not yet acknowledged: the rest wait in the bounded queue. */
const MAX_IN_FLIGHT = 64;

const inert = (): Telemetry => ({ stop: async () => undefined, stats: () => ({ connected: false, published: 0, eventsDropped: 0 }) });

export async function startTelemetry(config: NormalisedTelemetryConfig, view: BoxView, log: (line: string) => void): Promise<Telemetry> {
  try {
    return await start(config, view, log);
  } catch (e) {
    log(`telemetry: not started: ${(e as Error).message}`);
    return inert();
  }
}

async function start(config: NormalisedTelemetryConfig, view: BoxView, log: (line: string) => void): Promise<Telemetry> {
  if (!config.enabled) return inert();
  const m = config.mqtt;
  const device = view.hostname();
  const topics = topicsFor(m.site, device);

  let broker: EmbeddedBroker | undefined;
  let url = m.url;
  if (!url) {
    const b = config.embeddedBroker;
    broker = await startEmbeddedBroker({ address: b.address, port: b.port, username: m.username, password: m.password }, log);
    // a broker that could not listen may be another one on that port: publish to it all the same
    url = broker?.url ?? brokerUrl(b.address, b.port);
  }
  const files: Partial<Record<"ca" | "cert" | "key", Buffer>> = {};
  for (const k of ["ca", "cert", "key"] as const) {
    const path = m[k];
    if (!path) continue;
    try {
      files[k] = await readFile(path);
    } catch (e) {
      log(`telemetry: cannot read ${k} file ${path}: ${(e as Error).message}; telemetry is off`);
      await broker?.close();
      return inert();
    }
  }

  const queue = new EventQueue<Buffer>(m.eventBuffer);
  let inFlight = 0;
  const sendEvents = (): void => {
    while (inFlight < MAX_IN_FLIGHT && queue.length > 0 && conn.connected) {
      const payload = queue.shift()!;
      inFlight++;
      const handed = conn.publish(topics.events, payload, { qos: 1, retain: false }, (err) => {
        inFlight--;
        if (err) queue.unshift(payload); // the connection dropped before the broker acknowledged it
        else setImmediate(sendEvents);
      });
      if (!handed) {
        inFlight--;
        queue.unshift(payload);
        return;
      }
    }
  };
  const sendMetrics = (): void => {
    if (!conn.connected) return;
    try {
      const payload = encodePayload(metricsOf(view, m.site, { eventsDropped: queue.dropped, eventsQueued: queue.length }), m.format);
      conn.publish(topics.metrics, payload, { qos: 0, retain: false });
    } catch (e) {
      log(`telemetry: metrics not sent: ${(e as Error).message}`);
    }
  };

  const conn = new Connection({
    url,
    // a random tail: two boxes (or two `npm start`s) of one name never take each other's session over
    clientId: `flowswitch-${m.site}-${device}-${randomBytes(3).toString("hex")}`,
    username: m.username,
    password: m.password,
    ...files,
    will: { topic: topics.state, payload: STATE_OFFLINE },
    onConnect: () => {
      conn.publish(topics.state, STATE_ONLINE, { qos: 1, retain: true });
      sendMetrics();
      sendEvents();
    },
    log,
  });

  const unsubscribe = view.events.subscribe((e: BoxEvent) => {
    try {
      if (queue.push(encodePayload(e, m.format))) sendEvents();
    } catch (err) {
      log(`telemetry: event ${e.type} not queued: ${(err as Error).message}`);
    }
  });
  const timer = setInterval(sendMetrics, m.intervalMs);
  timer.unref();

  let stopped: Promise<void> | undefined;
  return {
    stats: () => ({ connected: conn.connected, published: conn.published, eventsDropped: queue.dropped }),
    stop: () => (stopped ??= (async () => {
      clearInterval(timer);
      unsubscribe();
      try {
        await conn.stop({ topic: topics.state, payload: STATE_OFFLINE });
        await broker?.close();
      } catch (e) {
        log(`telemetry: stopping: ${(e as Error).message}`);
      }
    })()),
  };
}
