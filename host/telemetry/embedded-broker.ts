// The broker the appliance runs itself when no broker is configured (aedes, in memory), so that
// telemetry can be watched with any MQTT client straight away: `mosquitto_sub -h <address> -t
// 'flowswitch/#' -v`. It listens on 127.0.0.1 unless told otherwise; with telemetry.mqtt
// username/password set it asks every client for them.
import { createServer, type Server, type Socket } from "node:net";
import { timingSafeEqual } from "node:crypto";
import { Aedes } from "aedes";

export interface EmbeddedBrokerOptions {
  address: string;
  port: number;
  username?: string;
  password?: string;
}

export interface EmbeddedBroker {
  /** The URL a client on this box reaches it at. */
  url: string;
  close(): Promise<void>;
}

const CLOSE_WAIT_MS = 2000;

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function brokerUrl(address: string, port: number): string {
  return `mqtt://${address.includes(":") ? `[${address}]` : address}:${port}`;
}

/** Never rejects: a broker that cannot listen (port taken) is logged and reported as undefined. */
export async function startEmbeddedBroker(o: EmbeddedBrokerOptions, log: (line: string) => void): Promise<EmbeddedBroker | undefined> {
  let broker: Aedes;
  try {
    broker = await Aedes.createBroker({
      authenticate: (_client, username, password, done) => {
        if (o.username === undefined) return done(null, true);
        const ok = username !== undefined && same(username, o.username) && (o.password === undefined || (password !== undefined && same(password.toString(), o.password)));
        done(null, ok);
      },
    });
  } catch (e) {
    log(`telemetry: the embedded broker did not start: ${(e as Error).message}`);
    return undefined;
  }
  broker.on("clientError", () => undefined); // a client's broken connection is its own business
  broker.on("connectionError", () => undefined);
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    broker.handle(socket);
  });
  const listening = await new Promise<Error | undefined>((resolve) => {
    server.once("error", resolve);
    server.listen(o.port, o.address, () => {
      server.off("error", resolve);
      resolve(undefined);
    });
  });
  if (listening) {
    log(`telemetry: the embedded broker cannot listen on ${o.address} port ${o.port}: ${listening.message}`);
    broker.close();
    return undefined;
  }
  server.on("error", (e) => log(`telemetry: embedded broker: ${e.message}`));
  const url = brokerUrl(o.address, o.port);
  log(`telemetry: embedded MQTT broker listening on ${url}`);
  return {
    url,
    close: () => new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CLOSE_WAIT_MS);
      server.close();
      broker.close(() => {
        for (const s of sockets) s.destroy();
        clearTimeout(timer);
        resolve();
      });
    }),
  };
}
