// The benchmark runs and reports in the shape other tools read. Its figures are never checked
// against a threshold: speed depends on the machine, and tests do not assert on it.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const BENCH = fileURLToPath(new URL("../../tools/bench.js", import.meta.url));
const TIMEOUT_MS = 120_000;
const SCENARIOS = ["established-dsr", "new-flow", "nat", "ipip"];

describe("bench: --quick --json", () => {
  it("prints one JSON object with the CPU, bytes per flow and a positive figure for every scenario", { timeout: TIMEOUT_MS + 10_000 }, async () => {
    const { stdout } = await run(process.execPath, [BENCH, "--quick", "--json"], { timeout: TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 });
    const report: unknown = JSON.parse(stdout); // throws if anything but one JSON value is on stdout
    assert.ok(typeof report === "object" && report !== null && !Array.isArray(report), "stdout is a JSON object");
    const r = report as { cpu: unknown; bytesPerFlow: unknown; scenarios: unknown };

    assert.equal(typeof r.cpu, "string");
    assert.ok((r.cpu as string).length > 0, "cpu names a model");
    assert.equal(typeof r.bytesPerFlow, "number");
    assert.ok((r.bytesPerFlow as number) > 0 && (r.bytesPerFlow as number) <= 64, `bytesPerFlow ${r.bytesPerFlow} is in (0, 64]`);

    assert.ok(Array.isArray(r.scenarios), "scenarios is a list");
    const scenarios = r.scenarios as { name: unknown; flows: unknown; mpps: unknown }[];
    for (const s of scenarios) {
      assert.ok(SCENARIOS.includes(s.name as string), `scenario name ${String(s.name)} is one of ${SCENARIOS.join(", ")}`);
      assert.ok(typeof s.flows === "number" && Number.isInteger(s.flows) && s.flows > 0, `${String(s.name)}: flows ${String(s.flows)}`);
      assert.ok(typeof s.mpps === "number" && Number.isFinite(s.mpps) && s.mpps > 0, `${String(s.name)}: mpps ${String(s.mpps)} is positive and finite`);
    }
    assert.deepEqual([...new Set(scenarios.map((s) => s.name))].sort(), [...SCENARIOS].sort(), "every scenario appears");
    const dsrSizes = new Set(scenarios.filter((s) => s.name === "established-dsr").map((s) => s.flows));
    assert.ok(dsrSizes.size >= 2, `established-dsr runs at two or more flow counts (got ${[...dsrSizes].join(", ")})`);
  });
});

describe("bench: options", () => {
  it("refuses an unknown option with exit code 2 and says which", async () => {
    await assert.rejects(run(process.execPath, [BENCH, "--no-such-option"], { timeout: TIMEOUT_MS }), (e: { code?: number; stderr?: string }) => {
      assert.equal(e.code, 2);
      assert.match(e.stderr ?? "", /no-such-option/);
      return true;
    });
  });
});
