// The appliance's entry point. `--board linux` boots the appliance on real interfaces (see
// appliance.ts). Otherwise the simulated board: at a terminal, the whole box with its console
// (demo/sim-box.ts); with --json or --duration, or without a terminal, the counter demo.
const argv = process.argv.slice(2);
const board = argv.indexOf("--board");
const kind = board >= 0 ? argv[board + 1] : "sim";

async function main(): Promise<number> {
  if (kind === "linux") {
    const { runAppliance } = await import("./appliance.js");
    return runAppliance(argv.filter((_, i) => i !== board && i !== board + 1));
  }
  if (kind !== "sim") {
    process.stderr.write(`flowswitch: --board ${kind ?? ""}: expected sim or linux\n`);
    return 2;
  }
  const rest = argv.filter((_, i) => board < 0 || (i !== board && i !== board + 1));
  const scripted = rest.some((a) => a === "--json" || a === "--duration" || a.startsWith("--duration=") || a === "--help");
  // --box: the managed box even when stdin is no terminal (the boot step starts images so; docs/boot.md)
  if ((process.stdin.isTTY || rest.includes("--box")) && !scripted) {
    const { runSimBox } = await import("./demo/sim-box.js");
    return runSimBox(rest);
  }
  const { runDemo } = await import("./demo/demo.js");
  return runDemo(rest);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`flowswitch: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
