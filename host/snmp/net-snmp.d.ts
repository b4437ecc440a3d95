// The part of the `net-snmp` package (CommonJS, no bundled types) that host/snmp uses.
declare module "net-snmp" {
  import type * as dgram from "node:dgram";

  export const ObjectType: {
    Integer: number; OctetString: number; OID: number; IpAddress: number; Counter: number; Gauge: number;
    TimeTicks: number; Counter64: number; Unsigned32: number;
  };
  export const Version2c: number;
  export const Version3: number;
  export const SecurityLevel: { noAuthNoPriv: number; authNoPriv: number; authPriv: number };
  export const AuthProtocols: Record<string, number>;
  export const PrivProtocols: Record<string, number>;
  export const AccessControlModelType: { None: number; Simple: number };
  export const AccessLevel: { None: number; ReadOnly: number; ReadWrite: number };
  export const MaxAccess: Record<string, number>;
  export const MibProviderType: { Scalar: unknown; Table: unknown };

  export interface Varbind { oid: string; type: number; value: unknown }
  export interface User { name: string; level: number; authProtocol?: number; authKey?: string; privProtocol?: number; privKey?: string }

  export interface Column { number: number; name: string; type: number; maxAccess: number; constraints?: unknown }
  export interface Provider {
    name: string;
    type: unknown;
    oid: string;
    maxAccess: number;
    scalarType?: number;
    tableColumns?: Column[];
    tableIndex?: { columnName: string; foreign?: string }[];
  }

  export interface Mib {
    registerProvider(p: Provider): void;
    setScalarValue(name: string, value: unknown): void;
    addTableRow(name: string, row: unknown[]): void;
    deleteTableRow(name: string, index: unknown[]): boolean;
    getTableCells(name: string, byRow?: boolean, includeInstances?: boolean): unknown[][] | undefined;
  }

  export interface AccessControlModel {
    setCommunityAccess(community: string, level: number): void;
    setUserAccess(user: string, level: number): void;
  }

  export interface Authorizer {
    addCommunity(community: string): void;
    addUser(user: User): void;
    getAccessControlModel(): AccessControlModel;
  }

  export interface Agent {
    getMib(): Mib;
    getAuthorizer(): Authorizer;
    close(callback?: (socket: unknown) => void): void;
  }

  export interface AgentOptions {
    port: number;
    address: string | null;
    transport: "udp4" | "udp6";
    disableAuthorization?: boolean;
    accessControlModelType?: number;
    engineID?: string;
    dgramModule?: { createSocket(type: dgram.SocketType): dgram.Socket };
  }

  export interface Session {
    trap(oid: string, varbinds: Varbind[], callback: (error: Error | null) => void): void;
    inform(oid: string, varbinds: Varbind[], options: object, callback: (error: Error | null) => void): void;
    on(event: "error", fn: (error: Error) => void): void;
    close(): void;
  }

  export interface SessionOptions {
    port?: number;
    trapPort?: number;
    retries?: number;
    timeout?: number;
    transport?: "udp4" | "udp6";
    version?: number;
  }

  export function createAgent(options: AgentOptions, callback: (error: Error | null, data?: unknown) => void): Agent;
  export function createSession(target: string, community: string, options?: SessionOptions): Session;
  export function createV3Session(target: string, user: User, options?: SessionOptions): Session;

  const snmp: {
    ObjectType: typeof ObjectType; Version2c: number; Version3: number; SecurityLevel: typeof SecurityLevel;
    AuthProtocols: typeof AuthProtocols; PrivProtocols: typeof PrivProtocols; AccessControlModelType: typeof AccessControlModelType;
    AccessLevel: typeof AccessLevel; MaxAccess: typeof MaxAccess; MibProviderType: typeof MibProviderType;
    createAgent: typeof createAgent; createSession: typeof createSession; createV3Session: typeof createV3Session;
  };
  export default snmp;
}
