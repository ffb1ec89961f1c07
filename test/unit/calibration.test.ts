// The seed workload's length semantics and the calibration harness's bookkeeping.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { calibrationTable, median, runClosedLoop, SEED_ROUND_ROBIN, type CalibrationRun } from "../../bench/calibrate.ts";
import type { Summary } from "../../bench/summary.ts";
import { buildWorkload, SEED_WORKLOAD } from "../../bench/workload.ts";
import { profileNamed } from "../../sim/step-model.ts";

describe("seed workload", () => {
  it("draws benchmark_serving.py's pre-April-2025 lengths: prefix + U[r·in, in] input, U[r·out, out] output", () => {
    const reqs = buildWorkload({ ...SEED_WORKLOAD, numPrompts: 3000 });
    const inputs = reqs.map((r) => r.tokens.length);
    const outputs = reqs.map((r) => r.maxTokens);
    assert.ok(Math.min(...inputs) >= 1000 + 800 && Math.max(...inputs) <= 1000 + 4000);
    assert.ok(Math.min(...outputs) >= 600 && Math.max(...outputs) <= 3000);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(Math.abs(mean(inputs) - 3400) < 60, `mean input ${mean(inputs)}`);
    assert.ok(Math.abs(mean(outputs) - 1800) < 60, `mean output ${mean(outputs)}`);
    const prefix = reqs[0]!.tokens.slice(0, 1000);
    assert.ok(reqs.every((r) => r.tokens.slice(0, 1000).every((t, i) => t === prefix[i])), "every prompt starts with the shared prefix");
  });

  it("keeps the symmetric reading as the default: total input and output within ±r", () => {
    const reqs = buildWorkload({ ...SEED_WORKLOAD, rangeMode: undefined, numPrompts: 500 });
    for (const r of reqs) {
      assert.ok(r.tokens.length >= 3200 && r.tokens.length <= 4800);
      assert.ok(r.maxTokens >= 2400 && r.maxTokens <= 3600);
    }
    assert.deepEqual(buildWorkload({ ...SEED_WORKLOAD, numPrompts: 5 }), buildWorkload({ ...SEED_WORKLOAD, numPrompts: 5 }), "deterministic");
  });
});

describe("calibration harness", () => {
  it("spreads a closed loop over the replicas and completes every request", () => {
    const reqs = buildWorkload({ ...SEED_WORKLOAD, numPrompts: 40, prefixLen: 20, inputLen: 100, outputLen: 30 });
    for (const envoyWorkers of [1, 3]) {
      const r = runClosedLoop(reqs, { replicas: 3, concurrency: 6, profile: profileNamed("tiny", { kvBlocks: 400 }), envoyWorkers });
      assert.equal(r.summary.completed, 40);
      assert.equal(r.summary.totalOutputTokens, reqs.reduce((n, q) => n + q.maxTokens, 0));
    }
  });

  it("reports the median, the spread and per-seed band hits", () => {
    const run = (seed: number, scale: number): CalibrationRun => ({
      seed, preemptions: 0, recomputedTokens: 0, wallS: 0, summary: {} as Summary,
      figures: {
        meanTtftMs: SEED_ROUND_ROBIN.meanTtftMs * scale, medianTtftMs: SEED_ROUND_ROBIN.medianTtftMs,
        p99TtftMs: SEED_ROUND_ROBIN.p99TtftMs, meanTpotMs: SEED_ROUND_ROBIN.meanTpotMs, outputTokPerS: SEED_ROUND_ROBIN.outputTokPerS,
      },
    });
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
    // Mean TTFT at 0.7×, 1.2× and 1.3× the seed: the median (1.2×) passes ±25%, one seed of three is in band.
    const { table, allPass } = calibrationTable([run(0, 0.7), run(1, 1.2), run(2, 1.3)]);
    assert.ok(allPass);
    assert.match(table, /\| mean TTFT \(ms\) \| 2456 \| 2947 \[1719 – 3193\] \| \+20\.0% \| ±25% \| ✓ \| 1\/3 \|/);
    assert.equal(calibrationTable([run(0, 1.3), run(1, 1.4)]).allPass, false);
  });
});
