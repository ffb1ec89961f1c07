// `npm run bench`: the seed's experiment on this machine. The same request sequence goes through
// a real Envoy three ways — round robin (the seed's port 8080), least-request, and infergate (the
// seed's port 8081) — against the same simulated replicas, restarted fresh for every mode; and a
// fourth, gie-epp, where the Inference Extension's endpoint picker picks (bench/peers/gie-epp-mode.ts;
// in the default modes when its binaries are built).
//
//   npm run bench -- [--quick] [--num-prompts N] [--concurrency 60] [--time-scale S] ...
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import cliProgress from "cli-progress";
import { InfergateServer } from "../extension-server/src/server.ts";
import { runLoad } from "./client.ts";
import { formatSideMeasurements, runSideMeasurements } from "./overhead.ts";
import { GIE_EPP_MODEL, gieEppUnavailable, startGieEppMode, type PeerMode } from "./peers/gie-epp-mode.ts";
import { writeReport, type ModeResult } from "./report.ts";
import { formatSummary, summarize } from "./summary.ts";
import { buildWorkload, type WorkloadOptions } from "./workload.ts";

const repo = new URL("..", import.meta.url).pathname;

interface BenchOptions extends WorkloadOptions {
  concurrency: number;
  requestRate: number;
  timeScale: number;
  profile: string;
  replicas: number;
  modes: string[];
  out: string;
}

const MODES: Record<string, { listener: string; description: string; model?: string; peer?: { start: (ips: string[]) => Promise<PeerMode>; unavailable: () => string | undefined } }> = {
  "round-robin": { listener: "plain-", description: "Envoy ROUND_ROBIN over the pool (the seed's plain route, port 8080)" },
  "least-request": { listener: "least-request-", description: "Envoy LEAST_REQUEST over the pool (what an Envoy user tries next)" },
  infergate: { listener: "inference-", description: "the infergate filter picks the endpoint (the seed's inference route, port 8081)" },
  "gie-epp": {
    listener: "inference-", model: GIE_EPP_MODEL, peer: { start: startGieEppMode, unavailable: gieEppUnavailable },
    description: "the Inference Extension's EPP v1.5.0 (default scheduler) picks, over ext_proc from the same Envoy (a v1 pool's endpointPickerRef, FailClose)",
  },
};
/** The modes a run has unless --modes says otherwise: every mode whose peer is built. */
const defaultModes = (): string => Object.keys(MODES).filter((m) => !MODES[m]!.peer?.unavailable()).join(",");

const QUICK = { "num-prompts": "24", "prefix-len": "100", "input-len": "400", "output-len": "60", concurrency: "12", replicas: "3", "time-scale": "10" };

export function parseBenchOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({ args: argv, options: {
    quick: { type: "boolean", default: false },
    "num-prompts": { type: "string", default: "200" },
    "prefix-len": { type: "string", default: "1000" },
    "input-len": { type: "string", default: "4000" },
    "output-len": { type: "string", default: "3000" },
    "range-ratio": { type: "string", default: "0.2" },
    concurrency: { type: "string", default: "60" },
    "request-rate": { type: "string", default: "inf" },
    "time-scale": { type: "string", default: "8" },
    seed: { type: "string", default: "0" },
    profile: { type: "string", default: "qwq-32b-4xa10" },
    replicas: { type: "string", default: "5" },
    modes: { type: "string", default: defaultModes() },
    out: { type: "string" },
  } });
  const given = new Set(argv.filter((a) => a.startsWith("--")).map((a) => a.slice(2).split("=")[0]));
  const pick = (name: string): string => (values.quick && !given.has(name) && name in QUICK ? QUICK[name as keyof typeof QUICK] : String(values[name as keyof typeof values]));
  const modes = pick("modes").split(",");
  for (const m of modes) if (!MODES[m]) throw new Error(`unknown mode ${m}; known: ${Object.keys(MODES).join(", ")}`);
  for (const m of modes) { const why = MODES[m]!.peer?.unavailable(); if (why) throw new Error(why); }
  return {
    numPrompts: Number(pick("num-prompts")), prefixLen: Number(pick("prefix-len")), inputLen: Number(pick("input-len")),
    outputLen: Number(pick("output-len")), rangeRatio: Number(pick("range-ratio")), seed: Number(pick("seed")), model: "qwq",
    concurrency: Number(pick("concurrency")), requestRate: pick("request-rate") === "inf" ? Infinity : Number(pick("request-rate")),
    timeScale: Number(pick("time-scale")), profile: pick("profile"), replicas: Number(pick("replicas")), modes,
    out: values.out ?? join(repo, "bench", "out", new Date().toISOString().replace(/[:.]/g, "-")),
  };
}

function poolYaml(ips: string[]): string {
  const pods = ips.map((ip, i) => `---
apiVersion: v1
kind: Pod
metadata: {name: qwq-32b-${i}, labels: {app: qwq-32b}}
status: {phase: Running, podIP: ${ip}}
`).join("");
  return `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: InferencePool
metadata: {name: reasoning-pool}
spec: {targetPortNumber: 8000, selector: {app: qwq-32b}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: InferenceModel
metadata: {name: inferencemodel-sample}
spec:
  modelName: qwq
  criticality: Critical
  poolRef: {name: reasoning-pool}
  targetModels: [{name: qwq-32b, weight: 100}]
${pods}`;
}

