// `npm run bench -- --quick` with the gie-epp mode, as CI runs it: the Inference Extension's
// endpoint picker v1.5.0 (scripts/build-epp.sh, with kube-apiserver from
// scripts/build-kube-apiserver.sh) picks every request of the quick workload through the same
// Envoy as infergate and round robin, and every request of every mode completes. Timings are the
// benchmark's business, not this test's.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseBenchOptions, runBench } from "../../bench/run.ts";

describe("benchmark --quick with gie-epp", () => {
  it("runs round robin, infergate and the EPP over the same replicas; the EPP schedules every gie-epp request", async () => {
    const options = parseBenchOptions(["--quick", "--modes", "round-robin,infergate,gie-epp"]);
    const results = await runBench(options);
    assert.deepEqual(results.map((r) => r.name), ["round-robin", "infergate", "gie-epp"]);
    for (const r of results) {
      assert.equal(r.summary.completed, options.numPrompts, `${r.name}: ${r.summary.failed} failed`);
      assert.ok(r.records.every((rec) => rec.outputTokens > 0 && rec.servedBy), r.name);
    }
    // runBench throws when the EPP scheduled fewer than the mode's requests (FailClose would have
    // failed them anyway); the report says how many it scheduled.
    assert.match(results[2]!.description, new RegExp(`the EPP scheduled \\d+ of ${options.numPrompts} requests`));
  });

  it("says which scripts build the mode when asked for it without the binaries", () => {
    const saved = process.env.EPP_BIN;
    process.env.EPP_BIN = "/nonexistent/epp";
    try {
      assert.throws(() => parseBenchOptions(["--quick", "--modes", "gie-epp"]), /scripts\/build-epp\.sh && bash scripts\/build-kube-apiserver\.sh/);
      assert.ok(!parseBenchOptions(["--quick"]).modes.includes("gie-epp"), "not in the default modes");
    } finally {
      if (saved === undefined) delete process.env.EPP_BIN; else process.env.EPP_BIN = saved;
    }
  });
});
