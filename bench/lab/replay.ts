// Replays a benchmark run's routing in the lab: each request goes to the replica that served it
// through Envoy (result.json's `servedBy`), so the lab's engines see the run's own assignment
// without the real path's timing. Against the run's figures and the lab's own policy, it splits
// the gap between Envoy and the lab in two: the path (Envoy − replay: the same routing, run in
// scaled real time) and the routing (replay − lab: what the filter chose through Envoy against
// what the lab's model of it chose).
//
//   npx tsx bench/lab/replay.ts --runs bench/out/ts8c-s0,bench/out/ts8c-s1,… [--modes round-robin,infergate]
//
// Each run's workload, seed and length come from its result.json, and its time scale sets the
// lab's control-path timing (scrape, push) as bench/lab/run.ts's --time-scale does.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { replicaIndex } from "../replica-addresses.ts";
import { median, spread, spreadCell, type Distribution } from "../summary.ts";
import { controlTiming, runLab, type PolicyFactory } from "./lab.ts";
import { policyFactories } from "./run.ts";
import { shapeNamed } from "./shapes.ts";

interface RunRecord { index: number; servedBy?: string; ttftMs: number; startMs: number }
interface RunMode { name: string; summary: { ttft: Distribution }; records: RunRecord[] }
interface RunResult { options: { workload: string; seed: number; numPrompts: number; timeScale: number; concurrency: number }; modes: RunMode[] }

/** A policy that sends each request where the run sent it; a request no replica served in the run
 * (a 503, say) fails in the lab too. */
export function replay(records: Pick<RunRecord, "index" | "servedBy">[]): PolicyFactory {
  const served = new Map(records.map((r) => [r.index, r.servedBy === undefined ? -1 : replicaIndex(r.servedBy)]));
  return (lab) => {
    const beyond = [...served.values()].find((e) => e >= lab.engines.length);
    if (beyond !== undefined) throw new Error(`the run used replica ${beyond + 1}; the lab has ${lab.engines.length}`);
    return {
      name: "replay", decisionLatencyMs: 0,
      route: ({ req }) => {
        const e = served.get(req.index);
        if (e === undefined) throw new Error(`request ${req.index} is not in the run`);
        return e;
      },
    };
  };
}

const FIGS = ["mean", "median", "p99"] as const;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: "string" }, modes: { type: "string", default: "round-robin,infergate" } } });
  if (!values.runs) throw new Error("--runs DIR,DIR,… is required (benchmark output directories with result.json)");
  const modes = values.modes!.split(",");
  const factories = await policyFactories();
  const f = (x: number): string => x.toFixed(0);
  const triple = (d: Distribution): string => FIGS.map((k) => f(d[k])).join(" / ");
  // Per mode: per seed, the three TTFT distributions.
  const rows = new Map(modes.map((m) => [m, [] as { envoy: Distribution; replay: Distribution; lab: Distribution }[]]));
  // Per mode and seed: the burst's spread of start times, and per request Envoy − replay, split
  // into the start-up burst (the first `concurrency` requests, sent together) and the rest.
  const burst: string[] = [];
  console.log("TTFT mean / median / P99 (ms, model time):\n");
  console.log("| seed | mode | Envoy | replay in the lab | the lab's own policy |");
  console.log("|---|---|---|---|---|");
  for (const dir of values.runs.split(",")) {
    const run = JSON.parse(readFileSync(`${dir}/result.json`, "utf8")) as RunResult;
    const { workload, seed, numPrompts, timeScale, concurrency } = run.options;
    const options = { shape: shapeNamed(workload), seed, numPrompts, workers: 2, timing: controlTiming(timeScale) };
    for (const name of modes) {
      const mode = run.modes.find((m) => m.name === name);
      const factory = factories[name];
      if (!mode || !factory) throw new Error(`${dir}: no mode ${name} in the run or in the lab`);
      const replayed = runLab(replay(mode.records), options);
      const row = { envoy: mode.summary.ttft, replay: replayed.summary.ttft, lab: runLab(factory, options).summary.ttft };
      rows.get(name)!.push(row);
      const inLab = new Map(replayed.records.map((r) => [r.index, r.ttftMs]));
      const ok = mode.records.filter((r) => r.servedBy !== undefined);
      const diff = (rs: RunRecord[]): number => median(rs.map((r) => r.ttftMs - inLab.get(r.index)!));
      const [first, rest] = [ok.filter((r) => r.index < concurrency), ok.filter((r) => r.index >= concurrency)];
      const starts = first.map((r) => r.startMs);
      burst.push(`| ${seed} | ${name} | ${f(Math.max(...starts) - Math.min(...starts))} | ${f(diff(first))} | ${f(diff(rest))} |`);
      console.log(`| ${seed} | ${name} | ${triple(row.envoy)} | ${triple(row.replay)} | ${triple(row.lab)} |`);
    }
  }
  console.log("\nPer request, Envoy − replay (TTFT, ms of model time, median), the start-up burst apart:\n");
  console.log("| seed | mode | burst: Envoy's start times spread over | burst requests | the rest |");
  console.log("|---|---|---|---|---|");
  for (const line of burst) console.log(line);
  console.log("\nMedian [min–max] over the runs, ms (model time):\n");
  console.log("| mode | figure | path: Envoy − replay | routing: replay − lab |");
  console.log("|---|---|---|---|");
  for (const name of modes) {
    const r = rows.get(name)!;
    for (const k of FIGS) {
      console.log(`| ${name} | ${k} | ${spreadCell(spread(r.map((x) => x.envoy[k] - x.replay[k])), 0)} | ${spreadCell(spread(r.map((x) => x.replay[k] - x.lab[k])), 0)} |`);
    }
  }
  if (modes.length >= 2) {
    const [base, other] = [rows.get(modes[0]!)!, rows.get(modes[1]!)!];
    console.log(`\n${modes[1]} ÷ ${modes[0]}, median [min–max] over the runs:\n`);
    console.log("| figure | Envoy | replay | lab | Envoy ÷ replay, per seed |");
    console.log("|---|---|---|---|---|");
    for (const k of FIGS) {
      const perSeed = (w: "envoy" | "replay" | "lab"): number[] => other.map((x, i) => x[w][k] / base[i]![w][k]);
      const [envoy, replayed] = [perSeed("envoy"), perSeed("replay")];
      const cell = (v: number[]): string => spreadCell(spread(v), 2);
      console.log(`| ${k} | ${cell(envoy)} | ${cell(replayed)} | ${cell(perSeed("lab"))} | ${cell(envoy.map((e, i) => e / replayed[i]!))} |`);
    }
  }
}

if (process.argv[1]?.endsWith("replay.ts")) await main();
