// udp probe: send one datagram, pass on the first reply (that contains `expect`, if set).
//
// The socket is connected, so the kernel hands an ICMP port unreachable back to us as
// ECONNREFUSED ("connection refused": nothing listens) and keeps other hosts' datagrams out.
// Silence until the deadline is "no reply": UDP cannot tell a dead host from a slow one.

import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";
import type { CheckSpec } from "./spec.js";
import { OK, errorReason, failed, type ProbeResult } from "./reason.js";

export function udpProbe(spec: CheckSpec, finish: (r: ProbeResult) => void): () => void {
  const socket: Socket = createSocket({ type: isIP(spec.address) === 6 ? "udp6" : "udp4" });
  let open = true;
  socket.on("error", (err) => finish(failed(errorReason(err))));
  socket.on("close", () => {
    open = false;
  });
  socket.on("message", (msg: Buffer) => {
    const pass = spec.expect === undefined || msg.includes(spec.expect);
    finish(pass ? OK : failed("unexpected reply"));
  });

  // Callbacks may still arrive after the probe was released: a closed socket must not be used.
  const send = (): void => {
    if (!open) return;
    try {
      socket.connect(spec.port, spec.address, (err?: Error) => {
        if (!open) return;
        if (err) return finish(failed(errorReason(err)));
        socket.send(Buffer.from(spec.send ?? "", "utf8"), (sendErr) => {
          if (sendErr) finish(failed(errorReason(sendErr)));
        });
      });
    } catch (err) {
      finish(failed(errorReason(err)));
    }
  };
  if (spec.sourceAddress !== undefined) socket.bind({ address: spec.sourceAddress, port: 0 }, send);
  else send();

  return () => {
    if (!open) return;
    open = false;
    try {
      socket.close();
    } catch {
      // Already closed by a failed bind: nothing left to release.
    }
  };
}
