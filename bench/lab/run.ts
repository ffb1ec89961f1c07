// `npm run lab` / `npx tsx bench/lab/run.ts`: routing policies side by side on the calibrated
// simulator, in virtual time, over several workload seeds. Every figure is the median over the seeds
// with its range; every ratio is the median of the per-seed ratios (same requests, same seed) with
// its range.
//
//   npx tsx bench/lab/run.ts [--workload seed|all|name,name] [--seeds 5] [--first-seed 0]
//       [--policies round-robin,least-request,epp,infergate,oracle] [--num-prompts N]
//       [--workers 2] [--time-scale 1] [--verbose] [--out bench/results/lab.md] [--json file]
//       [--baseline <commit>]   (adds infergate-baseline: the filter core as of that commit)
//       [--tuning key=value,...] (filter tuning keys pushed to infergate on top of the server's)
//       [--kv-step N]            (the server renders kv= in steps of N thousandths)
//       [--connections N]        (a pooled client's N connections pinned to workers, drawn from
//                                 the workload seed: what `npm run bench -- --keep-alive` sends)
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { distribution, formatSummary, median, spread, spreadCell as cell, type Spread, type Summary } from "../summary.ts";
import { loadCore, loadCoreAt } from "./core.ts";
import { controlTiming, runLab, type LabResult, type PolicyFactory } from "./lab.ts";
import { epp, infergate, leastRequest, oracle, roundRobin } from "./policies.ts";
import { SHAPES, shapeNamed, type Shape } from "./shapes.ts";

export const POLICY_NAMES = ["round-robin", "least-request", "epp", "infergate", "oracle"];

/** Every policy the lab knows. `infergate` is the filter's compiled core with the snapshot fields
 * it reads rendered by the server (`waiting=`, `kv=`); `infergate-scores` is the same core with the
 * snapshot today's server renders (scores only), the fallback; `infergate-baseline` is the core as
 * an earlier commit had it (`--baseline <commit>`), with the snapshot today's server renders. */
export async function policyFactories(baselineCore?: string, tuning?: Record<string, number>, kvStep = 1): Promise<Record<string, PolicyFactory>> {
  const core = await loadCore();
  const t = tuning ? { tuning } : {};
  const out: Record<string, PolicyFactory> = {
    "round-robin": roundRobin, "least-request": leastRequest, epp, oracle,
    infergate: infergate(core, { engineFields: true, kvStep, ...t }),
    "infergate-scores": infergate(core, { engineFields: false, ...t }, "infergate-scores"),
  };
  if (baselineCore) out["infergate-baseline"] = infergate(await loadCoreAt(baselineCore), { engineFields: false }, "infergate-baseline");
  return out;
}

/** The figures the tables carry, per run. */
export const FIGURES = {
  meanTtft: (r: LabResult) => r.summary.ttft.mean,
  medianTtft: (r: LabResult) => r.summary.ttft.median,
  p99Ttft: (r: LabResult) => r.summary.ttft.p99,
  meanTpot: (r: LabResult) => r.summary.tpot.mean,
  throughput: (r: LabResult) => r.summary.outputThroughput,
  preemptions: (r: LabResult) => r.preemptions,
  prefixHits: (r: LabResult) => r.prefixHitRate * 100,
};
type Figure = keyof typeof FIGURES;

const num = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));

/** Per-seed ratio of `policy` to `base` on a figure, over the seeds both ran. */
export function ratios(runs: LabResult[], policy: string, base: string, f: (r: LabResult) => number): number[] {
  const bySeed = new Map(runs.filter((r) => r.policy === base).map((r) => [r.seed, r]));
  return runs.filter((r) => r.policy === policy && bySeed.has(r.seed)).map((r) => f(r) / f(bySeed.get(r.seed)!));
}

/** A Summary whose every field is the median over the runs (for the benchmark_serving block). */
function medianSummary(runs: LabResult[]): Summary {
  const m = (f: (s: Summary) => number): number => median(runs.map((r) => f(r.summary)));
  const dist = (k: "ttft" | "tpot" | "itl" | "e2el") => ({ mean: m((s) => s[k].mean), median: m((s) => s[k].median), p90: m((s) => s[k].p90), p99: m((s) => s[k].p99) });
  return {
    completed: m((s) => s.completed), failed: m((s) => s.failed), shed: m((s) => s.shed), durationS: m((s) => s.durationS),
    totalInputTokens: m((s) => s.totalInputTokens), totalOutputTokens: m((s) => s.totalOutputTokens),
    requestThroughput: m((s) => s.requestThroughput), outputThroughput: m((s) => s.outputThroughput), totalTokenThroughput: m((s) => s.totalTokenThroughput),
    ttft: dist("ttft"), tpot: dist("tpot"), itl: dist("itl"), e2el: dist("e2el"),
  };
}

