// The board's flash: four fixed partitions on one file or block device. The simulated board keeps
// a sparse file, the Linux board a file or a block device (eMMC, a USB stick). A partition is a
// bounded window: every read and write is checked against it, so a bug in one user can never
// reach into another partition (a config save overwriting the boot image).
//
// Layout, declared once (FLASH_LAYOUT), in 64 KiB erase blocks, partitions back to back:
//
//   name     offset           size     holds
//   bootenv  0                64 KiB   boot environment: which image slot boots, boot attempts
//   slotA    64 KiB           64 MiB   firmware image A
//   slotB    64 MiB + 64 KiB  64 MiB   firmware image B
//   config   128 MiB + 64 KiB 8 MiB    saved configurations (host/config/store.ts)
//
// The whole device is FLASH_SIZE = 136 MiB + 64 KiB. A bigger device is fine (the rest is unused);
// a smaller one is refused when opened.
import { open, type FileHandle } from "node:fs/promises";

export type PartitionName = "bootenv" | "slotA" | "slotB" | "config";

export interface Partition {
  readonly name: string;
  /** Bytes. */
  readonly size: number;
  /** Reads exactly `length` bytes at `offset` within the partition. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Writes all of `data` at `offset` within the partition; durable only after sync(). */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Returns once everything written so far is on the medium. */
  sync(): Promise<void>;
}

export interface Flash {
  partition(name: PartitionName): Partition;
  close(): Promise<void>;
}

const KiB = 1024;
const MiB = 1024 * KiB;
/** The erase block: every partition starts and ends on one, as raw NOR/NAND flash would need. */
export const FLASH_ERASE_BLOCK = 64 * KiB;

/** Offsets and sizes in bytes from the start of the device. */
export const FLASH_LAYOUT: Readonly<Record<PartitionName, { readonly offset: number; readonly size: number }>> = (() => {
  const sizes: [PartitionName, number][] = [
    ["bootenv", 64 * KiB], // a few hundred bytes of environment, one erase block
    ["slotA", 64 * MiB], // a firmware image (Node, the host, the wasm data plane) with room to grow
    ["slotB", 64 * MiB], // the other image: the one not booted takes the next upgrade
    ["config", 8 * MiB], // two 4 MiB record slots of running config plus rollback history
  ];
  const layout = {} as Record<PartitionName, { offset: number; size: number }>;
  let offset = 0;
  for (const [name, size] of sizes) {
    layout[name] = Object.freeze({ offset, size });
    offset += size;
  }
  return Object.freeze(layout);
})();

/** Bytes the device must hold. */
export const FLASH_SIZE = Object.values(FLASH_LAYOUT).reduce((end, p) => Math.max(end, p.offset + p.size), 0);

class FilePartition implements Partition {
  constructor(
    readonly name: PartitionName,
    private readonly base: number,
    readonly size: number,
    private readonly file: FlashFile,
  ) {}

  private check(op: "read" | "write", offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`flash: ${op} of ${length} bytes at offset ${offset} is outside partition ${this.name} (${this.size} bytes)`);
    }
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.check("read", offset, length);
    const fh = this.file.handle();
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(out, done, length - done, this.base + offset + done);
      if (bytesRead === 0) throw new Error(`flash: ${this.file.path}: ends inside partition ${this.name} (at byte ${this.base + offset + done})`);
      done += bytesRead;
    }
    return out;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.check("write", offset, data.length);
    const fh = this.file.handle();
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await fh.write(data, done, data.length - done, this.base + offset + done);
      done += bytesWritten;
    }
  }

  async sync(): Promise<void> {
    // one device: syncing it makes this partition's writes durable (and any other's, harmlessly)
    await this.file.handle().datasync();
  }
}

class FlashFile implements Flash {
  private fh?: FileHandle;
  private readonly parts = new Map<PartitionName, FilePartition>();

  constructor(readonly path: string, fh: FileHandle) {
    this.fh = fh;
    for (const name of Object.keys(FLASH_LAYOUT) as PartitionName[]) {
      const { offset, size } = FLASH_LAYOUT[name];
      this.parts.set(name, new FilePartition(name, offset, size, this));
    }
  }

  handle(): FileHandle {
    if (!this.fh) throw new Error(`flash: ${this.path} is closed`);
    return this.fh;
  }

  partition(name: PartitionName): Partition {
    const p = this.parts.get(name);
    if (!p) throw new Error(`flash: no partition named ${String(name)} (partitions: ${[...this.parts.keys()].join(", ")})`);
    return p;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}

/**
 * Opens the flash kept in a file or block device. With `create`, a missing file is made (sparse,
 * FLASH_SIZE bytes, reading as zeros) and a shorter regular file is extended; otherwise both are
 * errors. A block device must hold at least FLASH_SIZE bytes.
 */
export async function openFlashFile(path: string, opts: { create?: boolean } = {}): Promise<Flash> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r+");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT" || !opts.create) throw new Error(`flash: cannot open ${path}: ${(e as Error).message}`);
    try {
      fh = await open(path, "wx+");
    } catch (e2) {
      throw new Error(`flash: cannot create ${path}: ${(e2 as Error).message}`);
    }
  }
  try {
    const st = await fh.stat();
    if (st.isFile()) {
      if (st.size < FLASH_SIZE) {
        if (!opts.create) throw new Error(`flash: ${path} holds ${st.size} bytes, the flash layout needs ${FLASH_SIZE}`);
        await fh.truncate(FLASH_SIZE); // sparse: blocks are allocated only where written
      }
    } else if (st.isBlockDevice()) {
      // fstat gives no size for a block device: the last byte of the layout must be readable
      const { bytesRead } = await fh.read(new Uint8Array(1), 0, 1, FLASH_SIZE - 1);
      if (bytesRead !== 1) throw new Error(`flash: block device ${path} is smaller than the flash layout (${FLASH_SIZE} bytes)`);
    } else {
      throw new Error(`flash: ${path} is neither a regular file nor a block device`);
    }
  } catch (e) {
    await fh.close();
    throw e;
  }
  return new FlashFile(path, fh);
}
