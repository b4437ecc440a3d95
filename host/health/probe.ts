// One probe of one backend: start it, bound it by the timeout, report exactly once, release all.

import type { CheckSpec } from "./spec.js";
import { errorReason, failed, type ProbeResult } from "./reason.js";
import { streamProbe } from "./probe-stream.js";
import { udpProbe } from "./probe-udp.js";

/**
 * Starts a probe. `done` is called exactly once, never synchronously, unless the returned cancel
 * function is called first; either way every socket and timer of the probe is released.
 */
export function startProbe(spec: CheckSpec, done: (r: ProbeResult) => void): () => void {
  let finished = false;
  let starting = true;
  let release: (() => void) | undefined;

  const end = (): void => {
    finished = true;
    clearTimeout(deadline);
    try {
      release?.();
    } catch {
      // Releasing a socket that is already gone is not an outcome.
    }
  };
  const finish = (r: ProbeResult): void => {
    if (finished) return;
    end();
    if (starting) process.nextTick(done, r);
    else done(r);
  };

  const deadline = setTimeout(() => finish(failed(spec.type === "udp" ? "no reply" : "timeout")), spec.timeoutMs);
  try {
    release = spec.type === "udp" ? udpProbe(spec, finish) : streamProbe(spec, finish);
  } catch (err) {
    finish(failed(errorReason(err)));
  }
  starting = false;
  if (finished) end(); // finished while starting: release what the start created

  return () => {
    if (!finished) end();
  };
}
