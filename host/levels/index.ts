// Multi-level service routing and flow recovery (docs/levels-protocol.md): the wire format, the
// site's load figures, the system's table of sites, round trips, recovery queries and the socket.
export * from "./protocol.js";
export * from "./aggregate.js";
export * from "./site-table.js";
export * from "./rtt.js";
export * from "./recovery.js";
export * from "./socket.js";
export { contains, hostPrefix, parseWirePrefix, prefixKey } from "./prefix.js";
