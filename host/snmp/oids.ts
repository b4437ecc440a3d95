// Every OID the agent serves or sends, in one place. SNMPv2-MIB and IF-MIB are fixed by their
// RFCs; FLOWSWITCH-MIB hangs under the configured enterprise number, arc 77, and must match
// mib/FLOWSWITCH-MIB.txt (the test translates these names with the shipped file to check it).

export const SYSTEM = "1.3.6.1.2.1.1";
export const IF_NUMBER = "1.3.6.1.2.1.2.1";
export const IF_ENTRY = "1.3.6.1.2.1.2.2.1";
export const IFX_ENTRY = "1.3.6.1.2.1.31.1.1.1";

/** Our arc under the enterprise number: documented at the top of the MIB file. */
export const FLOWSWITCH_ARC = 77;

export function flowswitchOids(enterprise: number) {
  const base = `1.3.6.1.4.1.${enterprise}.${FLOWSWITCH_ARC}`;
  const objects = `${base}.1`;
  const notify = `${objects}.6`;
  const discovery = `${objects}.7`;
  return {
    base,
    /** sysObjectID: flowswitchAppliance. */
    appliance: `${base}.3.1`,
    serviceEntry: `${objects}.1.1`,
    backendEntry: `${objects}.2.1`,
    engineEntry: `${objects}.3.1`,
    flowTable: `${objects}.4`,
    haState: `${objects}.5.1`,
    /** Service discovery: scalars .1-.8, the refusals by reason .9, the end systems .10. */
    discovery,
    discoveryRejectEntry: `${discovery}.9.1`,
    endSystemEntry: `${discovery}.10.1`,
    /** Service chains: the device table. */
    chainDeviceEntry: `${objects}.8.1.1`,
    /** Objects carried by notifications (accessible-for-notify), sent as <oid>.0. */
    varbind: {
      backendName: `${notify}.1`,
      reason: `${notify}.2`,
      haFrom: `${notify}.3`,
      haTo: `${notify}.4`,
      commitSeq: `${notify}.5`,
      user: `${notify}.6`,
      comment: `${notify}.7`,
      family: `${notify}.8`,
      percent: `${notify}.9`,
      failures: `${notify}.10`,
      endSystem: `${notify}.11`,
      endSystemState: `${notify}.12`,
    },
    notification: {
      backendDown: `${base}.0.1`,
      backendUp: `${base}.0.2`,
      haStateChange: `${base}.0.3`,
      configCommitted: `${base}.0.4`,
      flowTableHigh: `${base}.0.5`,
      loginFailure: `${base}.0.6`,
      endSystemDown: `${base}.0.7`,
      endSystemUp: `${base}.0.8`,
    },
  };
}

export type FlowswitchOids = ReturnType<typeof flowswitchOids>;
