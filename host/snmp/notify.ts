// Notifications: box events become FLOWSWITCH-MIB notifications, sent to every receiver as a v2c
// trap or a v3 inform (acknowledged, retried by net-snmp). A receiver that is away costs a log
// line, never an exception: monitoring must not disturb the box.
//
// A v3 inform goes out on a session of its own: net-snmp (3.29) answers the first inform of a v3
// session but times out on the next ones, so each inform pays one discovery round trip instead.
//
// Flow-table use is watched here against snmp.flowTableThreshold (the box's own flow-table-high
// event uses its fixed 90% and is not forwarded, so a site's threshold is the one that counts).
import snmp, { type Session, type SessionOptions, type User, type Varbind } from "net-snmp";
import type { SnmpNotify } from "../config/schema.js";
import type { BoxEvent, BoxView } from "../observe.js";
import type { FlowswitchOids } from "./oids.js";
import { usmUser } from "./access.js";
import { HA_STATE } from "./flowswitch-mib.js";
import { SERVER_STATE } from "./discovery-mib.js";
import { display, gauge } from "./values.js";

const WATCH_EVERY_MS = 2000;
/** Re-arm the flow-table notification once use falls this many points below the threshold. */
const REARM_POINTS = 10;
const INFORM_TIMEOUT_MS = 3000;

function sessionOptions(r: SnmpNotify): SessionOptions {
  return { trapPort: r.port, transport: r.address.includes(":") ? "udp6" : "udp4", timeout: INFORM_TIMEOUT_MS, retries: 2 };
}

export interface Notification {
  oid: string;
  varbinds: Varbind[];
}

/** The notification for an event, or undefined for events not sent. */
export function notificationFor(e: BoxEvent, oids: FlowswitchOids): Notification | undefined {
  const T = snmp.ObjectType;
  const v = oids.varbind;
  const str = (oid: string, s: string, max?: number): Varbind => ({ oid: `${oid}.0`, type: T.OctetString, value: display(s, max) });
  const num = (oid: string, n: number, type = T.Gauge): Varbind => ({ oid: `${oid}.0`, type, value: type === T.Gauge ? gauge(n) : n });
  switch (e.type) {
    case "backend-down":
    case "backend-up":
      return {
        oid: e.type === "backend-down" ? oids.notification.backendDown : oids.notification.backendUp,
        varbinds: [str(v.backendName, e.backend, 32), str(v.reason, e.reason)],
      };
    case "ha-state":
      return { oid: oids.notification.haStateChange, varbinds: [num(v.haFrom, HA_STATE[e.from], T.Integer), num(v.haTo, HA_STATE[e.to], T.Integer)] };
    case "commit":
      return {
        oid: oids.notification.configCommitted,
        varbinds: [num(v.commitSeq, e.seq), str(v.user, e.user, 64), str(v.comment, `${e.comment ?? ""}${e.reverted ? " (rollback)" : ""}`)],
      };
    case "login-failure":
      return { oid: oids.notification.loginFailure, varbinds: [str(v.user, e.user, 64), num(v.failures, e.failures)] };
    case "flow-table-high":
      return undefined; // watched against our own threshold: see the top of this file
    case "end-system":
      // down: it stopped advertising; up: a down one is heard again. Appearing, draining, leaving
      // and being forgotten are expected changes, not alarms (telemetry's events carry them).
      if (e.to === "gone" || (e.to !== "down" && e.from !== "down")) return undefined;
      return {
        oid: e.to === "down" ? oids.notification.endSystemDown : oids.notification.endSystemUp,
        varbinds: [str(v.endSystem, e.endSystem, 64), num(v.endSystemState, SERVER_STATE[e.to], T.Integer), str(v.reason, e.reason)],
      };
  }
}

export function flowTableNotification(family: 4 | 6, percent: number, oids: FlowswitchOids): Notification {
  return {
    oid: oids.notification.flowTableHigh,
    varbinds: [
      { oid: `${oids.varbind.family}.0`, type: snmp.ObjectType.Integer, value: family },
      { oid: `${oids.varbind.percent}.0`, type: snmp.ObjectType.Gauge, value: Math.min(100, gauge(percent)) },
    ],
  };
}

export class Notifier {
  private readonly sessions: { receiver: SnmpNotify; session?: Session }[] = [];
  private readonly informing = new Set<Session>();
  private readonly unsubscribe: () => void;
  private readonly timer: NodeJS.Timeout;
  private readonly high = { 4: false, 6: false };

  constructor(
    receivers: SnmpNotify[],
    private readonly view: BoxView,
    private readonly oids: FlowswitchOids,
    private readonly threshold: number,
    private readonly log: (line: string) => void,
  ) {
    for (const r of receivers) {
      try {
        if (r.version === "v3") {
          usmUser(r.user); // a user net-snmp cannot take is reported now, not at every event
          this.sessions.push({ receiver: r });
          continue;
        }
        const session = snmp.createSession(r.address, r.community, { ...sessionOptions(r), version: snmp.Version2c });
        session.on("error", (err) => this.log(`snmp: notify ${r.name}: ${err.message}`));
        this.sessions.push({ receiver: r, session });
      } catch (e) {
        this.log(`snmp: notify ${r.name} left out: ${(e as Error).message}`);
      }
    }
    this.unsubscribe = view.events.subscribe((e) => {
      const n = notificationFor(e, this.oids);
      if (n) this.send(n);
    });
    this.timer = setInterval(() => this.watchFlowTable(), WATCH_EVERY_MS);
    this.timer.unref();
  }

  /** Sends to every receiver; failures are logged. */
  send(n: Notification): void {
    for (const { receiver: r, session } of this.sessions) {
      const done = (err: Error | null): void => {
        if (err) this.log(`snmp: notify ${r.name} (${r.address}:${r.port}): ${err.message}`);
      };
      try {
        if (r.version === "v2c") session?.trap(n.oid, n.varbinds, done);
        else this.inform(r.address, usmUser(r.user), sessionOptions(r), n, done);
      } catch (e) {
        done(e as Error);
      }
    }
  }

  private inform(address: string, user: User, options: SessionOptions, n: Notification, done: (err: Error | null) => void): void {
    const session = snmp.createV3Session(address, user, options);
    this.informing.add(session);
    let ended = false;
    const end = (err: Error | null): void => {
      if (ended) return;
      ended = true;
      this.informing.delete(session);
      try {
        session.close();
      } catch {
        // closed by stop()
      }
      done(err);
    };
    session.on("error", end);
    session.inform(n.oid, n.varbinds, {}, end);
  }

  private watchFlowTable(): void {
    let t;
    try {
      t = this.view.flowTable();
    } catch {
      return; // engines not up yet
    }
    for (const [family, used, cap] of [[4, t.ipv4Used, t.ipv4Capacity], [6, t.ipv6Used, t.ipv6Capacity]] as const) {
      const percent = cap ? (100 * used) / cap : 0;
      if (!this.high[family] && percent >= this.threshold) {
        this.high[family] = true;
        this.send(flowTableNotification(family, Math.round(percent), this.oids));
      } else if (this.high[family] && percent < this.threshold - REARM_POINTS) {
        this.high[family] = false;
      }
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.unsubscribe();
    for (const session of [...this.sessions.map((s) => s.session), ...this.informing]) {
      try {
        session?.close();
      } catch {
        // already closed
      }
    }
  }
}
