// Metrics and event payloads on the wire: JSON text (what `mosquitto_sub` and dashboards read)
// or CBOR (`cbor-x`, smaller, for collectors that ask for it). The state topic is neither: it is
// the bare word online / offline, as availability topics usually are, so a last will needs no
// encoder and every tool can read it.
import { encode as cborEncode } from "cbor-x";

export type PayloadFormat = "json" | "cbor";

export function encodePayload(value: unknown, format: PayloadFormat): Buffer {
  return format === "cbor" ? Buffer.from(cborEncode(value)) : Buffer.from(JSON.stringify(value));
}
