// The MQTT client connection: one `mqtt` client with its last will, re-connected with our own
// backoff (1 s doubling to 30 s, with jitter) instead of mqtt.js's fixed period, so that a broker
// that is down for an hour sees a few hundred attempts, not thousands. mqtt.js's own offline queue
// is off (reconnectPeriod 0, queueQoSZero false): nothing is written while disconnected, and the
// only buffer of unsent messages is the bounded event queue the caller keeps.
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";

export interface ConnectionOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  will: { topic: string; payload: string };
  /** Called on every (re)connection, before anything else is sent. */
  onConnect: () => void;
  log: (line: string) => void;
}

export const BACKOFF = { firstMs: 1000, maxMs: 30_000 };
const CONNECT_TIMEOUT_MS = 10_000;
const KEEPALIVE_S = 30;
const END_WAIT_MS = 2000;

export type PublishOptions = { qos: 0 | 1; retain: boolean };

export class Connection {
  private readonly client: MqttClient;
  private retryTimer?: NodeJS.Timeout;
  private delayMs = BACKOFF.firstMs;
  private stopping = false;
  private lastError = "";
  private wasConnected = false;
  /** Messages the broker took (QoS 1: acknowledged; QoS 0: written). */
  published = 0;

  constructor(private readonly o: ConnectionOptions) {
    const opts: IClientOptions = {
      clientId: o.clientId,
      username: o.username,
      password: o.password,
      ca: o.ca,
      cert: o.cert,
      key: o.key,
      rejectUnauthorized: true,
      clean: true,
      keepalive: KEEPALIVE_S,
      connectTimeout: CONNECT_TIMEOUT_MS,
      reconnectPeriod: 0,
      queueQoSZero: false,
      will: { topic: o.will.topic, payload: Buffer.from(o.will.payload), qos: 1, retain: true },
    };
    this.client = mqtt.connect(o.url, opts);
    this.client.on("connect", () => {
      this.delayMs = BACKOFF.firstMs;
      this.lastError = "";
      this.wasConnected = true;
      this.o.log(`telemetry: connected to ${o.url}`);
      try {
        this.o.onConnect();
      } catch (e) {
        this.o.log(`telemetry: ${(e as Error).message}`);
      }
    });
    this.client.on("error", (e) => {
      if (e.message !== this.lastError) this.o.log(`telemetry: ${o.url}: ${e.message}`);
      this.lastError = e.message;
    });
    this.client.on("close", () => this.retryLater());
  }

  get connected(): boolean {
    return this.client.connected;
  }

  private retryLater(): void {
    if (this.stopping || this.retryTimer) return;
    if (this.wasConnected) {
      this.o.log(`telemetry: lost the broker at ${this.o.url}, reconnecting`);
      this.wasConnected = false;
    }
    const delay = this.delayMs * (0.75 + Math.random() / 2);
    this.delayMs = Math.min(BACKOFF.maxMs, this.delayMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.stopping) this.client.reconnect();
    }, delay);
    this.retryTimer.unref();
  }

  /** Hands a message to the client; false (and nothing sent) when not connected. */
  publish(topic: string, payload: Buffer | string, opts: PublishOptions, done?: (err?: Error) => void): boolean {
    if (!this.client.connected) return false;
    this.client.publish(topic, payload, opts, (err) => {
      if (!err) this.published++;
      done?.(err ?? undefined);
    });
    return true;
  }

  /** Publishes a last message if connected (waiting for it, bounded), then disconnects cleanly. */
  async stop(last?: { topic: string; payload: string }): Promise<void> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    const bounded = (p: Promise<unknown>): Promise<unknown> => Promise.race([p, new Promise((r) => setTimeout(r, END_WAIT_MS).unref())]);
    if (last && this.client.connected) {
      await bounded(new Promise<void>((r) => this.publish(last.topic, last.payload, { qos: 1, retain: true }, () => r())));
    }
    await bounded(new Promise<void>((r) => this.client.end(false, {}, () => r())));
    if (!this.client.disconnected) this.client.end(true);
  }
}
