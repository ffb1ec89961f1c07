// Calibration of the simulated engine against the seed's round-robin figures: the seed workload
// (60 concurrent, 1000-token shared prefix, ~4000 in / ~3000 out, ±20%) over five replicas of the
// `qwq-32b-4xa10` profile, with round robin, in a discrete-event run (no network, no waiting).
//
//   npx tsx bench/calibrate.ts [--num-prompts 300] [--profile qwq-32b-4xa10]
import { parseArgs } from "node:util";
import { BatchingEngine } from "../sim/batching-engine.ts";
import { VirtualClock } from "../sim/clock.ts";
import { profileNamed } from "../sim/step-model.ts";
import { formatSummary, summarize, type RequestRecord, type Summary } from "./summary.ts";
import { buildWorkload, SEED_WORKLOAD, type WorkloadRequest } from "./workload.ts";

/** The seed's published round-robin figures (ACK write-up). */
export const SEED_ROUND_ROBIN = { meanTtftMs: 2456, medianTtftMs: 1366, p99TtftMs: 23509, meanTpotMs: 63.5, outputTokPerS: 916 };

export interface ClosedLoopOptions { replicas: number; concurrency: number; profile: string }

/** Runs `requests` through `replicas` engines with `concurrency` closed-loop clients, round robin. */
export function runClosedLoop(requests: WorkloadRequest[], o: ClosedLoopOptions): { summary: Summary; records: RequestRecord[]; preemptions: number } {
  const clock = new VirtualClock();
  const engines = Array.from({ length: o.replicas }, () => new BatchingEngine(profileNamed(o.profile), clock));
  const records: RequestRecord[] = [];
  let next = 0;
  let turn = 0;
  const sendNext = (): void => {
    const req = requests[next++];
    if (!req) return;
    const engine = engines[turn++ % engines.length]!;
    const record: RequestRecord = {
      index: req.index, ok: false, shed: false, status: 0, startMs: clock.now(), ttftMs: 0, itlMs: [], e2eMs: 0,
      inputTokens: req.tokens.length, outputTokens: 0,
    };
    let last = 0;
    engine.submit({ id: String(req.index), model: "qwq-32b", promptTokens: req.tokens, maxTokens: req.maxTokens }, {
      onToken: (i) => {
        const now = clock.now();
        if (i === 0) record.ttftMs = now - record.startMs;
        else record.itlMs.push(now - last);
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
  const preemptions = engines.reduce((n, e) => n + e.stats().preemptions, 0);
  return { summary: summarize(records, clock.now()), records, preemptions };
}

function deviation(actual: number, target: number): string {
  const pct = ((actual - target) / target) * 100;
  return `${pct >= 0 ? "+" : ""}${pct.toFixed(1)}%`;
}

function main(): void {
  const { values } = parseArgs({ options: {
    "num-prompts": { type: "string", default: "300" },
    profile: { type: "string", default: "qwq-32b-4xa10" },
    replicas: { type: "string", default: "5" },
    concurrency: { type: "string", default: "60" },
  } });
  const requests = buildWorkload({ ...SEED_WORKLOAD, numPrompts: Number(values["num-prompts"]) });
  const started = performance.now();
  const { summary, preemptions } = runClosedLoop(requests, { replicas: Number(values.replicas), concurrency: Number(values.concurrency), profile: values.profile });
  console.log(formatSummary(`simulated round robin (${values.profile})`, summary));
  const seed = SEED_ROUND_ROBIN;
  console.log(`\npreemptions: ${preemptions}; simulated in ${((performance.now() - started) / 1000).toFixed(1)} s of wall time\n`);
  console.log("| metric | seed (round robin) | simulated | deviation |\n|---|---|---|---|");
  const rows: Array<[string, number, number]> = [
    ["mean TTFT (ms)", seed.meanTtftMs, summary.ttft.mean],
    ["median TTFT (ms)", seed.medianTtftMs, summary.ttft.median],
    ["P99 TTFT (ms)", seed.p99TtftMs, summary.ttft.p99],
    ["mean TPOT (ms)", seed.meanTpotMs, summary.tpot.mean],
    ["output throughput (tok/s)", seed.outputTokPerS, summary.outputThroughput],
  ];
  for (const [name, target, actual] of rows) console.log(`| ${name} | ${target} | ${actual.toFixed(1)} | ${deviation(actual, target)} |`);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop()!)) main();
