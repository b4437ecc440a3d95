// The topic tree, in one place: flowswitch/<site>/<device>/{state,metrics,events}. Site and
// device are configuration names (letters, digits, '_', '.', '-'), so they never hold a '/', '+'
// or '#' that would change the tree's shape.

export interface Topics {
  /** "online" / "offline", retained; "offline" is also the last will. */
  state: string;
  /** A snapshot of the counters every interval (QoS 0, not retained). */
  metrics: string;
  /** One message per event (QoS 1, not retained). */
  events: string;
}

export const TOPIC_ROOT = "flowswitch";

export function topicsFor(site: string, device: string): Topics {
  const base = `${TOPIC_ROOT}/${site}/${device}`;
  return { state: `${base}/state`, metrics: `${base}/metrics`, events: `${base}/events` };
}

export const STATE_ONLINE = "online";
export const STATE_OFFLINE = "offline";
