// Calibration of the simulated engine against the seed's round-robin figures: the seed workload
// (60 concurrent, 1000-token shared prefix, benchmark_serving.py's random dataset, see
// bench/workload.ts) over five replicas of the `qwq-32b-4xa10` profile, with round robin, in a
// discrete-event run (no network, no waiting). Every figure is the median over workload seeds.
//
//   npx tsx bench/calibrate.ts [--num-prompts 3000] [--seeds 9] [--profile qwq-32b-4xa10]
//       [--kv-blocks N] [--prefill-ms X] [--attention-pair-ms X] [--max-num-batched-tokens N]
//       [--request-overhead-ms X] [--admit-full-prompt] [--range-mode legacy|symmetric]
//       [--sensitivity] [--verbose]
import { parseArgs } from "node:util";
import { BatchingEngine } from "../sim/batching-engine.ts";
import { VirtualClock } from "../sim/clock.ts";
import { profileNamed, type StepProfile } from "../sim/step-model.ts";
import { formatSummary, summarize, type RequestRecord, type Summary } from "./summary.ts";
import { buildWorkload, SEED_WORKLOAD, seededRandom, type WorkloadOptions, type WorkloadRequest } from "./workload.ts";

/** The seed's published round-robin figures (ACK write-up). */
export const SEED_ROUND_ROBIN = { meanTtftMs: 2456, medianTtftMs: 1366, p99TtftMs: 23509, meanTpotMs: 63.5, outputTokPerS: 916 };

/** Envoy worker threads in the calibration: this repository's Envoy runs with --concurrency 2
 * (extension-server/src/envoy/process.ts), so the lab's round robin is the one the real-Envoy
 * benchmark gets. The seed's own count is not published. */
export const DEFAULT_ENVOY_WORKERS = 2;

/** Calibration bands, as fractions of the seed's figure. */
export const BANDS = { meanTtftMs: 0.25, medianTtftMs: 0.20, p99TtftMs: 0.30, meanTpotMs: 0.15, outputTokPerS: 0.10 };

type Figure = keyof typeof SEED_ROUND_ROBIN;
const FIGURES: Array<[Figure, string]> = [
  ["meanTtftMs", "mean TTFT (ms)"], ["medianTtftMs", "median TTFT (ms)"], ["p99TtftMs", "P99 TTFT (ms)"],
  ["meanTpotMs", "mean TPOT (ms)"], ["outputTokPerS", "output throughput (tok/s)"],
];

export interface ClosedLoopOptions {
  replicas: number;
  concurrency: number;
  profile: string | StepProfile;
  /** Keep every inter-token gap (for the ITL distribution); off, the summary's ITL is empty. */
  keepItl?: boolean;
  /** Envoy worker threads. Each keeps its own round-robin index, starting at a random host (Envoy's
   * RoundRobinLoadBalancer seeds it per worker), and benchmark_serving.py opens a new connection per
   * request, which the kernel hands to any worker. 1 (the default): one global round robin. */
  envoyWorkers?: number;
  /** Seeds the worker choice and start indices when envoyWorkers > 1. */
  routerSeed?: number;
}

export interface ClosedLoopResult { summary: Summary; records: RequestRecord[]; preemptions: number; recomputedTokens: number }