export function summaryBlocks(runs: LabResult[], policies: string[]): string {
  return policies.map((p) => {
    const mine = runs.filter((r) => r.policy === p);
    return mine.length === 0 ? "" : formatSummary(`${p} (median of ${mine.length} seeds)`, medianSummary(mine));
  }).filter(Boolean).join("\n\n");
}

/** The shape's tables: figures per policy, then ratios to round robin (and P99 to the oracle). */
export function shapeTables(shape: Shape, runs: LabResult[], policies: string[]): string {
  const seeds = [...new Set(runs.map((r) => r.seed))].sort((a, b) => a - b);
  const lines = [
    `### ${shape.name}`, "", `${shape.description}. Seeds ${seeds.join(", ")}; median [min–max] over the seeds; times in ms of model time.`, "",
    "| policy | mean TTFT | median TTFT | P99 TTFT | mean TPOT | output tok/s | preemptions | prefix-cache hits % |",
    "|---|---|---|---|---|---|---|---|",
  ];
  const figureCols: Figure[] = ["meanTtft", "medianTtft", "p99Ttft", "meanTpot", "throughput", "preemptions", "prefixHits"];
  for (const p of policies) {
    const mine = runs.filter((r) => r.policy === p);
    if (mine.length === 0) continue;
    lines.push(`| ${p} | ${figureCols.map((f) => cell(spread(mine.map(FIGURES[f])))).join(" | ")} |`);
  }
  if (policies.includes("round-robin")) {
    lines.push("", "Ratio to round robin, per seed (same requests), median [min–max]:", "",
      "| policy | mean TTFT | median TTFT | P99 TTFT | output throughput | P99 TTFT ÷ oracle's |", "|---|---|---|---|---|---|");
    for (const p of policies) {
      if (p === "round-robin" || !runs.some((r) => r.policy === p)) continue;
      const rr = (f: Figure): string => cell(spread(ratios(runs, p, "round-robin", FIGURES[f])), 2);
      const vsOracle = runs.some((r) => r.policy === "oracle") && p !== "oracle" ? cell(spread(ratios(runs, p, "oracle", FIGURES.p99Ttft)), 2) : "–";
      lines.push(`| ${p} | ${rr("meanTtft")} | ${rr("medianTtft")} | ${rr("p99Ttft")} | ${rr("throughput")} | ${vsOracle} |`);
    }
  }
  const wall = runs.reduce((n, r) => n + r.wallS, 0);
  lines.push("", `${runs.length} runs, ${wall.toFixed(0)} s of wall time (${policies.map((p) => `${p} ${num(median(runs.filter((r) => r.policy === p).map((r) => r.wallS)))} s`).join(", ")} per run).`);
  return lines.join("\n");
}

export const TARGETS = { meanTtft: 0.70, p99Ttft: 0.35, throughput: 1.01, p99VsOracle: 1.25 };

/** The issue's targets on the seed shape, each with its evidence. */
export function targetTable(runs: LabResult[]): string {
  const r = (p: string, base: string, f: Figure) => spread(ratios(runs, p, base, FIGURES[f]));
  const rows: Array<[string, Spread, number, boolean]> = [
    ["mean TTFT ÷ round robin ≤ 0.70", r("infergate", "round-robin", "meanTtft"), TARGETS.meanTtft, true],
    ["P99 TTFT ÷ round robin ≤ 0.35", r("infergate", "round-robin", "p99Ttft"), TARGETS.p99Ttft, true],
    ["output throughput ÷ round robin ≥ 1.01", r("infergate", "round-robin", "throughput"), TARGETS.throughput, false],
    ["P99 TTFT ÷ oracle's ≤ 1.25", r("infergate", "oracle", "p99Ttft"), TARGETS.p99VsOracle, true],
  ];
  const lines = ["| target | infergate, median [min–max] | met at the median | met on every seed | oracle, median [min–max] |", "|---|---|---|---|---|"];
  for (const [label, s, bound, below] of rows) {
    const ok = (x: number) => (below ? x <= bound : x >= bound);
    const oracleCol = label.includes("oracle's") ? "–" : cell(r("oracle", "round-robin", label.startsWith("mean") ? "meanTtft" : label.startsWith("P99") ? "p99Ttft" : "throughput"), 2);
    lines.push(`| ${label} | ${cell(s, 2)} | ${ok(s.median) ? "✓" : "✗"} | ${ok(below ? s.max : s.min) ? "✓" : "✗"} | ${oracleCol} |`);
  }
  return lines.join("\n");
}

