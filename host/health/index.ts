// Backend health checks, HAProxy/keepalived style: the public face. The monitor probes each
// backend's real address and decides up or down; the host acts on its changes.
//
// Probes: tcp (connect, close), http/https (GET path with Connection: close; passes on any 2xx, or
// on exactly expectStatus if set; redirects are not followed; https does not verify certificates
// unless verifyTls, since backends mostly carry self-signed ones), udp (send, wait for a reply on
// a connected socket). Reasons an operator reads in the log:
//   ok, status 200                                  success
//   timeout, no reply (udp)                         nothing within timeoutMs
//   connection refused, connection reset, connection closed, host unreachable, network unreachable
//   bad status 503, unexpected reply, tls error: <openssl reason or certificate problem>
// Log lines: "health: backend web1 down (timeout, 3 failures)", "health: backend web1 up (status 200, 2 successes)".
export {
  HealthMonitor,
  INITIAL_REASON,
  type HealthState,
  type HealthStatus,
  type HealthChange,
  type HealthMonitorOptions,
} from "./monitor.js";
export {
  CHECK_DEFAULTS,
  checkSpecErrors,
  withDefaults,
  sameSpec,
  type CheckType,
  type CheckSpec,
  type CheckSpecInput,
} from "./spec.js";
export { startProbe } from "./probe.js";
export type { ProbeResult } from "./reason.js";
export { probeDue, nextProbe, JITTER_FRACTION } from "./schedule.js";