/** Runs `requests` through `replicas` engines with `concurrency` closed-loop clients, round robin. */
export function runClosedLoop(requests: WorkloadRequest[], o: ClosedLoopOptions): ClosedLoopResult {
  const clock = new VirtualClock();
  const profile = typeof o.profile === "string" ? profileNamed(o.profile) : o.profile;
  const engines = Array.from({ length: o.replicas }, () => new BatchingEngine(profile, clock));
  const records: RequestRecord[] = [];
  let next = 0;
  const workers = Math.max(1, o.envoyWorkers ?? 1);
  const random = seededRandom(0x5eed ^ (o.routerSeed ?? 0));
  const cursors = Array.from({ length: workers }, () => (workers === 1 ? 0 : Math.floor(random() * engines.length)));
  const sendNext = (): void => {
    const req = requests[next++];
    if (!req) return;
    const worker = workers === 1 ? 0 : Math.floor(random() * workers);
    const engine = engines[cursors[worker]!++ % engines.length]!;
    const record: RequestRecord = {
      index: req.index, ok: false, shed: false, status: 0, startMs: clock.now(), ttftMs: 0, itlMs: [], e2eMs: 0,
      inputTokens: req.tokens.length, outputTokens: 0,
    };
    let last = 0;
    engine.submit({ id: String(req.index), model: "qwq-32b", promptTokens: req.tokens, maxTokens: req.maxTokens }, {
      onToken: (i) => {
        const now = clock.now();
        if (i === 0) record.ttftMs = now - record.startMs;
        else if (o.keepItl) record.itlMs.push(now - last);
        last = now;
        record.outputTokens++;
      },
      onFinish: () => {
        record.ok = true;
        record.status = 200;
        record.e2eMs = clock.now() - record.startMs;
        records.push(record);
        sendNext();
      },
      onError: (message) => {
        record.error = message;
        records.push(record);
        sendNext();
      },
    });
  };
  for (let c = 0; c < o.concurrency; c++) sendNext();
  clock.run();
  return {
    summary: summarize(records, clock.now()), records,
    preemptions: engines.reduce((n, e) => n + e.stats().preemptions, 0),
    recomputedTokens: engines.reduce((n, e) => n + e.recomputedTokens, 0),
  };
}

export interface CalibrationRun { seed: number; figures: Record<Figure, number>; preemptions: number; recomputedTokens: number; summary: Summary; wallS: number }

export interface CalibrationOptions {
  numPrompts: number;
  seeds: number[];
  profile: StepProfile;
  replicas: number;
  concurrency: number;
  envoyWorkers: number;
  workload: Omit<WorkloadOptions, "numPrompts" | "seed">;
}

function figuresOf(s: Summary): Record<Figure, number> {
  return { meanTtftMs: s.ttft.mean, medianTtftMs: s.ttft.median, p99TtftMs: s.ttft.p99, meanTpotMs: s.tpot.mean, outputTokPerS: s.outputThroughput };
}

/** One closed-loop round-robin run per workload seed. */
export function calibrate(o: CalibrationOptions): CalibrationRun[] {
  return o.seeds.map((seed) => {
    const started = performance.now();
    const requests = buildWorkload({ ...o.workload, numPrompts: o.numPrompts, seed });
    const r = runClosedLoop(requests, { replicas: o.replicas, concurrency: o.concurrency, profile: o.profile, envoyWorkers: o.envoyWorkers, routerSeed: seed });
    return { seed, figures: figuresOf(r.summary), preemptions: r.preemptions, recomputedTokens: r.recomputedTokens, summary: r.summary, wallS: (performance.now() - started) / 1000 };
  });
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const deviation = (actual: number, target: number): number => (actual - target) / target;
const pct = (x: number): string => `${x >= 0 ? "+" : "−"}${Math.abs(x * 100).toFixed(1)}%`;
const num = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1));

/** Median, spread and band check per figure, as a markdown table. */
export function calibrationTable(runs: CalibrationRun[]): { table: string; allPass: boolean } {
  const seed = SEED_ROUND_ROBIN;
  const lines = [
    `| metric | seed (round robin) | simulated median [min – max] over ${runs.length} seeds | deviation of median | band | pass | seeds in band |`,
    "|---|---|---|---|---|---|---|",
  ];
  let allPass = true;
  for (const [key, name] of FIGURES) {
    const values = runs.map((r) => r.figures[key]);
    const m = median(values);
    const dev = deviation(m, seed[key]);
    const pass = Math.abs(dev) <= BANDS[key];
    const inBand = values.filter((v) => Math.abs(deviation(v, seed[key])) <= BANDS[key]).length;
    allPass &&= pass;
    lines.push(`| ${name} | ${seed[key]} | ${num(m)} [${num(Math.min(...values))} – ${num(Math.max(...values))}] | ${pct(dev)} | ±${BANDS[key] * 100}% | ${pass ? "✓" : "✗"} | ${inBand}/${values.length} |`);
  }
  return { table: lines.join("\n"), allPass };
}

