// The child of the power-cut test: saves stateFor(n), stateFor(n+1), ... to the config store of a
// flash file until it is killed, saying on stdout (synchronously, before and after each save):
//
//   start N      the first number it will save (one past what it booted from the flash)
//   saving N     about to save stateFor(N)
//   saved N      the save of stateFor(N) returned (written and synced)
//
// Usage: config-store-writer.js FLASH [--page BYTES]. With --page, writes reach the flash file one
// page at a time with a turn of the event loop between pages, as a slow NAND part takes them, so
// that a kill lands inside a record's write and tears it. Without arguments (as `node --test`
// finds it among the tests) it does nothing.
import { writeSync } from "node:fs";
import { parseArgs } from "node:util";
import { openFlashFile, type Partition } from "../../../board/flash.js";
import { ConfigStore, NoSavedConfigError } from "../../../host/config/store.js";
import { stateFor } from "./powercut-state.js";

const MAX_LIFE_MS = 60_000; // an orphan (its test gone) ends by itself

function paged(p: Partition, page: number): Partition {
  return {
    name: p.name,
    size: p.size,
    read: (offset, length) => p.read(offset, length),
    sync: () => p.sync(),
    async write(offset, data) {
      for (let i = 0; i < data.length; i += page) {
        await p.write(offset + i, data.subarray(i, i + page));
        await new Promise((r) => setImmediate(r));
      }
    },
  };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { page: { type: "string" } } });
  const path = positionals[0];
  if (!path) return;
  setTimeout(() => process.exit(3), MAX_LIFE_MS).unref();
  const say = (line: string): void => void writeSync(1, `${line}\n`);
  const flash = await openFlashFile(path, { create: true });
  const page = Number(values.page ?? 0);
  const part = flash.partition("config");
  const store = new ConfigStore(page > 0 ? paged(part, page) : part);
  let n = 0;
  try {
    n = (await store.load()).commits[0].seq;
  } catch (e) {
    if (!(e instanceof NoSavedConfigError)) throw e;
  }
  say(`start ${n + 1}`);
  for (;;) {
    n++;
    say(`saving ${n}`);
    await store.save(stateFor(n));
    say(`saved ${n}`);
  }
}

await main();
