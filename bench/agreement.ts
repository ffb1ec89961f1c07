// Lab against real Envoy: the ratios to round robin that the policy lab predicts for a shape
// (its `--json` output) next to the ones real-Envoy benchmark runs measured (their result.json),
// per figure, with the relative difference. The lab's infergate is Envoy's infergate; the lab's
// epp is compared with Envoy's gie-epp mode when a run has one.
//
//   npx tsx bench/agreement.ts --lab lab.json --shape seed --envoy out/run1,out/run2,... [--skip 0]
//
// Runs of the same seed are joined (bench/combine.ts). Without --skip it also prints the figures
// themselves, round robin's included, so a ratio that disagrees shows which of its sides moved.
// `--skip N` leaves out the first N requests of every Envoy run (the after-burst view); the lab's
// ratios are always whole-run.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { mergeBySeed, readRun, type Run, type RunMode } from "./combine.ts";
import { distribution, spread, spreadCell, type Spread } from "./summary.ts";

interface LabRun { shape: string; policy: string; seed: number; ttft: { mean: number; median: number; p99: number }; outputThroughput: number }

const cell = (s: Spread): string => spreadCell(s, 2);

type Fig = "mean" | "median" | "p99" | "throughput";
const FIGS: Array<[Fig, string]> = [["mean", "mean TTFT"], ["median", "median TTFT"], ["p99", "P99 TTFT"], ["throughput", "output throughput"]];
/** Envoy's mode names for the lab's policies. */
const ENVOY_NAME: Record<string, string> = { "least-request": "least-request", infergate: "infergate", epp: "gie-epp" };

function labFigure(r: LabRun, f: Fig): number { return f === "throughput" ? r.outputThroughput : r.ttft[f]; }

function envoyFigure(m: RunMode, f: Fig, skip: number): number {
  if (f === "throughput") return m.summary.outputThroughput;
  if (skip === 0) return m.summary.ttft[f];
  return distribution(m.records.filter((r) => r.ok && r.index >= skip).map((r) => r.ttftMs))[f];
}


/** Per policy and figure: the lab's ratio over the seeds the Envoy runs used (each Envoy run sends
 * the same requests as the lab's run of that seed), the lab's over all its seeds, Envoy's, and
 * Envoy's median over the lab's median on the same seeds. */
export function agreementTable(lab: LabRun[], shape: string, envoyRuns: Run[], skip = 0): string {
  const runs = lab.filter((r) => r.shape === shape);
  const rr = new Map(runs.filter((r) => r.policy === "round-robin").map((r) => [r.seed, r]));
  const seeds = [...new Set(envoyRuns.map((e) => e.seed))].sort((a, b) => a - b);
  const lines = [
    `| policy | figure | lab, seed${seeds.length === 1 ? "" : "s"} ${seeds.join(", ")} | lab, all ${rr.size} seeds | Envoy, ${envoyRuns.length} run${envoyRuns.length === 1 ? "" : "s"} | Envoy ÷ lab (same seeds) | within 10% |`,
    "|---|---|---|---|---|---|---|",
  ];
  for (const [policy, envoyName] of Object.entries(ENVOY_NAME)) {
    const withMode = envoyRuns.filter((e) => e.modes.some((m) => m.name === envoyName) && e.modes.some((m) => m.name === "round-robin"));
    const mine = runs.filter((r) => r.policy === policy && rr.has(r.seed));
    const same = mine.filter((r) => withMode.some((e) => e.seed === r.seed));
    if (withMode.length === 0 || same.length === 0) continue;
    for (const [f, label] of FIGS) {
      const ratio = (r: LabRun): number => labFigure(r, f) / labFigure(rr.get(r.seed)!, f);
      const labSame = spread(same.map(ratio));
      const envoyRatio = spread(withMode.map((e) => envoyFigure(e.modes.find((m) => m.name === envoyName)!, f, skip) / envoyFigure(e.modes.find((m) => m.name === "round-robin")!, f, skip)));
      const rel = envoyRatio.median / labSame.median;
      lines.push(`| ${policy === "epp" ? "epp (Envoy: gie-epp)" : policy} | ${label} | ${cell(labSame)} | ${cell(spread(mine.map(ratio)))} | ${cell(envoyRatio)} | ${rel.toFixed(2)} | ${Math.abs(rel - 1) <= 0.1 ? "✓" : "✗"} |`);
    }
  }
  return lines.join("\n");
}

/** The figures themselves (not ratios), every policy including round robin: the lab's median over
 * the seeds the Envoy runs used, Envoy's median over its runs, and Envoy's over the lab's. Where a
 * ratio disagrees, this says which side of it moved. */
export function absoluteAgreementTable(lab: LabRun[], shape: string, envoyRuns: Run[]): string {
  const runs = lab.filter((r) => r.shape === shape);
  const seeds = new Set(envoyRuns.map((e) => e.seed));
  const lines = [
    `| policy | figure | lab, seed${seeds.size === 1 ? "" : "s"} ${[...seeds].sort((a, b) => a - b).join(", ")} | Envoy, ${envoyRuns.length} run${envoyRuns.length === 1 ? "" : "s"} | Envoy ÷ lab | within 10% |`,
    "|---|---|---|---|---|---|",
  ];
  for (const [policy, envoyName] of Object.entries({ "round-robin": "round-robin", ...ENVOY_NAME })) {
    const mine = runs.filter((r) => r.policy === policy && seeds.has(r.seed));
    const measured = envoyRuns.flatMap((e) => e.modes.filter((m) => m.name === envoyName));
    if (mine.length === 0 || measured.length === 0) continue;
    for (const [f, label] of FIGS) {
      const l = spread(mine.map((r) => labFigure(r, f)));
      const e = spread(measured.map((m) => envoyFigure(m, f, 0)));
      const rel = e.median / l.median;
      lines.push(`| ${policy === "epp" ? "epp (Envoy: gie-epp)" : policy} | ${label} | ${spreadCell(l, 0)} | ${spreadCell(e, 0)} | ${rel.toFixed(2)} | ${Math.abs(rel - 1) <= 0.1 ? "✓" : "✗"} |`);
    }
  }
  return lines.join("\n");
}

function main(): void {
  const { values } = parseArgs({ options: {
    lab: { type: "string" }, shape: { type: "string", default: "seed" }, envoy: { type: "string" }, skip: { type: "string", default: "0" },
  } });
  if (!values.lab || !values.envoy) throw new Error("usage: npx tsx bench/agreement.ts --lab lab.json --shape seed --envoy dir1,dir2,... [--skip N]");
  const lab = values.lab.split(",").flatMap((p) => JSON.parse(readFileSync(p, "utf8")) as LabRun[]);
  const envoy = mergeBySeed(values.envoy.split(",").map(readRun));
  console.log(agreementTable(lab, values.shape, envoy, Number(values.skip)));
  if (Number(values.skip) === 0) console.log(`\nThe figures themselves (model time, ms; tok/s):\n\n${absoluteAgreementTable(lab, values.shape, envoy)}`);
}

if (process.argv[1]?.endsWith("agreement.ts")) main();