/** One line per seed: the five figures and the preemption count. */
export function perSeedTable(runs: CalibrationRun[]): string {
  const lines = ["| seed | mean TTFT | median TTFT | P99 TTFT | mean TPOT | output tok/s | preemptions | recomputed tokens | wall s |", "|---|---|---|---|---|---|---|---|---|"];
  for (const r of runs) {
    const f = r.figures;
    lines.push(`| ${r.seed} | ${num(f.meanTtftMs)} | ${num(f.medianTtftMs)} | ${num(f.p99TtftMs)} | ${num(f.meanTpotMs)} | ${num(f.outputTokPerS)} | ${r.preemptions} | ${r.recomputedTokens} | ${r.wallS.toFixed(1)} |`);
  }
  return lines.join("\n");
}

/** How each figure moves when one parameter changes (medians over the same seeds). */
export type Variant = [label: string, profile: Partial<StepProfile>, harness?: Partial<Omit<CalibrationOptions, "profile">>];

export function sensitivity(base: CalibrationOptions, variants: Variant[]): string {
  const lines = [
    "| variant | mean TTFT | median TTFT | P99 TTFT | mean TPOT | output tok/s | preemptions (median) | in all bands |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const [label, overrides, harness] of variants) {
    const runs = calibrate({ ...base, ...harness, profile: { ...base.profile, ...overrides } });
    const cells = FIGURES.map(([key]) => {
      const m = median(runs.map((r) => r.figures[key]));
      const inBand = Math.abs(deviation(m, SEED_ROUND_ROBIN[key])) <= BANDS[key];
      return `${num(m)} (${pct(deviation(m, SEED_ROUND_ROBIN[key]))})${inBand ? "" : " ✗"}`;
    });
    lines.push(`| ${label} | ${cells.join(" | ")} | ${median(runs.map((r) => r.preemptions))} | ${calibrationTable(runs).allPass ? "✓" : "✗"} |`);
    console.error(`  sensitivity: ${label} done`);
  }
  return lines.join("\n");
}

