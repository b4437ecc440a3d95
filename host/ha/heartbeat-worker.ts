// The heartbeat thread: the election (election.ts) and one UDP socket per link, in a worker of
// its own, so that a main thread busy with a commit, a console or a GC pause can neither delay a
// heartbeat nor the noticing of a dead peer. It talks to HeartbeatService (heartbeat.ts) by
// messages only: settings and the host's flags in, state changes, peer changes, reannounce
// requests and counters out.
//
// Timing: one timer, set after every input to the election's next deadline (a heartbeat due,
// the peer's or a link's dead time, the end of listening, the preempt delay), and never further
// than a quarter interval away, so that a dead peer is noticed within deadCount x interval plus
// the timer's lateness (about a millisecond). A timer's decision waits for setImmediate, i.e.
// until the event loop has read the sockets once more: after this thread was starved of CPU, the
// heartbeats that queued up meanwhile are taken in before anything is declared dead.
//
// Priority: the thread asks the kernel for a nice value of HEARTBEAT_NICE (keepalived runs its
// VRRP process at a raised priority for the same reason: a saturated box must still beat).

import { createSocket, type Socket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import type { HaConfig, HaLink } from "../config/schema.js";
import { Election, type ElectionConfig, type ElectionEvent } from "./election.js";
import { HeartbeatInbox } from "./inbox.js";
import { encodeHa, pickKey } from "./protocol.js";
import type { FromWorker, HaLinkStats, HaStats, ToWorker, WorkerStart } from "./heartbeat.js";

/** The heartbeat thread's nice value: above the packet engines and the control plane. */
const HEARTBEAT_NICE = -15;

/** A link whose socket could not be bound (address not up yet) is tried again this often. */
const REBIND_MS = 1000;

interface Link {
  cfg: HaLink;
  socket?: Socket;
  bound: boolean;
  error?: string;
  retry?: NodeJS.Timeout;
  sent: number;
  sendErrors: number;
  accepted: number;
  crossed: number;
}

const port = parentPort!;
const start = workerData as WorkerStart;
/** Monotonic, and close to the wall clock so that times read sensibly in logs. */
const now = (): number => performance.timeOrigin + performance.now();

let cfg: HaConfig = start.config;
let bootId = newBootId();
/** Per sender, +1 per datagram, starting at the clock so that a restart continues above (docs/ha-protocol.md). */
let seq = Date.now();
let peerKeyIds: number[] | undefined;
let stopping = false;
const links = new Map<string, Link>();
const inbox = new HeartbeatInbox({ node: cfg.node, keys: keyMap(cfg) });
const election = new Election(electionConfig(cfg), now());
let timer: NodeJS.Timeout | undefined;

function post(m: FromWorker): void {
  port.postMessage(m);
}

/** This thread's own nice value (Linux: /proc/thread-self names its task id); a refusal is logged, not fatal. */
function raisePriority(): void {
  try {
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    if (!Number.isInteger(tid) || tid <= 0) throw new Error("no thread id");
    setPriority(tid, HEARTBEAT_NICE);
  } catch (e) {
    post({ type: "log", text: `ha: heartbeats run at normal priority (cannot set nice ${HEARTBEAT_NICE}: ${(e as Error).message})` });
  }
}

function newBootId(): string {
  return randomBytes(8).toString("hex");
}

function keyMap(c: HaConfig): Map<number, Uint8Array> {
  return new Map(c.keys.map((k) => [k.id, k.secret]));
}

function electionConfig(c: HaConfig): ElectionConfig {
  return { node: c.node, priority: c.priority, preempt: c.preempt, preemptDelayMs: c.preemptDelayMs, intervalMs: c.intervalMs, deadCount: c.deadCount, links: c.links.map((l) => l.name) };
}

function sameLink(a: HaLink, b: HaLink): boolean {
  return a.local.text === b.local.text && a.peer.text === b.peer.text && a.port === b.port;
}

// ---- sockets -----------------------------------------------------------------------------------

function open(l: Link): void {
  const s = createSocket({ type: l.cfg.local.family === 6 ? "udp6" : "udp4" });
  l.socket = s;
  l.bound = false;
  s.on("error", (e) => {
    l.error = e.message;
    if (!l.bound) {
      // could not bind (address not configured yet, port taken): try again later
      s.close();
      if (l.socket === s) l.socket = undefined;
      if (!stopping && links.get(l.cfg.name) === l) l.retry = setTimeout(() => open(l), REBIND_MS);
      post({ type: "log", text: `ha: link ${l.cfg.name}: cannot bind ${l.cfg.local.text} port ${l.cfg.port}: ${e.message} (retrying every ${REBIND_MS} ms)` });
    }
  });
  s.on("message", (buf, rinfo) => receive(l, buf, `${rinfo.address}:${rinfo.port}`));
  s.bind({ address: l.cfg.local.text, port: l.cfg.port, exclusive: true }, () => {
    l.bound = true;
    l.error = undefined;
    // listening starts when every link can hear (or has failed once and is being retried)
    if ([...links.values()].every((x) => x.bound || x.error !== undefined)) act(election.listenFrom(now()));
  });
}

function close(l: Link): void {
  if (l.retry) clearTimeout(l.retry);
  l.retry = undefined;
  if (l.socket) {
    try {
      l.socket.close();
    } catch {
      // already closed
    }
  }
  l.socket = undefined;
  l.bound = false;
}

function syncLinks(c: HaConfig): void {
  for (const [name, l] of links) {
    const next = c.links.find((x) => x.name === name);
    if (!next || !sameLink(next, l.cfg)) {
      close(l);
      links.delete(name);
    }
  }
  for (const lc of c.links) {
    if (links.has(lc.name)) continue;
    const l: Link = { cfg: lc, bound: false, sent: 0, sendErrors: 0, accepted: 0, crossed: 0 };
    links.set(lc.name, l);
    open(l);
  }
}

// ---- the election's inputs and outputs ---------------------------------------------------------

function receive(l: Link, bytes: Uint8Array, from: string): void {
  if (stopping) return;
  const r = inbox.admit(bytes, from);
  if (!r.ok) return;
  l.accepted++;
  if (r.hb.link !== l.cfg.name) l.crossed++;
  peerKeyIds = r.hb.keyIds;
  act(election.receive(r.hb, r.seq, l.cfg.name, now()));
}

function act(events: ElectionEvent[]): void {
  for (const e of events) {
    if (e.kind === "send") send();
    else if (e.kind === "state") post({ type: "state", from: e.from, to: e.to, reason: e.reason, at: e.at });
    else if (e.kind === "reannounce") post({ type: "reannounce", reason: e.reason, at: e.at });
    else post({ type: "peer", peer: e.peer });
  }
  schedule();
}

function send(): void {
  const key = pickKey(cfg.keys, peerKeyIds);
  if (!key) return;
  const beat = election.beat();
  const keyIds = cfg.keys.map((k) => k.id).sort((a, b) => a - b);
  for (const l of links.values()) {
    if (!l.bound || !l.socket) continue;
    const bytes = encodeHa({ type: "heartbeat", ...beat, bootId, link: l.cfg.name, keyIds }, key, seq++, Date.now());
    l.sent++;
    l.socket.send(bytes, l.cfg.port, l.cfg.peer.text, (err) => {
      if (err) l.sendErrors++;
    });
  }
}

function schedule(): void {
  if (timer) clearTimeout(timer);
  timer = undefined;
  if (stopping) return;
  const t = now();
  const wake = Math.min(election.nextWakeAt(t), t + Math.max(1, cfg.intervalMs / 4));
  // decide only after the sockets have been read once more (see the top of this file)
  timer = setTimeout(() => setImmediate(() => {
    if (!stopping) act(election.tick(now()));
  }), Math.max(0, Math.ceil(wake - t)));
}

function stats(): HaStats {
  const t = now();
  const peer = election.peer(t);
  const i = inbox.stats();
  const byLink: Record<string, HaLinkStats> = {};
  for (const [name, l] of links) {
    const v = peer?.links[name];
    byLink[name] = {
      local: l.cfg.local.text, peer: l.cfg.peer.text, port: l.cfg.port, bound: l.bound, ...(l.error === undefined ? {} : { error: l.error }),
      sent: l.sent, sendErrors: l.sendErrors, received: l.accepted, crossed: l.crossed,
      up: v?.up ?? false, late: v?.late ?? 0, losses: v?.losses ?? 0, ...(v?.lastHeardAt === undefined ? {} : { lastHeardAt: v.lastHeardAt }),
    };
  }
  return {
    node: cfg.node, bootId, state: election.state, stateSince: election.stateSince, ready: election.ready,
    links: byLink, accepted: i.accepted, rejected: i.rejected, rejectedBy: i.rejectedBy, ownNode: i.ownNode,
    ...election.counters,
    ...(peer === undefined ? {} : { peer }),
  };
}

async function stop(): Promise<void> {
  // last word: standby, and never active again, so the peer takes over at once instead of after its dead time
  act(election.setMaintenance(true, now(), "heartbeat service stopping"));
  stopping = true;
  if (timer) clearTimeout(timer);
  await new Promise((r) => setTimeout(r, 5)); // let the goodbye datagrams leave
  for (const l of links.values()) close(l);
  post({ type: "stopped" });
  port.close();
}

port.on("message", (m: ToWorker) => {
  if (stopping) return;
  const t = now();
  switch (m.type) {
    case "configure": {
      const nodeChanged = m.config.node !== cfg.node;
      cfg = m.config;
      if (nodeChanged) {
        bootId = newBootId();
        peerKeyIds = undefined;
      }
      inbox.configure(cfg.node, keyMap(cfg));
      syncLinks(cfg);
      act(election.configure(electionConfig(cfg), t));
      break;
    }
    case "ready":
      act(election.setReady(m.ready, t));
      break;
    case "config-version":
      act(election.setConfig(m.version, m.digest, t));
      break;
    case "maintenance":
      act(election.setMaintenance(m.on, t));
      break;
    case "stats":
      post({ type: "stats", id: m.id, stats: stats() });
      break;
    case "stop":
      void stop();
      break;
  }
});

raisePriority();
syncLinks(cfg);
act(election.setReady(start.ready, now()));
act(election.setConfig(start.configVersion, start.configDigest, now()));
act(election.setMaintenance(start.maintenance, now()));
post({ type: "started", bootId });
act(election.tick(now()));
