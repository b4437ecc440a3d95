// Opens the console's serial line with the `serialport` package: a tty device on the appliance
// (/dev/ttyS0, a USB adapter) or a pty path from the simulated board and the tests. The port is
// one Duplex stream, handed to the Terminal as both input and output; serialport puts the line in
// raw mode, so every byte the operator types reaches the Terminal as is.

import { SerialPort } from "serialport";

/** The classic console speed (Junos, IOS): what a terminal server or a laptop's adapter expects. */
export const DEFAULT_BAUD_RATE = 9600;

export interface SerialConsole {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** Closes the device; safe to call more than once. */
  close(): Promise<void>;
}

/** Opens `path` at 8N1, `baudRate` (default 9600); rejects with an error naming the device. */
export async function openSerial(path: string, opts: { baudRate?: number } = {}): Promise<SerialConsole> {
  const baudRate = opts.baudRate ?? DEFAULT_BAUD_RATE;
  let port: SerialPort;
  try {
    // No XON/XOFF: a software upload (XMODEM, YMODEM) sends every byte value, 0x11 and 0x13 too.
    port = new SerialPort({ path, baudRate, dataBits: 8, parity: "none", stopBits: 1, xon: false, xoff: false, autoOpen: false });
  } catch (err) {
    // Bad options (an unsupported baud rate) throw here rather than failing the open.
    throw new Error(`cannot open serial console ${path}: ${message(err)}`);
  }
  await new Promise<void>((resolve, reject) => {
    port.open((err) => (err ? reject(new Error(`cannot open serial console ${path}: ${message(err)}`)) : resolve()));
  });
  // After the open, errors (a USB adapter pulled out) reach the Terminal's listeners as end of
  // input; this one only keeps an unheard error from ending the process.
  port.on("error", () => undefined);
  return {
    input: port,
    output: port,
    close: () =>
      new Promise<void>((resolve) => {
        if (!port.isOpen) return resolve();
        port.close(() => resolve()); // an error here means it is already closed
      }),
  };
}

function message(err: unknown): string {
  // serialport appends ", cannot open <path>" itself; we already name the device.
  return (err instanceof Error ? err.message : String(err)).replace(/^Error: /, "").replace(/, cannot open .*$/, "");
}
