// Fidelity check of the calibrated simulator through the real endpoint picker. The seed measured
// its inference route (the Inference Extension's EPP behind ACK's gateway) at mean TTFT 1797 ms,
// P99 TTFT 8857 ms and 927 output tok/s, and its plain round-robin route at 2456 / 23509 / 916.
// bench/CALIBRATION.md fits the simulator (profile qwq-32b-4xa10) to the round-robin figures only.
// This drives the same simulator, in scaled real time, with the seed's workload (SEED_WORKLOAD,
// rangeMode "legacy", 60 concurrent streamed chat requests) through:
//   - "round-robin": the reference Envoy's plain route (bench/peers/gie-epp.ts), and
//   - "gie-epp": the same Envoy calling the real EPP v1.5.0 (chart-default scheduler) over
//     ext_proc, as the Inference Extension's reference configuration wires it,
// and reports how far each lands from the seed's figure for that route. Round robin's distance is
// the simulator's own error at this prompt count and time scale; the EPP's distance beside it says
// whether the simulator also reproduces what the EPP did for the seed. The discrete-event
// round-robin run of bench/calibrate.ts at the same prompt count and seeds is printed too: it shows
// what running in scaled real time (rather than virtual time) changes.
//
//   npx tsx bench/peers/epp-fidelity.ts [--num-prompts 600] [--seeds 0,1,2] [--time-scale 2]
//       [--modes round-robin,gie-epp] [--scorers chart|queue-kv]
//
// --scorers queue-kv runs the EPP with the queue and KV-cache scorers only (no prefix-cache scorer),
// closer to the EPP releases of the seed's time, which had no prefix scorer.
//
// Run it in a private network namespace (the EPP binds its ports on every interface):
//   unshare --net bash -c 'ip link set lo up && npx tsx bench/peers/epp-fidelity.ts'
//
// Time scale. The replicas run S times faster than real time and the client multiplies what it
// measures by S (as bench/run.ts does). The EPP's scrape interval is set to 50/S ms, so its view is
// as stale in model time as the real EPP's 50 ms. What cannot be scaled: the EPP's own work per
// request (parsing, scheduling, the ext_proc round trips) counts S times in model time. Response
// bodies do not go through the EPP here (the default scheduler reads nothing from them, and at S×
// the real token rate the callout would make the 2 shared cores the bottleneck).
import { spawn, type ChildProcess } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { profileNamed } from "../../sim/step-model.ts";
import { calibrate, DEFAULT_ENVOY_WORKERS, SEED_ROUND_ROBIN } from "../calibrate.ts";
import { replicaIps } from "../replica-addresses.ts";
import { runLoad } from "../client.ts";
import { summarize, type Summary } from "../summary.ts";
import { buildWorkload, SEED_WORKLOAD } from "../workload.ts";
import { CHART_DEFAULT_PLUGINS, EPP_VERSION, startGieEpp } from "./gie-epp.ts";

const repo = new URL("../..", import.meta.url).pathname;
const PROFILE = "qwq-32b-4xa10";
const REPLICAS = 5;
const CONCURRENCY = 60;

/** The seed's figures per route (the ACK write-up). */
export const SEED_FIGURES = {
  "round-robin": { meanTtftMs: SEED_ROUND_ROBIN.meanTtftMs, p99TtftMs: SEED_ROUND_ROBIN.p99TtftMs, outputTokPerS: SEED_ROUND_ROBIN.outputTokPerS },
  "gie-epp": { meanTtftMs: 1797, p99TtftMs: 8857, outputTokPerS: 927 },
} as const;
export type Mode = keyof typeof SEED_FIGURES;
type Figure = keyof (typeof SEED_FIGURES)["gie-epp"];
const FIGURES: Array<[Figure, string]> = [["meanTtftMs", "mean TTFT (ms)"], ["p99TtftMs", "P99 TTFT (ms)"], ["outputTokPerS", "output tok/s"]];

export interface FidelityRun {
  seed: number; mode: Mode; summary: Summary; figures: Record<Figure, number>; wallS: number;
  /** The share of the first CONCURRENCY requests (the start-up burst) that the busiest replica got. */
  burstShare: number;
  /** Mean TTFT of the requests after the burst. */
  afterBurstMeanTtftMs: number;
}

