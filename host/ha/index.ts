// The redundant pair (docs/ha-protocol.md): heartbeats and the election of the active node.
// HeartbeatService is what the appliance uses; the rest is for tools and tests.
export { HeartbeatService, type HaStateChange, type HaReannounce, type HaStats, type HaLinkStats, type HeartbeatEvents, type HeartbeatServiceOptions } from "./heartbeat.js";
export { Election, type ElectionConfig, type ElectionEvent, type PeerView, type LinkView, type ElectionCounters } from "./election.js";
export { HeartbeatInbox, REJECT_REASONS, type RejectReason } from "./inbox.js";
export { encodeHa, decodeHa, pickKey, HA_STATES, HA_DEFAULT_PORT, HA_MAX_DATAGRAM_BYTES, HA_PROTOCOL_VERSION, UNKNOWN_DIGEST, type HaState, type HeartbeatMsg, type HaMessage } from "./protocol.js";
