// Free ports for tests' own servers: the kernel picks one, the socket is closed, the number kept.
import { createSocket } from "node:dgram";
import { createServer } from "node:net";

/** A UDP port free on `address` a moment ago. */
export async function freeUdpPort(address = "127.0.0.1"): Promise<number> {
  const s = createSocket(address.includes(":") ? "udp6" : "udp4");
  await new Promise<void>((r) => s.bind(0, address, () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A TCP port free on 127.0.0.1 a moment ago. */
export async function freeTcpPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}