/** The chart's scheduler without the prefix-cache scorer: queue 2, KV cache 2. */
export const QUEUE_KV_PLUGINS = CHART_DEFAULT_PLUGINS
  .replace("- type: prefix-cache-scorer\n", "")
  .replace("  - pluginRef: prefix-cache-scorer\n    weight: 3\n", "");
export type Scorers = "chart" | "queue-kv";

const figuresOf = (s: Summary): Record<Figure, number> => ({ meanTtftMs: s.ttft.mean, p99TtftMs: s.ttft.p99, outputTokPerS: s.outputThroughput });

/** The replicas in a child process (a core of their own), as bench/run.ts starts them. */
async function startReplicas(ips: string[], timeScale: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", join(repo, "bench", "replicas.ts"), "--ips", ips.join(","),
    "--profile", PROFILE, "--time-scale", String(timeScale), "--models", "qwq-32b,qwq"], { cwd: repo, stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (c: string) => { out += c; if (out.includes("ready")) resolve(); });
    child.once("exit", (code) => reject(new Error(`replicas exited with ${code}`)));
  });
  return child;
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

/** One seed: round robin, then the EPP, each on freshly started replicas (empty KV caches). */
export async function runSeed(seed: number, numPrompts: number, timeScale: number, log: (m: string) => void = () => undefined,
  modes: Mode[] = ["round-robin", "gie-epp"], scorers: Scorers = "chart"): Promise<FidelityRun[]> {
  const ips = replicaIps(REPLICAS);
  const requests = buildWorkload({ ...SEED_WORKLOAD, numPrompts, seed });
  let replicas = await startReplicas(ips, timeScale);
  const scrapeMs = 50 / timeScale;
  const peer = await startGieEpp({ replicas: ips.map((ip) => `${ip}:8000`), responseBody: false, eppArgs: ["--refresh-metrics-interval", `${scrapeMs}ms`],
    ...(scorers === "queue-kv" ? { eppConfig: QUEUE_KV_PLUGINS } : {}) })
    .catch(async (err) => { await stopChild(replicas); throw err; });
  const out: FidelityRun[] = [];
  try {
    for (const [i, mode] of modes.entries()) {
      if (i > 0) { await stopChild(replicas); replicas = await startReplicas(ips, timeScale); }
      const started = Date.now();
      const { records, durationMs } = await runLoad(mode === "gie-epp" ? peer.url : peer.plainUrl, requests, {
        concurrency: CONCURRENCY, requestRate: Infinity, timeScale, model: "qwq", seed,
        timeoutMs: Math.max(60_000, (SEED_WORKLOAD.outputLen * 2 * 200) / timeScale + 60_000),
      });
      const summary = summarize(records, durationMs);
      if (summary.completed < numPrompts) throw new Error(`${mode}, seed ${seed}: ${numPrompts - summary.completed} requests failed: ${records.find((r) => !r.ok)?.error}`);
      const burst = records.slice(0, CONCURRENCY);
      const perReplica = new Map<string, number>();
      for (const r of burst) perReplica.set(r.servedBy ?? "?", (perReplica.get(r.servedBy ?? "?") ?? 0) + 1);
      const after = records.slice(CONCURRENCY);
      out.push({
        seed, mode, summary, figures: figuresOf(summary), wallS: (Date.now() - started) / 1000,
        burstShare: Math.max(...perReplica.values()) / burst.length,
        afterBurstMeanTtftMs: after.reduce((n, r) => n + r.ttftMs, 0) / Math.max(1, after.length),
      });
      log(`seed ${seed} ${mode}: mean TTFT ${summary.ttft.mean.toFixed(0)} ms, P99 ${summary.ttft.p99.toFixed(0)} ms, ${summary.outputThroughput.toFixed(0)} tok/s (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    }
  } finally {
    await peer.stop();
    await stopChild(replicas);
  }
  return out;
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = Math.floor(s.length / 2); return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const pct = (x: number): string => `${x >= 0 ? "+" : "−"}${Math.abs(x * 100).toFixed(1)}%`;
const num = (x: number): string => x.toFixed(0);

/** Per mode and figure: the seed's figure, the simulated median [min – max] over seeds, the
 * deviation of the median, and the discrete-event round robin at the same prompt count. */
export function formatFidelity(runs: FidelityRun[], discreteRoundRobin: Array<Record<Figure, number>>): string {
  const lines = [
    "| route | metric | seed | simulated, median [min – max] over seeds | deviation of the median |",
    "|---|---|---|---|---|",
  ];
  for (const mode of ["round-robin", "gie-epp"] as const) {
    const mine = runs.filter((r) => r.mode === mode);
    if (mine.length === 0) continue;
    for (const [key, name] of FIGURES) {
      const values = mine.map((r) => r.figures[key]);
      const m = median(values);
      lines.push(`| ${mode === "gie-epp" ? "EPP v1.5.0" : "round robin"} | ${name} | ${SEED_FIGURES[mode][key]} | ${num(m)} [${num(Math.min(...values))} – ${num(Math.max(...values))}] | **${pct(m / SEED_FIGURES[mode][key] - 1)}** |`);
    }
  }
  for (const [key, name] of FIGURES) {
    const m = median(discreteRoundRobin.map((d) => d[key]));
    lines.push(`| round robin, discrete-event (bench/calibrate.ts) | ${name} | ${SEED_FIGURES["round-robin"][key]} | ${num(m)} [${num(Math.min(...discreteRoundRobin.map((d) => d[key])))} – ${num(Math.max(...discreteRoundRobin.map((d) => d[key])))}] | ${pct(m / SEED_FIGURES["round-robin"][key] - 1)} |`);
  }
  const perSeed = ["", `| seed | route | mean TTFT | P99 TTFT | output tok/s | median TTFT | mean TPOT | busiest replica's share of the first ${CONCURRENCY} | mean TTFT after them | wall s |`, "|---|---|---|---|---|---|---|---|---|---|",
    ...runs.map((r) => `| ${r.seed} | ${r.mode} | ${num(r.figures.meanTtftMs)} | ${num(r.figures.p99TtftMs)} | ${num(r.figures.outputTokPerS)} | ${num(r.summary.ttft.median)} | ${r.summary.tpot.mean.toFixed(1)} | ${(r.burstShare * 100).toFixed(0)}% | ${num(r.afterBurstMeanTtftMs)} | ${r.wallS.toFixed(0)} |`)];
  return [...lines, ...perSeed].join("\n");
}

if (process.argv[1]?.endsWith("epp-fidelity.ts")) {
  const { values } = parseArgs({ options: {
    "num-prompts": { type: "string", default: "600" },
    seeds: { type: "string", default: "0,1,2" },
    "time-scale": { type: "string", default: "2" },
    modes: { type: "string", default: "round-robin,gie-epp" },
    scorers: { type: "string", default: "chart" },
  } });
  const modes = values.modes!.split(",") as Mode[];
  for (const m of modes) if (!(m in SEED_FIGURES)) throw new Error(`unknown mode ${m}`);
  const scorers = values.scorers as Scorers;
  if (scorers !== "chart" && scorers !== "queue-kv") throw new Error(`unknown --scorers ${scorers}`);
  const numPrompts = Number(values["num-prompts"]);
  const seeds = values.seeds!.split(",").map(Number);
  const timeScale = Number(values["time-scale"]);
  const started = Date.now();
  const load: number[] = [];
  const runs: FidelityRun[] = [];
  for (const seed of seeds) {
    load.push(loadavg()[0]!);
    runs.push(...await runSeed(seed, numPrompts, timeScale, (m) => console.error(m), modes, scorers));
  }
  const discrete = calibrate({ seeds, numPrompts, replicas: REPLICAS, concurrency: CONCURRENCY, profile: profileNamed(PROFILE), envoyWorkers: DEFAULT_ENVOY_WORKERS, workload: SEED_WORKLOAD })
    .map((r) => ({ meanTtftMs: r.figures.meanTtftMs, p99TtftMs: r.figures.p99TtftMs, outputTokPerS: r.figures.outputTokPerS }));
  console.log(`## The simulator through the real EPP ${EPP_VERSION} (${scorers === "chart" ? "the chart's scheduler" : "queue and KV-cache scorers only"}): ${numPrompts} prompts, seeds ${seeds.join(", ")}, time scale ${timeScale} (EPP scrape ${50 / timeScale} ms)`);
  console.log(`${cpus().length} CPUs, 1-minute load average at the start of each seed: ${load.map((l) => l.toFixed(2)).join(", ")}; ${((Date.now() - started) / 60_000).toFixed(1)} min in all\n`);
  console.log(formatFidelity(runs, discrete));
}
