// Round robin, infergate and the Inference Extension's EPP (the benchmark's gie-epp mode) on
// Poisson arrivals near saturation, through the same Envoy to the same fresh replicas, one run set
// per seed (bench/run.ts's runBench: the three modes one after another, replicas restarted before
// each). Prints each seed's figures and, per mode, the median over seeds with the range, and the
// per-seed ratios infergate / gie-epp.
//
//   npx tsx bench/peers/epp-poisson.ts [--seeds 0,1,2] [--num-prompts 100] [--request-rate 0.28]
//       [--time-scale 8] [--replicas 5]
//
// The rate is in requests per second of model time. Five replicas of the calibrated profile serve
// the seed workload at about 0.31 requests/s (927 output tok/s at ~3000 output tokens each, the
// seed's closed-loop figure), so 0.28 is about 90% of saturation. Needs the EPP and kube-apiserver
// built (bash scripts/build-epp.sh && bash scripts/build-kube-apiserver.sh).
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { parseBenchOptions, runBench } from "../run.ts";
import type { Summary } from "../summary.ts";

const MODES = ["round-robin", "infergate", "gie-epp"] as const;
type Mode = (typeof MODES)[number];
const FIGURES: Array<[string, (s: Summary) => number, number]> = [
  ["mean TTFT (ms)", (s) => s.ttft.mean, 0], ["P99 TTFT (ms)", (s) => s.ttft.p99, 0],
  ["median TTFT (ms)", (s) => s.ttft.median, 0], ["output tok/s", (s) => s.outputThroughput, 0], ["mean TPOT (ms)", (s) => s.tpot.mean, 1],
];

const median = (v: number[]): number => { const s = [...v].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const spread = (v: number[], digits: number): string => `${median(v).toFixed(digits)} [${Math.min(...v).toFixed(digits)}–${Math.max(...v).toFixed(digits)}]`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    seeds: { type: "string", default: "0,1,2" },
    "num-prompts": { type: "string", default: "100" },
    "request-rate": { type: "string", default: "0.28" },
    "time-scale": { type: "string", default: "8" },
    replicas: { type: "string", default: "5" },
  } });
  const seeds = String(values.seeds).split(",").map(Number);
  const rest = ["--time-scale", values["time-scale"]!, "--replicas", values.replicas!];
  const started = Date.now();
  const runs: Array<{ seed: number; load: number; summaries: Record<Mode, Summary> }> = [];
  for (const seed of seeds) {
    const load = loadavg()[0]!;
    const o = parseBenchOptions(["--num-prompts", String(values["num-prompts"]), "--request-rate", String(values["request-rate"]),
      "--concurrency", "1000", "--seed", String(seed), "--modes", MODES.join(","), ...rest]);
    const results = await runBench(o);
    for (const r of results) if (r.summary.completed < o.numPrompts) throw new Error(`seed ${seed} ${r.name}: ${r.summary.failed} failed`);
    runs.push({ seed, load, summaries: Object.fromEntries(results.map((r) => [r.name, r.summary])) as Record<Mode, Summary> });
    console.error(`seed ${seed} done (${((Date.now() - started) / 60_000).toFixed(1)} min)`);
  }
  const o = parseBenchOptions(["--num-prompts", String(values["num-prompts"]), "--request-rate", String(values["request-rate"]), ...rest]);
  console.log(`## Poisson arrivals: ${o.numPrompts} prompts at ${o.requestRate} requests/s (model time), seeds ${seeds.join(", ")}, ${o.replicas} replicas (${o.profile}), time scale ${o.timeScale}`);
  console.log(`\nCommand: \`npx tsx bench/peers/epp-poisson.ts ${process.argv.slice(2).join(" ")}\`. ${cpus().length} CPUs; 1-minute load average at the start of each seed: ${runs.map((r) => r.load.toFixed(1)).join(", ")}; ${((Date.now() - started) / 60_000).toFixed(1)} min in all.\n`);
  console.log(`Median over seeds [min–max]:\n\n| figure | ${MODES.join(" | ")} | infergate / gie-epp, per seed |\n|---|${MODES.map(() => "---|").join("")}---|`);
  for (const [name, get, digits] of FIGURES) {
    const ratios = runs.map((r) => get(r.summaries.infergate) / get(r.summaries["gie-epp"]));
    console.log(`| ${name} | ${MODES.map((m) => spread(runs.map((r) => get(r.summaries[m])), digits)).join(" | ")} | ${spread(ratios, 2)} |`);
  }
  console.log(`\n| seed | mode | mean TTFT | P99 TTFT | median TTFT | output tok/s | mean TPOT |\n|---|---|---|---|---|---|---|`);
  for (const r of runs) for (const m of MODES) console.log(`| ${r.seed} | ${m} | ${FIGURES.map(([, get, d]) => get(r.summaries[m]).toFixed(d)).join(" | ")} |`);
}

if (process.argv[1]?.endsWith("epp-poisson.ts")) void main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
