// Packet captures inside a lab namespace with tshark (Debian: tshark; tools/ensure-test-deps.sh):
// written to a pcap file in the state directory, so the evidence outlives the test, and read back
// as fields. Every capture is bounded (tshark's own -a duration) and can be stopped early.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { isAlive, run, signal, sleep, spawnInNs, statePath, stopPids, tail } from "./exec.js";

export interface Capture {
  pid: number;
  file: string;
  /** Stops tshark (SIGINT: it writes what it has and exits; SIGKILL after 3 s). */
  stop(): Promise<void>;
}

/**
 * Starts tshark on `dev` in `ns` with a capture (BPF) filter, writing <state>/<name>.pcap, for at
 * most maxS seconds. Returns once tshark says it is capturing (at most 10 s).
 */
export async function startCapture(ns: string, dev: string, filter: string, name: string, maxS: number): Promise<Capture> {
  const file = statePath(`${name}.pcap`);
  const log = statePath(`${name}.tshark.log`);
  rmSync(file, { force: true });
  rmSync(log, { force: true });
  const pid = await spawnInNs(ns, ["tshark", "-n", "-q", "-i", dev, "-f", filter, "-a", `duration:${maxS}`, "-w", file], log);
  const stop = async (): Promise<void> => {
    if (!isAlive(pid)) return;
    signal(pid, "SIGINT");
    const deadline = Date.now() + 3000;
    while (isAlive(pid) && Date.now() < deadline) await sleep(20);
    if (isAlive(pid)) await stopPids([pid], 1000);
  };
  // "Capturing on" comes before dumpcap really captures; tshark says "Capture started" once it does
  // (older versions do not: then a second's grace).
  const deadline = Date.now() + 10_000;
  let capturingSince = 0;
  for (;;) {
    const text = readText(log);
    if (/Capture started/.test(text)) return { pid, file, stop };
    if (/Capturing on/.test(text)) {
      capturingSince ||= Date.now();
      if (Date.now() - capturingSince > 1000) return { pid, file, stop };
    }
    if (!isAlive(pid)) throw new Error(`tshark in ${ns} exited before capturing on ${dev}:\n${tail(log, 10)}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`tshark in ${ns} is not capturing on ${dev} after 10 s:\n${tail(log, 10)}`);
    }
    await sleep(50);
  }
}

/** The capture's packets as rows of the given tshark fields (e.g. ip.src, ip.dsfield.dscp), optionally display-filtered. */
export async function readCapture(file: string, fields: readonly string[], displayFilter?: string): Promise<string[][]> {
  const { stdout } = await run(["tshark", "-n", "-r", file, ...(displayFilter ? ["-Y", displayFilter] : []), "-T", "fields", "-E", "separator=/t", ...fields.flatMap((f) => ["-e", f])], { timeoutMs: 60_000 });
  return stdout.split("\n").filter((l) => l.trim() !== "").map((l) => l.split("\t"));
}

function readText(file: string): string {
  return existsSync(file) ? readFileSync(file, "utf8") : "";
}