/** Where a run's slowest requests come from, in a closed loop whose first `burst` requests start
 * together: how many of the slowest 1% (the requests at or above the P99) are from that start-up
 * burst, the median TTFT of the burst's own requests, and the P99 of every later request. */
export function burstTail(r: LabResult, burst: number): { slowestFromBurst: number; slowest: number; burstMedian: number; afterP99: number } {
  const ok = r.records.filter((x) => x.ok);
  const slowest = [...ok].sort((a, b) => b.ttftMs - a.ttftMs).slice(0, Math.ceil(ok.length / 100));
  const ttfts = (xs: typeof ok): number[] => xs.map((x) => x.ttftMs);
  return {
    slowestFromBurst: slowest.filter((x) => x.index < burst).length, slowest: slowest.length,
    burstMedian: distribution(ttfts(ok.filter((x) => x.index < burst))).median,
    afterP99: distribution(ttfts(ok.filter((x) => x.index >= burst))).p99,
  };
}

/** burstTail per policy, median [min–max] over the seeds, with the after-burst P99 against round
 * robin's (per seed). */
export function burstTable(runs: LabResult[], policies: string[], burst: number): string {
  const lines = [
    `| policy | of the slowest 1%, from the first ${burst} requests | median TTFT of those ${burst} | P99 TTFT of the requests after them | that P99 ÷ round robin's |`,
    "|---|---|---|---|---|",
  ];
  const tailOf = new Map(runs.map((r) => [r, burstTail(r, burst)]));
  const rrAfter = new Map(runs.filter((r) => r.policy === "round-robin").map((r) => [r.seed, tailOf.get(r)!.afterP99]));
  for (const p of policies) {
    const mine = runs.filter((r) => r.policy === p);
    if (mine.length === 0) continue;
    const tails = mine.map((r) => tailOf.get(r)!);
    const vsRr = mine.filter((r) => rrAfter.has(r.seed)).map((r) => tailOf.get(r)!.afterP99 / rrAfter.get(r.seed)!);
    lines.push(`| ${p} | ${cell(spread(tails.map((t) => t.slowestFromBurst)))} of ${tails[0]!.slowest} | ${cell(spread(tails.map((t) => t.burstMedian)))} | ${cell(spread(tails.map((t) => t.afterP99)))} | ${vsRr.length > 0 && p !== "round-robin" ? cell(spread(vsRr), 2) : "–"} |`);
  }
  return lines.join("\n");
}

