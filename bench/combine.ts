// Several benchmark runs (seeds) into one report: each figure as the median over the runs with
// the range, and each ratio taken per run (the same requests in every mode of a run) and then the
// median [min–max] over the runs. Reads the result.json every `npm run bench` writes.
//
//   npx tsx bench/combine.ts --runs out/s0,out/s1,out/s2 [--base round-robin] [--vs gie-epp] [--skip 60]
//
// Directories of the same seed are joined (a mode run later on its own, with --modes).
// `--vs M` adds a table of every mode's ratios to mode M (infergate against the EPP, say);
// `--skip N` adds the after-burst view (TTFT over the requests after the first N).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { distribution, spread, spreadCell, type RequestRecord, type Summary } from "./summary.ts";

export interface RunMode { name: string; summary: Summary; records: RequestRecord[]; preemptions?: number; prefixHitRate?: number }
export interface Run { seed: number; modes: RunMode[] }

type Figure = (m: RunMode) => number;
const TTFT_MEAN: Figure = (m) => m.summary.ttft.mean;
const TTFT_MEDIAN: Figure = (m) => m.summary.ttft.median;
const TTFT_P99: Figure = (m) => m.summary.ttft.p99;
const THROUGHPUT: Figure = (m) => m.summary.outputThroughput;

const ABSOLUTE: Array<[string, Figure, number | undefined]> = [
  ["completed", (m) => m.summary.completed, 0], ["failed", (m) => m.summary.failed, 0], ["shed", (m) => m.summary.shed, 0],
  ["mean TTFT", TTFT_MEAN, 0], ["median TTFT", TTFT_MEDIAN, 0], ["P99 TTFT", TTFT_P99, 0],
  ["mean TPOT", (m) => m.summary.tpot.mean, 1], ["output tok/s", THROUGHPUT, 0],
  ["prefix-cache hits %", (m) => (m.prefixHitRate ?? NaN) * 100, 0], ["preemptions", (m) => m.preemptions ?? NaN, 0],
];
const RATIOS: Array<[string, Figure]> = [["mean TTFT", TTFT_MEAN], ["median TTFT", TTFT_MEDIAN], ["P99 TTFT", TTFT_P99], ["output throughput", THROUGHPUT]];

/** The modes every run has, in the first run's order. */
function modeNames(runs: Run[]): string[] {
  return runs[0]!.modes.map((m) => m.name).filter((n) => runs.every((r) => r.modes.some((m) => m.name === n)));
}
const modeOf = (run: Run, name: string): RunMode => run.modes.find((m) => m.name === name)!;

/** The figures of each mode: median [min–max] over the runs. */
export function absoluteTable(runs: Run[]): string {
  const lines = [`| mode | ${ABSOLUTE.map(([l]) => l).join(" | ")} |`, `|---|${ABSOLUTE.map(() => "---").join("|")}|`];
  for (const name of modeNames(runs)) {
    lines.push(`| ${name} | ${ABSOLUTE.map(([, f, d]) => spreadCell(spread(runs.map((r) => f(modeOf(r, name)))), d)).join(" | ")} |`);
  }
  return lines.join("\n");
}

/** Each mode's ratios to `base`, taken per run, then median [min–max]. */
export function ratioTable(runs: Run[], base: string, figures: Array<[string, Figure]> = RATIOS): string {
  const lines = [`| mode | ${figures.map(([l]) => l).join(" | ")} |`, `|---|${figures.map(() => "---").join("|")}|`];
  for (const name of modeNames(runs)) {
    if (name === base) continue;
    lines.push(`| ${name} | ${figures.map(([, f]) => spreadCell(spread(runs.map((r) => f(modeOf(r, name)) / f(modeOf(r, base)))), 2)).join(" | ")} |`);
  }
  return lines.join("\n");
}

/** TTFT over the requests after the first `skip` of each run, as figures for ratioTable. */
export function afterBurst(skip: number): Array<[string, Figure]> {
  const ttft = (m: RunMode) => distribution(m.records.filter((r) => r.ok && r.index >= skip).map((r) => r.ttftMs));
  return [["mean TTFT", (m) => ttft(m).mean], ["median TTFT", (m) => ttft(m).median], ["P99 TTFT", (m) => ttft(m).p99]];
}

export function readRun(dir: string): Run {
  const r = JSON.parse(readFileSync(join(dir, "result.json"), "utf8")) as { options: { seed: number }; modes: RunMode[] };
  return { seed: Number(r.options.seed), modes: r.modes };
}

/** Runs of the same seed as one (the same requests; every mode starts on fresh replicas anyway, so
 * a mode run later on its own joins the others): a mode both have is taken from the first. */
export function mergeBySeed(runs: Run[]): Run[] {
  const bySeed = new Map<number, Run>();
  for (const run of runs) {
    const known = bySeed.get(run.seed);
    if (!known) { bySeed.set(run.seed, { seed: run.seed, modes: [...run.modes] }); continue; }
    for (const m of run.modes) if (!known.modes.some((k) => k.name === m.name)) known.modes.push(m);
  }
  return [...bySeed.values()];
}

function main(): void {
  const { values } = parseArgs({ options: {
    runs: { type: "string" }, base: { type: "string", default: "round-robin" }, vs: { type: "string" }, skip: { type: "string" },
  } });
  if (!values.runs) throw new Error("usage: npx tsx bench/combine.ts --runs dir1,dir2,... [--base round-robin] [--vs gie-epp] [--skip 60]");
  const runs = mergeBySeed(values.runs.split(",").map(readRun));
  const seeds = runs.map((r) => r.seed).join(", ");
  const out = [
    `${runs.length} run${runs.length === 1 ? "" : "s"} (seeds ${seeds}); every figure is the median over the runs [min–max]; ratios are taken per run, then the median [min–max].`,
    "", absoluteTable(runs), "", `Ratios to ${values.base}, whole run:`, "", ratioTable(runs, values.base),
  ];
  if (values.vs) out.push("", `Ratios to ${values.vs}, whole run:`, "", ratioTable(runs, values.vs));
  if (values.skip) {
    const skip = Number(values.skip);
    out.push("", `After the first ${skip} requests, ratios to ${values.base}:`, "", ratioTable(runs, values.base, afterBurst(skip)));
    if (values.vs) out.push("", `After the first ${skip} requests, ratios to ${values.vs}:`, "", ratioTable(runs, values.vs, afterBurst(skip)));
  }
  console.log(out.join("\n"));
}

if (process.argv[1]?.endsWith("combine.ts")) main();
