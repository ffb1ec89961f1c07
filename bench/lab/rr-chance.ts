// How much of round robin's P99 TTFT on one workload seed is chance that the lab cannot share with
// Envoy. Envoy starts each worker's round-robin index at a host of its own random choosing, so a lab
// run and an Envoy run of the same seed send the same requests but not to the same replicas. This
// runs round robin on the same requests with its starting hosts, and the Envoy worker each request
// arrives on (the kernel's choice, also new in every Envoy run), drawn `--draws` times (draw 0 is
// the lab's usual one) and prints, per seed, round robin's P99 over the draws and infergate's P99
// over round robin's of each draw: the range a per-seed comparison with Envoy has to fall in.
// Then, over all the seeds, the median that one run per seed can give by this chance alone: each
// seed contributes one of its draws at random, 10,000 times; given Envoy's medians over the same
// seeds (`--envoy-ratio`, `--envoy-rr-p99` in ms), it prints how often chance reaches them.
//
// With `--connections N` each draw also pins the client's N connections to workers anew (the
// kernel does so differently in every Envoy run; LabOptions.connections), instead of an even draw
// of each request's worker.
//
//   npx tsx bench/lab/rr-chance.ts [--seeds 0,4,5] [--draws 10] [--time-scale 8] [--workload seed]
//       [--envoy-ratio 0.46] [--envoy-rr-p99 18700] [--envoy-mean-ratio 0.69] [--connections 64]
import { parseArgs } from "node:util";
import { percentile, resampledMedians, spread, spreadCell } from "../summary.ts";
import { seededRandom } from "../workload.ts";
import { controlTiming, runLab, type LabOptions } from "./lab.ts";
import { roundRobin } from "./policies.ts";
import { policyFactories } from "./run.ts";
import { shapeNamed } from "./shapes.ts";

const { values } = parseArgs({ options: {
  seeds: { type: "string", default: "0,4,5" },
  draws: { type: "string", default: "10" },
  "time-scale": { type: "string", default: "8" },
  workload: { type: "string", default: "seed" },
  "envoy-ratio": { type: "string" },
  "envoy-rr-p99": { type: "string" },
  "envoy-mean-ratio": { type: "string" },
  connections: { type: "string" },
} });
const draws = Number(values.draws);
if (!Number.isInteger(draws) || draws < 2) throw new Error("--draws must be an integer of at least 2");
const shape = shapeNamed(values.workload);
const factories = await policyFactories();
const started = performance.now();
const cell = (xs: number[], digits = 0): string => spreadCell(spread(xs), digits);
const rows: string[] = [];
const rrBySeed: number[][] = [];
const ratioBySeed: number[][] = [];
const meanRatioBySeed: number[][] = [];
for (const seed of values.seeds.split(",").map(Number)) {
  const base: LabOptions = { shape, seed, workers: 2, timing: controlTiming(Number(values["time-scale"])) };
  const drawSeed = (d: number): number => seed + 7919 * d;
  // Every draw but the lab's own also redraws which worker each request arrives on.
  const options = (d: number): LabOptions => ({
    ...base, ...(d > 0 ? { workerSeed: drawSeed(d) } : {}),
    ...(values.connections ? { connections: { count: Number(values.connections), seed: drawSeed(d) } } : {}),
  });
  const infergateTtft = runLab(factories.infergate!, options(0)).summary.ttft;
  const infergateP99 = infergateTtft.p99;
  const rrP99: number[] = [];
  const meanRatios: number[] = [];
  for (let d = 0; d < draws; d++) {
    // Draw 0 is the lab's own (the policy seeded with the workload seed); the others reseed the
    // starting hosts and the workers requests arrive on (and the connections' workers, if pinned);
    // the requests stay the same.
    const r = runLab((lab) => roundRobin(lab, drawSeed(d)), options(d));
    rrP99.push(r.summary.ttft.p99);
    meanRatios.push(infergateTtft.mean / r.summary.ttft.mean);
    console.error(`seed ${seed} draw ${d}: round robin P99 ${r.summary.ttft.p99.toFixed(0)} ms, ${r.preemptions} preemptions`);
  }
  const ratios = rrP99.map((p) => infergateP99 / p);
  rrBySeed.push(rrP99);
  ratioBySeed.push(ratios);
  meanRatioBySeed.push(meanRatios);
  rows.push(`| ${seed} | ${rrP99[0]!.toFixed(0)} | ${cell(rrP99)} | ${infergateP99.toFixed(0)} | ${ratios[0]!.toFixed(2)} | ${cell(ratios, 2)} |`);
}
const RESAMPLES = 10_000;
/** The chance interval of the median over seeds, and how often chance reaches Envoy's figure. */
function chanceLine(label: string, groups: number[][], digits: number, envoy: string | undefined): string {
  const medians = resampledMedians(groups, RESAMPLES, seededRandom(0x5eed5));
  const [lo, mid, hi] = [5, 50, 95].map((q) => percentile(medians, q));
  const line = `- ${label}: ${mid!.toFixed(digits)} [5%: ${lo!.toFixed(digits)}, 95%: ${hi!.toFixed(digits)}]`;
  if (envoy === undefined) return line;
  // "Reached": at least as far from chance's own median as Envoy's figure, on Envoy's side of it.
  const e = Number(envoy);
  const reached = medians.filter((m) => (e >= mid! ? m >= e : m <= e)).length;
  return `${line}; Envoy's ${envoy}: reached by ${((100 * reached) / RESAMPLES).toFixed(1)}% of the resamples`;
}
console.log([
  `Round robin's starting hosts${values.connections ? ` and ${values.connections} pinned connections` : ""} drawn ${draws} times per seed (${shape.name}, time scale ${values["time-scale"]}); P99 TTFT in ms, median [min–max] over the draws:`, "",
  "| seed | round robin P99, lab's draw | round robin P99, all draws | infergate P99 | P99 ratio, lab's draw | P99 ratio, all draws |",
  "|---|---|---|---|---|---|",
  ...rows, "",
  `Median over the ${rrBySeed.length} seeds when each gives one of its draws at random (${RESAMPLES} resamples): median [5th and 95th percentiles]:`, "",
  chanceLine("round robin P99 (ms)", rrBySeed, 0, values["envoy-rr-p99"]),
  chanceLine("infergate ÷ round robin P99", ratioBySeed, 2, values["envoy-ratio"]),
  chanceLine("infergate ÷ round robin mean TTFT", meanRatioBySeed, 2, values["envoy-mean-ratio"]), "",
  `npx tsx bench/lab/rr-chance.ts ${process.argv.slice(2).join(" ")}: ${((performance.now() - started) / 1000).toFixed(0)} s of wall time`,
].join("\n"));