/** Whether infergate is worse than round robin beyond the seed-to-seed spread, per figure. */
export function noWorseTable(shapes: Array<[Shape, LabResult[]]>): string {
  const lines = ["| shape | mean TTFT ratio | median TTFT ratio | P99 TTFT ratio | verdict |", "|---|---|---|---|---|"];
  for (const [shape, runs] of shapes) {
    if (!runs.some((r) => r.policy === "infergate") || !runs.some((r) => r.policy === "round-robin")) continue;
    const verdicts: string[] = [];
    const cells = (["meanTtft", "medianTtft", "p99Ttft"] as Figure[]).map((f) => {
      const s = spread(ratios(runs, "infergate", "round-robin", FIGURES[f]));
      const rr = spread(runs.filter((r) => r.policy === "round-robin").map(FIGURES[f]));
      const mine = median(runs.filter((r) => r.policy === "infergate").map(FIGURES[f]));
      // Worse beyond the spread: the median ratio is above 1 and infergate's median is above
      // round robin's largest value over the seeds.
      if (s.median > 1) verdicts.push(mine > rr.max ? `worse on ${f}` : `within spread on ${f}`);
      return cell(s, 2);
    });
    lines.push(`| ${shape.name} | ${cells.join(" | ")} | ${verdicts.length === 0 ? "not worse" : verdicts.join("; ")} |`);
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    workload: { type: "string", default: "seed" },
    seeds: { type: "string", default: "5" },
    "first-seed": { type: "string", default: "0" },
    policies: { type: "string", default: POLICY_NAMES.join(",") },
    "num-prompts": { type: "string" },
    workers: { type: "string", default: "2" },
    "time-scale": { type: "string", default: "1" },
    verbose: { type: "boolean", default: false },
    out: { type: "string" },
    json: { type: "string" },
    baseline: { type: "string" },
    tuning: { type: "string" },
    "kv-step": { type: "string", default: "1" },
    connections: { type: "string" },
  } });
  const names = values.workload === "all" ? Object.keys(SHAPES) : values.workload.split(",");
  const shapes = names.map(shapeNamed);
  const seeds = Array.from({ length: Number(values.seeds) }, (_, i) => Number(values["first-seed"]) + i);
  const policies = values.policies.split(",");
  const tuning = values.tuning ? Object.fromEntries(values.tuning.split(",").map((kv) => { const [k, v] = kv.split("="); return [k!, Number(v)]; })) : undefined;
  const factories = await policyFactories(values.baseline, tuning, Number(values["kv-step"]));
  for (const p of policies) if (!factories[p]) throw new Error(`unknown policy ${p}; known: ${Object.keys(factories).join(", ")}`);
  const timeScale = Number(values["time-scale"]);
  const command = `npx tsx bench/lab/run.ts ${process.argv.slice(2).join(" ")}`.trim();
  const started = performance.now();
  const all: Array<[Shape, LabResult[]]> = [];
  const sections: string[] = [];
  for (const shape of shapes) {
    const runs: LabResult[] = [];
    for (const seed of seeds) {
      for (const p of policies) {
        const r = runLab(factories[p]!, {
          shape, seed, workers: Number(values.workers), timing: controlTiming(timeScale),
          ...(values["num-prompts"] ? { numPrompts: Number(values["num-prompts"]) } : {}),
          ...(values.connections ? { connections: { count: Number(values.connections), seed } } : {}),
        });
        runs.push(r);
        const s = r.summary;
        console.error(`${shape.name} seed ${seed} ${p}: mean TTFT ${num(s.ttft.mean)}, median ${num(s.ttft.median)}, P99 ${num(s.ttft.p99)}, ${num(s.outputThroughput)} tok/s, ${r.preemptions} preemptions (${r.wallS.toFixed(1)} s)`);
        if (values.verbose) console.log(formatSummary(`${shape.name}, ${p}, seed ${seed}`, s), "\n");
      }
    }
    all.push([shape, runs]);
    const section = [shapeTables(shape, runs, policies)];
    if (shape.name === "seed" && ["infergate", "round-robin", "oracle"].every((p) => policies.includes(p))) section.push("", "Targets (issue 12 §3):", "", targetTable(runs));
    if (shape.arrival.kind === "closed") {
      section.push("", `Where the slowest requests come from (the first ${shape.arrival.concurrency} requests start together):`, "", burstTable(runs, policies, shape.arrival.concurrency));
    }
    sections.push(section.join("\n"));
    console.log(`\n${summaryBlocks(runs, policies)}\n\n${section.join("\n")}\n`);
  }
  const wall = (performance.now() - started) / 1000;
  const noWorse = noWorseTable(all);
  if (all.length > 1 || names[0] !== "seed") console.log(`infergate against round robin on every shape:\n\n${noWorse}\n`);
  console.log(`${command}: ${all.reduce((n, [, r]) => n + r.length, 0)} runs in ${wall.toFixed(0)} s of wall time`);
  if (values.out) {
    writeFileSync(values.out, [
      `<!-- written by: ${command} (${wall.toFixed(0)} s of wall time) -->`, "", ...sections.flatMap((s) => [s, ""]),
      "### infergate against round robin on every shape", "", noWorse, "",
    ].join("\n"));
  }
  if (values.json) {
    writeFileSync(values.json, JSON.stringify(all.flatMap(([, runs]) => runs.map((r) => ({
      shape: r.shape, policy: r.policy, seed: r.seed, wallS: r.wallS, preemptions: r.preemptions, prefixHitRate: r.prefixHitRate, perEngine: r.perEngine, stats: r.stats,
      ttft: r.summary.ttft, tpot: r.summary.tpot, outputThroughput: r.summary.outputThroughput, completed: r.summary.completed, failed: r.summary.failed, shed: r.summary.shed,
    }))), null, 1));
  }
}

if (process.argv[1]?.endsWith("lab/run.ts")) void main();
