// tcp, http and https probes over one stream socket each.
//
// The HTTP request is written and the status line read by hand rather than through node:http: a
// probe needs nothing past the status, must never reuse a connection (no agent), and must tell a
// reset from a close before any reply, a refused connect from a failed handshake, which
// node:http folds into one "socket hang up". The socket is destroyed as soon as the outcome is
// known (the kernel still closes it with a FIN, so a tcp check does not log resets on the backend).

import { connect as tcpConnect, isIP, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { CheckSpec } from "./spec.js";
import { OK, errorReason, failed, type ProbeResult } from "./reason.js";

/** A status line longer than this (or a pile of 1xx responses) is not a web server talking. */
const MAX_HEAD_BYTES = 16 * 1024;

/** Starts a stream probe; `finish` gets the outcome; the returned function releases the socket. */
export function streamProbe(spec: CheckSpec, finish: (r: ProbeResult) => void): () => void {
  const https = spec.type === "https";
  const target = {
    host: spec.address,
    port: spec.port,
    ...(spec.sourceAddress !== undefined ? { localAddress: spec.sourceAddress } : {}),
  };
  // An error between TCP connect and the end of the handshake is the handshake's fault.
  let handshaking = false;
  let head = "";
  const servername = sniName(spec.host);

  const socket: Socket = https
    ? tlsConnect({
        ...target,
        rejectUnauthorized: spec.verifyTls === true,
        // SNI carries a name, never an address.
        ...(servername !== undefined ? { servername } : {}),
        ALPNProtocols: ["http/1.1"],
      })
    : tcpConnect(target);

  socket.on("error", (err) => finish(failed(errorReason(err, handshaking))));
  socket.on("connect", () => {
    handshaking = https;
    if (spec.type === "tcp") finish(OK);
    else if (spec.type === "http") socket.write(request(spec));
  });
  socket.on("secureConnect", () => {
    handshaking = false;
    socket.write(request(spec));
  });
  socket.on("data", (chunk: Buffer) => {
    head += chunk.toString("latin1");
    const r = readStatus(head, spec.expectStatus);
    if (r !== undefined) finish(r);
    else if (head.length > MAX_HEAD_BYTES) finish(failed("unexpected reply"));
  });
  socket.on("end", () => finish(failed(head === "" ? "connection closed" : "unexpected reply")));
  socket.on("close", () => finish(failed("connection closed")));

  return () => {
    socket.destroy();
  };
}

function request(spec: CheckSpec): string {
  return (
    `GET ${spec.path ?? "/"} HTTP/1.1\r\n` +
    `Host: ${spec.host}\r\n` +
    "User-Agent: flowswitch-health\r\n" +
    "Accept: */*\r\n" +
    "Connection: close\r\n\r\n"
  );
}

function sniName(host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  const name = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.replace(/:\d+$/, "");
  return name === "" || isIP(name) !== 0 ? undefined : name;
}

/**
 * The outcome once the head holds a final status line; undefined while more bytes are needed.
 * Interim 1xx responses (103 Early Hints) are skipped; 101 is final (and never 2xx).
 */
export function readStatus(head: string, expectStatus: number | undefined): ProbeResult | undefined {
  let rest = head;
  for (;;) {
    const eol = rest.indexOf("\n");
    if (eol < 0) return /^(H(T(T(P(\/.*)?)?)?)?)?$/.test(rest) ? undefined : failed("unexpected reply");
    const m = /^HTTP\/\d(?:\.\d)? (\d{3})(?:[ \t].*)?\r?$/.exec(rest.slice(0, eol));
    if (m === null) return failed("unexpected reply");
    const status = Number(m[1]);
    if (status >= 100 && status < 200 && status !== 101) {
      const end = /\r?\n\r?\n/.exec(rest);
      if (end === null) return undefined;
      rest = rest.slice(end.index + end[0].length);
      continue;
    }
    const pass = expectStatus === undefined ? status >= 200 && status < 300 : status === expectStatus;
    return pass ? { ok: true, reason: `status ${status}` } : failed(`bad status ${status}`);
  }
}
