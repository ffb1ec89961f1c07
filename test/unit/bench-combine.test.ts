// bench/combine.ts: several benchmark runs into medians and per-run ratios.
import assert from "node:assert/strict";
import { test } from "node:test";
import { absoluteTable, afterBurst, mergeBySeed, ratioTable, type Run, type RunMode } from "../../bench/combine.ts";
import { summarize, type RequestRecord } from "../../bench/summary.ts";

/** A mode whose requests have the given TTFTs (one output token per second of a 1 s run). */
function mode(name: string, ttfts: number[]): RunMode {
  const records: RequestRecord[] = ttfts.map((t, index) => ({ index, ok: true, shed: false, status: 200, startMs: 0, ttftMs: t, itlMs: [], e2eMs: t, inputTokens: 1, outputTokens: 1 }));
  return { name, summary: summarize(records, 1000), records, preemptions: 0, prefixHitRate: 0.5 };
}

const runs: Run[] = [
  { seed: 0, modes: [mode("round-robin", [100, 100, 100]), mode("infergate", [50, 50, 50])] },
  { seed: 1, modes: [mode("round-robin", [1000, 1000, 1000]), mode("infergate", [800, 800, 800])] },
  { seed: 2, modes: [mode("round-robin", [10, 10, 10]), mode("infergate", [9, 9, 9])] },
];

test("ratios are taken per run, then the median and range over runs", () => {
  const table = ratioTable(runs, "round-robin");
  // Per run 0.5, 0.8, 0.9: the median is 0.80, not the ratio of the medians (800/100).
  assert.match(table, /\| infergate \| 0\.80 \[0\.50–0\.90\] \| 0\.80 \[0\.50–0\.90\] \| 0\.80 \[0\.50–0\.90\] \| 1\.00 \|/);
  assert.doesNotMatch(table, /\| round-robin \|/);
});

test("absolute figures are medians over runs with the range", () => {
  const table = absoluteTable(runs);
  assert.match(table, /\| round-robin \| 3 \| 0 \| 0 \| 100 \[10–1000\] \|/);
  assert.match(table, /\| infergate \| 3 \| 0 \| 0 \| 50 \[9–800\] \|/);
});

test("the after-burst view leaves out the first requests of every run", () => {
  const late: Run[] = [{ seed: 0, modes: [mode("round-robin", [1000, 100, 100]), mode("infergate", [10, 50, 50])] }];
  assert.match(ratioTable(late, "round-robin", afterBurst(1)), /\| infergate \| 0\.50 \| 0\.50 \| 0\.50 \|/);
  // The whole run keeps the first request: mean 36.7 against 400.
  assert.match(ratioTable(late, "round-robin"), /\| infergate \| 0\.09 \|/);
});

test("runs of the same seed join: a mode run on its own is compared with the other run's base", () => {
  const joined = mergeBySeed([
    { seed: 0, modes: [mode("round-robin", [100]), mode("infergate", [50])] },
    { seed: 0, modes: [mode("least-request", [80]), mode("round-robin", [999])] },
  ]);
  assert.equal(joined.length, 1);
  assert.deepEqual(joined[0]!.modes.map((m) => m.name), ["round-robin", "infergate", "least-request"]);
  assert.match(ratioTable(joined, "round-robin"), /\| least-request \| 0\.80 \|/, "against the first run's round robin");
});