function main(): void {
  const { values } = parseArgs({ options: {
    "num-prompts": { type: "string", default: "3000" },
    seeds: { type: "string", default: "9" },
    profile: { type: "string", default: "qwq-32b-4xa10" },
    replicas: { type: "string", default: "5" },
    concurrency: { type: "string", default: "60" },
    "envoy-workers": { type: "string", default: String(DEFAULT_ENVOY_WORKERS) },
    "kv-blocks": { type: "string" },
    "prefill-ms": { type: "string" },
    "fixed-ms": { type: "string" },
    "attention-pair-ms": { type: "string" },
    "max-num-batched-tokens": { type: "string" },
    "request-overhead-ms": { type: "string" },
    "admit-full-prompt": { type: "boolean", default: false },
    "range-mode": { type: "string", default: SEED_WORKLOAD.rangeMode },
    "input-len": { type: "string", default: String(SEED_WORKLOAD.inputLen) },
    "output-len": { type: "string", default: String(SEED_WORKLOAD.outputLen) },
    sensitivity: { type: "boolean", default: false },
    verbose: { type: "boolean", default: false },
  } });
  const overrides: Partial<StepProfile> = {};
  if (values["kv-blocks"]) overrides.kvBlocks = Number(values["kv-blocks"]);
  if (values["prefill-ms"]) overrides.perPrefillTokenMs = Number(values["prefill-ms"]);
  if (values["fixed-ms"]) overrides.fixedMs = Number(values["fixed-ms"]);
  if (values["attention-pair-ms"]) overrides.attentionPairMs = Number(values["attention-pair-ms"]);
  if (values["max-num-batched-tokens"]) overrides.maxNumBatchedTokens = Number(values["max-num-batched-tokens"]);
  if (values["request-overhead-ms"]) overrides.requestOverheadMs = Number(values["request-overhead-ms"]);
  if (values["admit-full-prompt"]) overrides.admitFullPrompt = true;
  const rangeMode = values["range-mode"];
  if (rangeMode !== "legacy" && rangeMode !== "symmetric") throw new Error("--range-mode is legacy or symmetric");
  const options: CalibrationOptions = {
    numPrompts: Number(values["num-prompts"]),
    seeds: Array.from({ length: Number(values.seeds) }, (_, i) => SEED_WORKLOAD.seed + i),
    profile: profileNamed(values.profile, overrides),
    replicas: Number(values.replicas),
    concurrency: Number(values.concurrency),
    envoyWorkers: Number(values["envoy-workers"]),
    workload: { ...SEED_WORKLOAD, rangeMode, inputLen: Number(values["input-len"]), outputLen: Number(values["output-len"]) },
  };
  const p = options.profile;
  console.log(`profile ${p.name}: ${p.kvBlocks} KV blocks of ${p.blockSize}, step ${p.fixedMs} ms + ${p.perSeqMs} ms/seq + ${p.perContextTokenMs} ms/context token, prefill ${p.perPrefillTokenMs} ms/token, attention ${p.attentionPairMs ?? 0} ms/pair, `
    + `max_num_batched_tokens ${p.maxNumBatchedTokens}, max_num_seqs ${p.maxNumSeqs}${p.admitFullPrompt ? ", full-prompt admission" : ""}`);
  console.log(`workload: ${options.numPrompts} prompts, ${options.concurrency} concurrent, ${options.replicas} replicas round robin`
    + `${options.envoyWorkers > 1 ? ` (${options.envoyWorkers} Envoy workers)` : ""}, `
    + `prefix ${options.workload.prefixLen}, input ${options.workload.inputLen}, output ${options.workload.outputLen}, range ratio ${options.workload.rangeRatio} (${rangeMode}), seeds ${options.seeds.join(",")}\n`);
  const started = performance.now();
  const runs = calibrate(options);
  if (values.verbose) for (const r of runs) console.log(formatSummary(`simulated round robin, seed ${r.seed}`, r.summary), "\n");
  const { table, allPass } = calibrationTable(runs);
  console.log(table);
  console.log(`\n${perSeedTable(runs)}`);
  console.log(`\n${allPass ? "all five figures within their bands" : "NOT all figures within their bands"}; ${runs.length} runs in ${((performance.now() - started) / 1000).toFixed(1)} s of wall time`);
  if (values.sensitivity) {
    const b = options.profile;
    const variants: Variant[] = [
      ["as calibrated", {}],
      ...[3000, 3250, 3750, 4000, 4500].map((k): Variant => [`KV ${k} blocks`, { kvBlocks: k }]),
      ...[0.3, 0.5].map((x): Variant => [`prefill ${x} ms/token`, { perPrefillTokenMs: x }]),
      ["no attention term", { attentionPairMs: 0 }],
      ["attention term ×2", { attentionPairMs: 2 * (b.attentionPairMs ?? 0) }],
      ...[41, 47].map((x): Variant => [`step fixed ${x} ms`, { fixedMs: x }]),
      ["max_num_batched_tokens 4096", { maxNumBatchedTokens: 4096 }],
      ["max_num_batched_tokens 8192", { maxNumBatchedTokens: 8192 }],
      ["full-prompt admission", { admitFullPrompt: true }],
      ["request overhead 0 ms", { requestOverheadMs: 0 }],
      ...[1, 4, 8].map((w): Variant => [`${w} Envoy worker${w > 1 ? "s" : ""}`, {}, { envoyWorkers: w }]),
      ["±20% lengths (symmetric reading)", {}, { workload: { ...options.workload, rangeMode: "symmetric" } }],
    ];
    console.log(`\n${sensitivity(options, variants)}`);
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop()!)) main();