/** Starts the replicas in a child process (a core of their own) and waits for "ready". */
async function startReplicas(ips: string[], o: BenchOptions): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", join(repo, "bench", "replicas.ts"), "--ips", ips.join(","),
    "--profile", o.profile, "--time-scale", String(o.timeScale), "--models", "qwq-32b,qwq"], { cwd: repo, stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (c: string) => { out += c; if (out.includes("ready")) resolve(); });
    child.once("exit", (code) => reject(new Error(`replicas exited with ${code}`)));
  });
  return child;
}

/** Sums a counter over the replicas' /metrics (vLLM names). */
async function replicaCounter(ips: string[], name: string): Promise<number> {
  let total = 0;
  for (const ip of ips) {
    const text = await (await fetch(`http://${ip}:8000/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
    total += line ? Number(line.split(" ").at(-1)) : 0;
  }
  return total;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

function progress(mode: string, total: number): { tick: () => void; stop: () => void } {
  if (process.stdout.isTTY && !process.env.CI) {
    const bar = new cliProgress.SingleBar({ format: `${mode.padEnd(14)} [{bar}] {value}/{total} requests | {duration_formatted}` }, cliProgress.Presets.shades_classic);
    bar.start(total, 0);
    return { tick: () => bar.increment(), stop: () => bar.stop() };
  }
  let done = 0;
  const step = Math.max(1, Math.round(total / 10));
  return { tick: () => { if (++done % step === 0 || done === total) console.log(`${mode}: ${done}/${total} requests`); }, stop: () => undefined };
}

export async function runBench(o: BenchOptions): Promise<ModeResult[]> {
  const ips = Array.from({ length: o.replicas }, (_, i) => `127.0.3.${i + 1}`);
  const configPath = join(mkdtempSync(join(tmpdir(), "infergate-bench-")), "pool.yaml");
  const requests = buildWorkload(o);
  let replicas = await startReplicas(ips, o);
  // Peers (the EPP) start first: infergate's configuration names where they listen.
  const peers = new Map<string, PeerMode>();
  try {
    for (const m of o.modes) if (MODES[m]!.peer) peers.set(m, await MODES[m]!.peer!.start(ips));
  } catch (err) { await Promise.all([...peers.values()].map((p) => p.stop())); await stopChild(replicas); throw err; }
  writeFileSync(configPath, poolYaml(ips) + [...peers.values()].map((p) => p.yaml).join(""));
  const server = new InfergateServer({ source: { file: configPath }, xdsPort: 0, log: () => undefined,
    envoy: { adminPort: 0, plainPort: 0, inferencePort: 0, leastRequestPort: 0, concurrency: 2, logLevel: "error" } });
  const results: ModeResult[] = [];
  try {
    await server.start();
    const listeners = await server.envoy!.listenerAddresses();
    const addressOf = (mode: string) => [...listeners].find(([name]) => name.startsWith(MODES[mode]!.listener))?.[1];
    for (const [mode, peer] of peers) await peer.ready(`http://${addressOf(mode)}`);
    for (const [i, mode] of o.modes.entries()) {
      if (i > 0 || peers.size > 0) { await stopChild(replicas); replicas = await startReplicas(ips, o); } // fresh KV caches
      const address = addressOf(mode);
      if (!address) throw new Error(`no listener for ${mode}`);
      const bar = progress(mode, requests.length);
      const { records, durationMs } = await runLoad(`http://${address}`, requests, {
        concurrency: o.concurrency, requestRate: o.requestRate, timeScale: o.timeScale, model: MODES[mode]!.model ?? o.model, seed: o.seed,
        timeoutMs: Math.max(60_000, (o.outputLen * 2 * 200) / o.timeScale + 60_000), onDone: bar.tick,
      });
      bar.stop();
      const result: ModeResult = {
        name: mode, description: MODES[mode]!.description + (peers.has(mode) ? ` — ${await peers.get(mode)!.check(records.filter((r) => r.ok).length)}` : ""),
        summary: summarize(records, durationMs), records,
        preemptions: await replicaCounter(ips, "vllm:num_preemptions_total"),
        prefixHitRate: (await replicaCounter(ips, "vllm:prefix_cache_hits_total")) / Math.max(1, await replicaCounter(ips, "vllm:prefix_cache_queries_total")),
      };
      results.push(result);
      console.log(formatSummary(mode, result.summary));
    }
  } finally {
    await server.stop();
    await stopChild(replicas);
    await Promise.all([...peers.values()].map((p) => p.stop()));
  }
  return results;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const o = parseBenchOptions(argv);
  const started = Date.now();
  console.log(`seed workload: ${o.numPrompts} prompts, ${o.concurrency} concurrent, prefix ${o.prefixLen}, input ~${o.inputLen}, output ~${o.outputLen} (±${o.rangeRatio * 100}%), ${o.replicas} replicas (${o.profile}), time scale ${o.timeScale}`);
  const results = await runBench(o);
  const side = formatSideMeasurements(await runSideMeasurements(argv.includes("--quick") ? 100 : 400));
  console.log(side);
  const { out, ...options } = o;
  writeReport(out, "infergate benchmark: the seed workload", { ...options, requestRate: String(o.requestRate) }, results, "round-robin", `npm run bench -- ${argv.join(" ")}`.trim(), side);
  console.log(`\nreport: ${join(out, "report.md")} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  const incomplete = results.filter((r) => r.summary.completed + r.summary.shed < o.numPrompts);
  if (incomplete.length > 0) {
    console.error(`modes with failed requests: ${incomplete.map((r) => `${r.name} (${r.summary.failed} failed)`).join(", ")}`);
    process.exitCode = 1;
  }
}

if (process.argv[1]?.endsWith("run.ts")) void main();
