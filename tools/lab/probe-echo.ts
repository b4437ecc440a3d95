// The probe's echo: sends every UDP datagram it receives straight back to its sender, from the
// address it was sent to. One socket per address given (--bind), because node's sockets cannot
// tell a wildcard socket's destination address: a server bound to a DSR VIP must answer from the
// VIP, and one bound to its own address (NAT) from that. --bind 0.0.0.0 answers from whatever the
// route says (enough for a client that only looks at the payload).
//
//   node build/tools/lab/probe-echo.js --port 7077 --bind 10.77.2.100 --bind 10.77.3.11 ...
//
// Runs until killed. Started in the lab's namespaces by probe.ts.
import { createSocket } from "node:dgram";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { port: { type: "string" }, bind: { type: "string", multiple: true, default: [] } },
  strict: true,
});
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65535 || !values.bind?.length) {
  process.stderr.write("usage: probe-echo --port N --bind ADDRESS [--bind ADDRESS ...]\n");
  process.exit(2);
}

for (const address of values.bind) {
  const v6 = address.includes(":");
  const s = createSocket({ type: v6 ? "udp6" : "udp4", ipv6Only: v6 });
  s.on("message", (msg, from) => s.send(msg, from.port, from.address));
  s.on("error", (e) => {
    process.stderr.write(`probe-echo: ${address}:${port}: ${e.message}\n`);
    process.exit(1);
  });
  s.bind(port, address, () => process.stdout.write(`probe-echo: listening on ${v6 ? `[${address}]` : address}:${port}\n`));
}
