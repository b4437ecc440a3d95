// The local control channel between `flowswitch-agent drain|status` and a running agent: a unix
// socket (config `controlSocket`, default /run/flowswitch-agent/<id>.sock, mode 0600) speaking one
// JSON object per line.
//
//   client -> agent   {"cmd":"drain","timeoutS":30}
//   agent -> client   {"event":"draining","connections":N}   at once, then each interval
//                     {"event":"leaving","reason":"connections ended"|"timeout"}
//                     {"event":"done"}                        then the agent closes and exits
//
//   client -> agent   {"cmd":"status"}
//   agent -> client   {"event":"status","state":"up",...}    state, interval, registration, leases
//
// A unix socket rather than a signal + pid file: the caller learns when the drain has finished (so
// systemd's ExecStop returns only once the server has left), file permissions decide who may drain,
// and there is no stale pid to signal by mistake.

import { createServer, createConnection, type Server, type Socket } from "node:net";
import { chmodSync, mkdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import type { ClientStatus } from "./supervisor-client.js";

export type ControlEvent =
  | { event: "draining"; connections: number }
  | { event: "leaving"; reason: string }
  | { event: "done" }
  | { event: "error"; message: string }
  | ({ event: "status" } & AgentStatus);

/** What `flowswitch-agent status` shows. */
export interface AgentStatus {
  id: string;
  state: string;
  intervalMs: number;
  supervisor?: ClientStatus;
}

export interface ControlHandlers {
  /** A drain was asked for; `notify` gets every later event for that client. */
  drain(timeoutS: number | undefined, notify: (e: ControlEvent) => void): void;
  status(): AgentStatus;
}

/** Largest request line accepted; anything longer is not a request. */
const MAX_LINE = 1024;

/** Listens on `path`; refuses to start if another agent already answers there. */
export async function listenControl(path: string, handlers: ControlHandlers): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true });
  if (await answers(path)) throw new Error(`another agent is already running on ${path}`);
  try {
    unlinkSync(path); // a socket left behind by an agent that died
  } catch {
    // none there
  }
  const server = createServer((sock) => serve(sock, handlers));
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(path, () => {
      server.off("error", fail);
      ok();
    });
  });
  chmodSync(path, 0o600);
  return server;
}

function serve(sock: Socket, handlers: ControlHandlers): void {
  let buf = "";
  const send = (e: ControlEvent): void => {
    if (!sock.destroyed) sock.write(`${JSON.stringify(e)}\n`);
  };
  sock.setEncoding("utf8");
  sock.on("error", () => sock.destroy());
  sock.on("data", (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_LINE) {
      send({ event: "error", message: "request too long" });
      sock.end();
      return;
    }
    const nl = buf.indexOf("\n");
    if (nl < 0) return;
    const line = buf.slice(0, nl);
    buf = "";
    let req: { cmd?: unknown; timeoutS?: unknown };
    try {
      req = JSON.parse(line) as typeof req;
    } catch {
      send({ event: "error", message: "not JSON" });
      sock.end();
      return;
    }
    if (req.cmd === "status") {
      send({ event: "status", ...handlers.status() });
      sock.end();
      return;
    }
    if (req.cmd !== "drain") {
      send({ event: "error", message: `unknown command ${JSON.stringify(req.cmd)}` });
      sock.end();
      return;
    }
    const t = req.timeoutS;
    const timeoutS = typeof t === "number" && Number.isInteger(t) && t >= 0 && t <= 86_400 ? t : undefined;
    handlers.drain(timeoutS, (e) => {
      send(e);
      if (e.event === "done") sock.end();
    });
  });
}

function answers(path: string): Promise<boolean> {
  return new Promise((done) => {
    const c = createConnection(path);
    c.once("connect", () => {
      c.destroy();
      done(true);
    });
    c.once("error", () => done(false));
  });
}

/**
 * Asks the agent at `path` to drain and reports its events until it is done. Resolves with the
 * outcome; `limitMs` bounds the whole wait.
 */
export function requestDrain(path: string, timeoutS: number | undefined, limitMs: number, onEvent: (e: ControlEvent) => void): Promise<"done" | "no-agent" | "lost" | "timeout"> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: "done" | "no-agent" | "lost" | "timeout"): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish("timeout"), limitMs);
    let connected = false;
    let buf = "";
    const sock = createConnection(path);
    sock.setEncoding("utf8");
    sock.on("connect", () => {
      connected = true;
      sock.write(`${JSON.stringify(timeoutS === undefined ? { cmd: "drain" } : { cmd: "drain", timeoutS })}\n`);
    });
    sock.on("data", (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let e: ControlEvent;
        try {
          e = JSON.parse(line) as ControlEvent;
        } catch {
          continue;
        }
        onEvent(e);
        if (e.event === "done") return finish("done");
        if (e.event === "error") return finish("lost");
      }
    });
    sock.on("error", () => finish(connected ? "lost" : "no-agent"));
    sock.on("close", () => finish(connected ? "lost" : "no-agent"));
  });
}

/** Asks the agent at `path` for its status; undefined when no agent answers within `limitMs`. */
export function requestStatus(path: string, limitMs: number): Promise<AgentStatus | undefined> {
  return new Promise((resolve) => {
    let buf = "";
    const sock = createConnection(path);
    const finish = (r: AgentStatus | undefined): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(undefined), limitMs);
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write(`${JSON.stringify({ cmd: "status" })}\n`));
    sock.on("data", (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      try {
        const e = JSON.parse(buf.slice(0, nl)) as ControlEvent;
        if (e.event === "status") {
          const { event: _, ...status } = e;
          return finish(status);
        }
      } catch {
        // not an answer
      }
      finish(undefined);
    });
    sock.on("error", () => finish(undefined));
    sock.on("close", () => finish(undefined));
  });
}
