// The SNMP agent: net-snmp's Agent on one UDP socket, serving SNMPv2-MIB, IF-MIB and
// FLOWSWITCH-MIB (service discovery included) from the box's view, and the notifier sending
// traps / informs.
//
// Values are copied from the view when a request arrives, at most once a second (sysUpTime on
// every request): a manager polling fast costs the box one snapshot a second, an idle one nothing.
// The refresh runs in a "message" listener of our own on the socket, added before net-snmp's,
// through the library's dgramModule option.
import dgram from "node:dgram";
import snmp from "net-snmp";
import type { SnmpConfig } from "../config/schema.js";
import type { BoxView } from "../observe.js";
import { grantAccess } from "./access.js";
import { flowswitchScalars, flowswitchTables } from "./flowswitch-mib.js";
import { discoveryScalars, discoveryTables, chainTables } from "./discovery-mib.js";
import { ifScalars, ifTables } from "./if-mib.js";
import { MibObjects } from "./objects.js";
import { Notifier } from "./notify.js";
import { flowswitchOids } from "./oids.js";
import { systemScalars } from "./system-mib.js";
import { display } from "./values.js";
import { engineId } from "./engine-id.js";

const REFRESH_MS = 1000;
/** Refused requests (wrong community, user or key) are logged at most this often, with a count. */
const REFUSED_LOG_MS = 60_000;

export interface SnmpAgent {
  stop(): Promise<void>;
}

export async function startSnmpAgent(config: SnmpConfig, view: BoxView, log: (line: string) => void): Promise<SnmpAgent> {
  const { address, port } = config.listen;
  const where = address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
  const oids = flowswitchOids(config.enterprise);

  let objects: MibObjects | undefined;
  let refreshedAt = 0;
  const onRequest = (): void => {
    if (!objects) return;
    if (Date.now() - refreshedAt >= REFRESH_MS) {
      refreshedAt = Date.now();
      objects.refresh();
    } else {
      objects.refreshScalar("sysUpTime");
    }
  };
  const sockets: dgram.Socket[] = [];
  const dgramModule = {
    createSocket(type: dgram.SocketType): dgram.Socket {
      const s = dgram.createSocket(type);
      s.on("message", onRequest);
      sockets.push(s);
      return s;
    },
  };

  let listening = false;
  let refused = 0;
  let refusedLoggedAt = 0;
  const onAgentError = (error: Error | null): void => {
    if (!error || !listening) return; // errors before listening are the bind's: start() reports them
    refused++;
    if (Date.now() - refusedLoggedAt >= REFUSED_LOG_MS) {
      log(`snmp: refused ${refused} request(s) since the last report: ${error.message}`);
      refused = 0;
      refusedLoggedAt = Date.now();
    }
  };

  const agent = snmp.createAgent({
    port,
    address,
    transport: address.includes(":") ? "udp6" : "udp4",
    accessControlModelType: snmp.AccessControlModelType.Simple,
    engineID: engineId(config.enterprise, view),
    dgramModule,
  }, onAgentError);

  try {
    await Promise.all(sockets.map((s) => new Promise<void>((resolve, reject) => {
      s.once("listening", resolve);
      s.once("error", reject);
    })));
  } catch (e) {
    try {
      agent.close();
    } catch {
      // the socket never opened
    }
    throw new Error(`snmp: cannot listen on udp ${where}: ${(e as Error).message}`);
  }
  listening = true;

  grantAccess(agent, config.communities, config.users, log);
  const contact = display(config.contact);
  const location = display(config.location);
  objects = new MibObjects(
    agent.getMib(),
    [
      ...systemScalars(view, { sysObjectID: oids.appliance, contact, location }), ...ifScalars(view),
      ...flowswitchScalars(view, oids, config.flowTableThreshold), ...discoveryScalars(view, oids),
    ],
    [...ifTables(view), ...flowswitchTables(view, oids), ...discoveryTables(view, oids), ...chainTables(view, oids)],
    log,
  );
  objects.refresh();
  refreshedAt = Date.now();
  const notifier = new Notifier(config.notify, view, oids, config.flowTableThreshold, log);
  log(`snmp: agent on udp ${where}: ${config.communities.length} communit${config.communities.length === 1 ? "y" : "ies"}, ${config.users.length} v3 user(s), ${config.notify.length} notification receiver(s), MIB under enterprises.${config.enterprise}.77`);

  let stopped = false;
  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      notifier.stop();
      await new Promise<void>((resolve) => {
        let open = sockets.length;
        if (!open) return resolve();
        try {
          agent.close(() => {
            if (--open === 0) resolve();
          });
        } catch {
          resolve();
        }
      });
    },
  };
}
