// How much of round robin's P99 TTFT on one workload seed is chance that the lab cannot share with
// Envoy. Envoy starts each worker's round-robin index at a host of its own random choosing, so a lab
// run and an Envoy run of the same seed send the same requests but not to the same replicas. This
// runs round robin on the same requests with its starting hosts drawn `--draws` times (draw 0 is
// the lab's usual one) and prints, per seed, round robin's P99 over the draws and infergate's P99
// over round robin's of each draw: the range a per-seed comparison with Envoy has to fall in.
//
//   npx tsx bench/lab/rr-chance.ts [--seeds 0,4,5] [--draws 10] [--time-scale 8] [--workload seed]
import { parseArgs } from "node:util";
import { spread, spreadCell } from "../summary.ts";
import { controlTiming, runLab, type LabOptions } from "./lab.ts";
import { roundRobin } from "./policies.ts";
import { policyFactories } from "./run.ts";
import { shapeNamed } from "./shapes.ts";

const { values } = parseArgs({ options: {
  seeds: { type: "string", default: "0,4,5" },
  draws: { type: "string", default: "10" },
  "time-scale": { type: "string", default: "8" },
  workload: { type: "string", default: "seed" },
} });
const draws = Number(values.draws);
if (!Number.isInteger(draws) || draws < 2) throw new Error("--draws must be an integer of at least 2");
const shape = shapeNamed(values.workload);
const factories = await policyFactories();
const started = performance.now();
const cell = (xs: number[], digits = 0): string => spreadCell(spread(xs), digits);
const rows: string[] = [];
for (const seed of values.seeds.split(",").map(Number)) {
  const options: LabOptions = { shape, seed, workers: 2, timing: controlTiming(Number(values["time-scale"])) };
  const infergateP99 = runLab(factories.infergate!, options).summary.ttft.p99;
  const rrP99: number[] = [];
  for (let d = 0; d < draws; d++) {
    // Draw 0 is the lab's own (the policy seeded with the workload seed); the others reseed only
    // the starting hosts; the requests stay the same.
    const r = runLab((lab) => roundRobin(lab, seed + 7919 * d), options);
    rrP99.push(r.summary.ttft.p99);
    console.error(`seed ${seed} draw ${d}: round robin P99 ${r.summary.ttft.p99.toFixed(0)} ms, ${r.preemptions} preemptions`);
  }
  rows.push(`| ${seed} | ${rrP99[0]!.toFixed(0)} | ${cell(rrP99)} | ${infergateP99.toFixed(0)} | ${(infergateP99 / rrP99[0]!).toFixed(2)} | ${cell(rrP99.map((p) => infergateP99 / p), 2)} |`);
}
console.log([
  `Round robin's starting hosts drawn ${draws} times per seed (${shape.name}, time scale ${values["time-scale"]}); P99 TTFT in ms, median [min–max] over the draws:`, "",
  "| seed | round robin P99, lab's draw | round robin P99, all draws | infergate P99 | P99 ratio, lab's draw | P99 ratio, all draws |",
  "|---|---|---|---|---|---|",
  ...rows, "",
  `npx tsx bench/lab/rr-chance.ts ${process.argv.slice(2).join(" ")}: ${((performance.now() - started) / 1000).toFixed(0)} s of wall time`,
].join("\n"));
