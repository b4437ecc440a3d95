// Probe outcomes in the words an operator reads in a log: short, fixed, greppable.

export interface ProbeResult {
  ok: boolean;
  /** "ok", "status 200", "timeout", "connection refused", "bad status 503", "tls error: ..." */
  reason: string;
}

export const OK: ProbeResult = { ok: true, reason: "ok" };

export function failed(reason: string): ProbeResult {
  return { ok: false, reason };
}

/** Socket error codes by the reason they are reported as; anything else shows its code. */
const BY_CODE: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EPIPE: "connection reset",
  ECONNABORTED: "connection reset",
  EHOSTUNREACH: "host unreachable",
  EHOSTDOWN: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENETDOWN: "network unreachable",
  ETIMEDOUT: "timeout",
  EADDRNOTAVAIL: "source address not available",
  EADDRINUSE: "source address in use",
  EACCES: "permission denied",
  EPERM: "permission denied",
};

/** The reason for a socket error; `tls` says the TCP connection was up and the handshake was not. */
export function errorReason(err: unknown, tls = false): string {
  const e = err as { code?: unknown; reason?: unknown; message?: unknown } | null;
  const code = typeof e?.code === "string" ? e.code : "";
  const known = BY_CODE[code];
  // A reset or timeout during the handshake is still a reset or timeout, not a TLS problem.
  if (known !== undefined) return known;
  if (tls || code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_")) {
    return `tls error: ${tlsMessage(e)}`;
  }
  if (code !== "") return code.toLowerCase();
  return typeof e?.message === "string" && e.message !== "" ? e.message : "error";
}

function tlsMessage(e: { reason?: unknown; message?: unknown } | null): string {
  // OpenSSL errors carry a short `reason` ("wrong version number"); certificate errors only a
  // message ("self-signed certificate").
  if (typeof e?.reason === "string" && e.reason !== "") return e.reason;
  const message = typeof e?.message === "string" ? e.message.split("\n")[0].trim() : "";
  return message === "" ? "handshake failed" : message;
}
