// The command-line frame of the lab's benchmarks (bench:e2e, bench:failover): options or --help,
// root or user namespaces, the lab's lock for the whole run, and exit statuses (0: the figures,
// 2: a usage error, with the usage; 1: anything else).
import { privilege } from "./exec.js";
import { acquireLab, releaseLab } from "./lock.js";

/** A bad option: exit status 2, with the usage. */
export class UsageError extends Error {}

export function runLabBenchmark<O>(
  name: string,
  usage: string,
  parse: (argv: string[]) => O | "help",
  measure: (opts: O, say: (m: string) => void) => Promise<number>,
): void {
  const main = async (): Promise<number> => {
    const opts = parse(process.argv.slice(2));
    if (opts === "help") {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    const say = (m: string): void => void process.stderr.write(`${name}: ${m}\n`);
    await privilege();
    await acquireLab(10_000);
    try {
      return await measure(opts, say);
    } finally {
      releaseLab();
    }
  };
  main().then((code) => (process.exitCode = code), (e: Error) => {
    if (e instanceof UsageError) {
      process.stderr.write(`${name}: ${e.message}\n${usage}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`${name}: ${e.message}\n`);
    process.exitCode = 1;
  });
}
