// `npm run bench -- --quick` as a CI smoke test: every mode completes every request through the
// real Envoy. Timings are the benchmark's business, not this test's. The gie-epp mode (the
// Inference Extension's endpoint picker) needs binaries the end-to-end suite builds, and binds
// every interface: test/e2e/bench-gie-epp.test.ts runs it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseBenchOptions, runBench } from "../../bench/run.ts";
import { writeReport } from "../../bench/report.ts";
import { scratchDir } from "../support/scratch-dir.ts";

describe("benchmark --quick", () => {
  it("runs the seed-shaped workload through round robin, least-request and infergate", async () => {
    const options = parseBenchOptions(["--quick", "--modes", "round-robin,least-request,infergate"]);
    const results = await runBench(options);
    assert.deepEqual(results.map((r) => r.name), ["round-robin", "least-request", "infergate"]);
    for (const r of results) {
      assert.equal(r.summary.completed, options.numPrompts, `${r.name}: ${r.summary.failed} failed`);
      assert.ok(r.records.every((rec) => rec.outputTokens > 0 && rec.servedBy), r.name);
    }
    const out = scratchDir("bench-report");
    writeReport(out, "quick", {}, results, "round-robin", "npm run bench -- --quick");
    assert.match(readFileSync(join(out, "report.md"), "utf8"), /\| infergate \| 24 \| 0 \| 0 \|/);
    assert.match(readFileSync(join(out, "ttft.svg"), "utf8"), /^<svg[\s\S]*<\/svg>$/);
  });
});
