// bench/agreement.ts: the lab's predictions next to real-Envoy runs, as ratios and as figures.
import assert from "node:assert/strict";
import { test } from "node:test";
import { absoluteAgreementTable, agreementTable } from "../../bench/agreement.ts";
import type { Run, RunMode } from "../../bench/combine.ts";
import { summarize } from "../../bench/summary.ts";

const lab = (policy: string, seed: number, ttft: number) => ({ shape: "seed", policy, seed, ttft: { mean: ttft, median: ttft, p99: ttft }, outputThroughput: 100 });
const mode = (name: string, ttft: number): RunMode => {
  const records = [{ index: 0, ok: true, shed: false, status: 200, startMs: 0, ttftMs: ttft, itlMs: [], e2eMs: ttft, inputTokens: 1, outputTokens: 100 }];
  return { name, summary: summarize(records, 1000), records };
};
const LAB = [lab("round-robin", 0, 1000), lab("infergate", 0, 500), lab("round-robin", 1, 2000), lab("infergate", 1, 1000), lab("round-robin", 2, 9999), lab("infergate", 2, 1)];
const ENVOY: Run[] = [
  { seed: 0, modes: [mode("round-robin", 800), mode("infergate", 480)] },
  { seed: 1, modes: [mode("round-robin", 2000), mode("infergate", 1100)] },
];

test("ratios: Envoy's against the lab's on the same seeds only", () => {
  const table = agreementTable(LAB, "seed", ENVOY);
  // Lab 0.5 on both seeds; Envoy 0.6 and 0.55, median 0.575: 1.15 of the lab's, outside 10%.
  assert.match(table, /\| infergate \| mean TTFT \| 0\.50 \| 0\.50 \[0\.00–0\.50\] \| 0\.57 \[0\.55–0\.60\] \| 1\.15 \| ✗ \|/);
});

test("figures: round robin's too, so a disagreeing ratio shows which side moved", () => {
  const table = absoluteAgreementTable(LAB, "seed", ENVOY);
  // Round robin: lab median over seeds 0 and 1 is 1500, Envoy's 1400 (0.93, within 10%).
  assert.match(table, /\| round-robin \| mean TTFT \| 1500 \[1000–2000\] \| 1400 \[800–2000\] \| 0\.93 \| ✓ \|/);
  assert.match(table, /\| infergate \| mean TTFT \| 750 \[500–1000\] \| 790 \[480–1100\] \| 1\.05 \| ✓ \|/);
});
