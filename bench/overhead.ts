// Two side measurements for the benchmark report, both through the same real Envoy:
//   - the filter's own cost: added latency per request on the inference route against the plain
//     route, to an instant backend, for a 4 KB and a 200 KB body (median and P99, interleaved);
//   - score freshness: how long after a replica's load changes the filter's decisions change.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Agent, request } from "undici";
import { InfergateServer } from "../extension-server/src/server.ts";
import { startSimServer, type SimServer } from "../sim/server.ts";
import { distribution, type Distribution } from "./summary.ts";
import { scratchDir } from "../test/support/scratch-dir.ts";

export interface OverheadResult { bodyBytes: number; plain: Distribution; inference: Distribution; addedMedianMs: number; addedP99Ms: number }
export interface FreshnessResult { trials: number; medianMs: number; maxMs: number; samplesMs: number[] }

const IPS = ["127.0.6.11", "127.0.6.12"];

/** A pool `instant` over Pods labelled app: instant at `ips`, and the model m on it. */
export function instantPoolYaml(ips: string[]): string {
  return `apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: instant}
spec: {targetPortNumber: 8000, selector: {app: instant}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: m}
spec: {modelName: m, criticality: Critical, poolRef: {name: instant}}
${ips.map((ip, i) => `---\napiVersion: v1\nkind: Pod\nmetadata: {name: p${i}, labels: {app: instant}}\nstatus: {podIP: ${ip}}\n`).join("")}`;
}

async function timed(dispatcher: Agent, url: string, body: string): Promise<{ ms: number; servedBy: string }> {
  const started = performance.now();
  const res = await request(url, { method: "POST", dispatcher, body, headers: { "content-type": "application/json" } });
  await res.body.text();
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
  return { ms: performance.now() - started, servedBy: String(res.headers["x-served-by"]) };
}

async function measureOverhead(plainUrl: string, inferenceUrl: string, bodyBytes: number, n: number): Promise<OverheadResult> {
  const dispatcher = new Agent({ connections: 2 });
  const body = JSON.stringify({ model: "m", prompt: "x".repeat(Math.max(0, bodyBytes - 40)), max_tokens: 1 });
  const plain: number[] = [];
  const inference: number[] = [];
  for (let i = 0; i < 20; i++) { await timed(dispatcher, plainUrl, body); await timed(dispatcher, inferenceUrl, body); } // warm-up
  for (let i = 0; i < n; i++) {
    plain.push((await timed(dispatcher, plainUrl, body)).ms);
    inference.push((await timed(dispatcher, inferenceUrl, body)).ms);
  }
  await dispatcher.close();
  const p = distribution(plain);
  const f = distribution(inference);
  return { bodyBytes: body.length, plain: p, inference: f, addedMedianMs: f.median - p.median, addedP99Ms: f.p99 - p.p99 };
}

/** Time from a replica reporting heavy load until 10 requests in a row avoid it. */
async function measureFreshness(inferenceUrl: string, sims: SimServer[], trials: number): Promise<FreshnessResult> {
  const dispatcher = new Agent({ connections: 1 });
  const body = JSON.stringify({ model: "m", prompt: "probe", max_tokens: 1 });
  const samples: number[] = [];
  for (let t = 0; t < trials; t++) {
    const target = sims[t % sims.length]!;
    await fetch(`http://${target.address}/admin/load`, { method: "POST", body: JSON.stringify({ waiting: 50, kvUsage: 0.95 }) });
    const changed = performance.now();
    let streakStart = 0;
    let streak = 0;
    while (streak < 10 && performance.now() - changed < 5000) {
      const at = performance.now();
      const { servedBy } = await timed(dispatcher, `${inferenceUrl}/v1/completions`, body);
      if (servedBy === target.address) { streak = 0; continue; }
      if (streak === 0) streakStart = at;
      streak++;
    }
    samples.push(streakStart - changed);
    await fetch(`http://${target.address}/admin/load`, { method: "POST", body: "{}" });
    await new Promise((r) => setTimeout(r, 300));
  }
  await dispatcher.close();
  const d = distribution(samples);
  return { trials, medianMs: d.median, maxMs: Math.max(...samples), samplesMs: samples };
}

export async function runSideMeasurements(n = 400): Promise<{ overhead: OverheadResult[]; freshness: FreshnessResult }> {
  const sims = await Promise.all(IPS.map((host) => startSimServer({ host, port: 8000, servedModels: ["m"], ttftMs: 0, itlMs: 0 })));
  const configPath = join(scratchDir("infergate-overhead"), "pool.yaml");
  writeFileSync(configPath, instantPoolYaml(IPS));
  const server = new InfergateServer({ source: { file: configPath }, xdsPort: 0, log: () => undefined, envoy: { adminPort: 0, plainPort: 0, inferencePort: 0, concurrency: 2, logLevel: "error" } });
  try {
    await server.start();
    const listeners = await server.envoy!.listenerAddresses();
    const url = (prefix: string) => `http://${[...listeners].find(([name]) => name.startsWith(prefix))![1]}/v1/completions`;
    const overhead = [];
    for (const size of [4 * 1024, 200 * 1024]) overhead.push(await measureOverhead(url("plain-"), url("inference-"), size, n));
    await new Promise((r) => setTimeout(r, 300)); // let the scraper settle after the load above
    const freshness = await measureFreshness(url("inference-").replace("/v1/completions", ""), sims, 10);
    return { overhead, freshness };
  } finally {
    await server.stop();
    await Promise.all(sims.map((s) => s.close()));
  }
}

export function formatSideMeasurements(r: { overhead: OverheadResult[]; freshness: FreshnessResult }): string {
  const rows = r.overhead.map((o) => `| ${(o.bodyBytes / 1024).toFixed(0)} KB | ${o.plain.median.toFixed(3)} | ${o.inference.median.toFixed(3)} | **${o.addedMedianMs.toFixed(3)}** | ${o.plain.p99.toFixed(3)} | ${o.inference.p99.toFixed(3)} | **${o.addedP99Ms.toFixed(3)}** |`);
  return [
    "## The filter's own cost",
    "",
    "Wall-clock latency per request to an instant backend, the plain route and the infergate route",
    "interleaved in the same run (milliseconds, no time scaling).",
    "",
    "| body | plain median | infergate median | added median | plain P99 | infergate P99 | added P99 |",
    "|---|---|---|---|---|---|---|",
    ...rows,
    "",
    "## Score freshness",
    "",
    `A replica starts reporting 50 waiting requests and 95% KV use. This is the time until the filter`,
    `stops choosing it (the start of 10 requests in a row sent elsewhere), over ${r.freshness.trials}`,
    `trials, with the default 50 ms scrape interval: median **${r.freshness.medianMs.toFixed(0)} ms**, max`,
    `**${r.freshness.maxMs.toFixed(0)} ms**.`,
    "",
  ].join("\n");
}

if (process.argv[1]?.endsWith("overhead.ts")) {
  void runSideMeasurements().then((r) => console.log(formatSideMeasurements(r)));
}
