// What a board gives the host: ports that move Ethernet frames. A board knows nothing of services,
// flows or engines; it only moves frames between the wire and whoever listens.
import type { Flash } from "./flash.js";

/** One frame as it arrived: the bytes, owned by the listener once delivered. */
export type Frame = Uint8Array;

export interface BoardPort {
  /** The port's name in the configuration. */
  readonly name: string;
  /** The hardware address of the port (for a Linux interface, its own MAC). */
  readonly mac: Uint8Array;
  /**
   * Starts delivering received frames, in batches, to onFrames. Only frames that came in from the
   * wire: never the port's own transmissions.
   */
  start(onFrames: (frames: Frame[]) => void): void;
  /** Sends frames out of the port. Returns how many were handed to the wire; the rest are counted as dropped. */
  send(frames: readonly Frame[]): number;
  /** Frames the port could not take or give (errors, drops reported by the driver). */
  stats(): { rxFrames: number; txFrames: number; txErrors: number; rxDropped: number };
  close(): void;
}

export interface Board {
  readonly kind: "sim" | "linux";
  readonly ports: BoardPort[];
  /** The flash partitions (boot env, image slots A and B, config), when the board has them. */
  flash?: Flash;
  close(): Promise<void>;
}
