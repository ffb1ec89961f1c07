// Fault scenarios through a real Envoy running the real filter, shared by the bounded CI test
// (test/integration/faults.test.ts) and the long reliability report (bench/reliability.ts):
//   - the extension server SIGKILLed under steady load, then restarted;
//   - a replica SIGKILLed under load;
//   - thousands of snapshot pushes while traffic flows, with Envoy's memory before and after.
// Every load loop is bounded in time and stops by itself.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { Agent, request } from "undici";
import { parseRoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import { FILTER_NAME } from "../../extension-server/src/contract.ts";
import { buildBootstrap } from "../../extension-server/src/envoy/bootstrap.ts";
import { EnvoyProcess } from "../../extension-server/src/envoy/process.ts";
import { DEFAULT_WASM_PATH } from "../../extension-server/src/server.ts";
import { startSimServer, type SimServer } from "../../sim/server.ts";
import { chatPoolYaml, metricSamples, setReplicaLoad, SIM_PORT, startStack, waitFor } from "./stack.ts";
import { scratchDir } from "./scratch-dir.ts";

const REPO = new URL("../..", import.meta.url).pathname;

/** A port nobody listens on right now (for processes that must be restarted on the same port). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Starts a child process and resolves once a line of its output contains `ready`. */
async function startChild(args: string[], ready: string, timeoutMs = 60_000): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const collect = (c: Buffer): void => { if (out.length < 100_000) out += c.toString(); };
  child.stdout!.on("data", collect);
  child.stderr!.on("data", collect);
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`${args.join(" ")} exited ${child.exitCode}:\n${out}`);
      return out.includes(ready);
    }, timeoutMs, 50);
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  return child;
}

/** A simulated replica in its own process, so it can die the way a crashed server does. */
export function startReplicaProcess(host: string, model: string, opts: { ttftMs?: number; itlMs?: number } = {}): Promise<ChildProcess> {
  return startChild(["sim/main.ts", "--host", host, "--port", String(SIM_PORT), "--served-model-name", model,
    "--ttft-ms", String(opts.ttftMs ?? 1), "--itl-ms", String(opts.itlMs ?? 0)], "sim listening");
}

export interface LoadRecord { startMs: number; endMs: number; status: number; servedBy: string; error?: string }
export interface LoadReport { sent: number; failed: number; failures: string[]; records: LoadRecord[] }

/**
 * `concurrency` clients send completions back to back to `url` until `stop()` or `maxMs`. A
 * failure is any answer but 200, or a connection error.
 */
export function steadyLoad(url: string, opts: { concurrency: number; maxMs: number; model: string; maxTokens?: number }): { stop(): Promise<LoadReport> } {
  const dispatcher = new Agent({ connections: opts.concurrency, pipelining: 0 });
  const records: LoadRecord[] = [];
  const started = performance.now();
  let stopped = false;
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; !stopped && performance.now() - started < opts.maxMs; i++) {
      const startMs = performance.now();
      try {
        const res = await request(`${url}/v1/completions`, {
          method: "POST", dispatcher, headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: opts.model, prompt: `worker ${w} request ${i}`, max_tokens: opts.maxTokens ?? 1, stream: (opts.maxTokens ?? 1) > 1 }),
        });
        const text = await res.body.text();
        records.push({ startMs, endMs: performance.now(), status: res.statusCode, servedBy: String(res.headers["x-served-by"] ?? ""), ...(res.statusCode !== 200 ? { error: text.slice(0, 200) } : {}) });
      } catch (err) {
        records.push({ startMs, endMs: performance.now(), status: 0, servedBy: "", error: (err as Error).message });
      }
    }
  };
  const workers = Array.from({ length: opts.concurrency }, (_, w) => worker(w));
  return {
    async stop() {
      stopped = true;
      await Promise.all(workers);
      await dispatcher.close();
      const failures = records.filter((r) => r.status !== 200);
      return { sent: records.length, failed: failures.length, failures: failures.slice(0, 10).map((f) => `${f.status} ${f.error}`), records };
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface ControlPlaneKillResult {
  load: LoadReport;
  /** Requests answered while the extension server was down. */
  servedWhileDown: number;
  /** From the restarted server listening to Envoy applying a configuration edit it pushed (Envoy
   * reconnects with its own backoff). */
  resumeMs: number;
  /** From the restarted server listening to a filter having applied a load from it: the load
   * channel reopened (by traffic, after the filter's back-off). */
  loadResumeMs: number;
}

/**
 * The extension server (its own process, serving xDS only) is SIGKILLed under steady load; Envoy
 * (run here, from the bootstrap the server's configuration gives) keeps routing on its last
 * snapshot; a new server on the same port then pushes an edit, which Envoy applies.
 */
export async function controlPlaneKill(opts: { loadMs: number; downMs: number; concurrency: number }): Promise<ControlPlaneKillResult> {
  const ips = ["127.0.11.11", "127.0.11.12"];
  const dir = scratchDir("infergate-faults");
  const configPath = join(dir, "pool.yaml");
  const write = (text: string): void => { writeFileSync(`${configPath}.tmp`, text); renameSync(`${configPath}.tmp`, configPath); };
  // Two models on the pool; the edit below moves `moving` from one target to the other.
  const yaml = (target: string): string => `${chatPoolYaml(ips, "llm")}---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: moving}
spec: {modelName: moving, poolRef: {name: pool}, targetModels: [{name: ${target}, weight: 1}]}
`;
  write(yaml("llm"));
  const sims: SimServer[] = await Promise.all(ips.map((ip) => startSimServer({ host: ip, port: SIM_PORT, servedModels: ["llm", "llm-next"], ttftMs: 1, itlMs: 0 })));
  const [xdsPort, metricsPort, debugPort] = [await freePort(), await freePort(), await freePort()];
  const serverArgs = ["extension-server/src/main.ts", "standalone", "--config", configPath, "--no-envoy", "--xds-port", String(xdsPort), "--metrics-port", String(metricsPort), "--debug-port", String(debugPort)];
  let server = await startChild(serverArgs, "infergate: xDS on");
  let envoy: EnvoyProcess | undefined;
  try {
    const snapshot = await (await fetch(`http://127.0.0.1:${debugPort}/snapshot`)).text();
    envoy = await EnvoyProcess.start({
      bootstrap: buildBootstrap({
        listenAddress: "127.0.0.1", adminPort: 0, plainPort: 0, inferencePort: 0, xdsAddress: "127.0.0.1", xdsPort,
        wasmPath: DEFAULT_WASM_PATH, snapshot, config: parseRoutingConfig(readFileSync(configPath, "utf8"), configPath),
      }),
    });
    const url = `http://${[...(await envoy.listenerAddresses())].find(([n]) => n.startsWith("inference-"))![1]}`;
    const served = async (model: string): Promise<string> => {
      const res = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model, prompt: "x", max_tokens: 1 }) });
      return res.status === 200 ? ((await res.json()) as { model: string }).model : `HTTP ${res.status}`;
    };
    await waitFor(async () => (await served("moving")) === "llm", 10_000);
    const load = steadyLoad(url, { concurrency: opts.concurrency, maxMs: opts.loadMs + opts.downMs + 30_000, model: "llm" });
    await sleep(opts.loadMs / 2);
    server.kill("SIGKILL");
    const killedAt = performance.now();
    await sleep(opts.downMs);
    const restartedAt = performance.now();
    // Loads the filters applied so far (the counter sums Envoy's threads); the restarted server's
    // first load is new to each of them (a new server never repeats a load version).
    const applied = async (): Promise<number> => Number(/^wasmcustom\.infergate\.load_applied_total: (\d+)$/m.exec(await envoy!.admin("stats?filter=load_applied"))?.[1] ?? 0);
    const appliedBefore = await applied();
    server = await startChild(serverArgs, "infergate: xDS on");
    const listening = performance.now();
    const loadResumed = waitFor(async () => (await applied()) > appliedBefore, 20_000, 20).then(() => performance.now() - listening);
    write(yaml("llm-next"));
    await waitFor(async () => (await served("moving")) === "llm-next", 20_000, 20);
    const resumeMs = performance.now() - listening;
    const loadResumeMs = await loadResumed;
    await sleep(opts.loadMs / 2);
    const report = await load.stop();
    return { load: report, servedWhileDown: report.records.filter((r) => r.status === 200 && r.startMs > killedAt && r.endMs < restartedAt).length, resumeMs, loadResumeMs };
  } finally {
    server.kill("SIGKILL");
    await envoy?.stop();
    await Promise.all(sims.map((s) => s.close()));
  }
}

export interface ReplicaKillResult {
  load: LoadReport;
  /** Requests the dead replica was serving when it died (Envoy's rq_active for it). */
  inFlightAtKill: number;
  /** Failed requests that a client sent after the kill (they must all have been retried). */
  failedAfterKill: number;
  /** The last connection attempt to the dead replica, after the kill (how long until traffic moved). */
  lastAttemptMs: number;
  /** Connection attempts to it after the kill (each was retried on the next listed endpoint). */
  attemptsAfterKill: number;
}

/**
 * A replica (its own process) is SIGKILLed while `concurrency` clients stream completions
 * through the pool. Only requests already on it may fail; Envoy's per-endpoint stats tell when
 * the last request was sent to it.
 */
export async function replicaKillUnderLoad(opts: { concurrency: number; loadMs: number; scrapeIntervalMs?: number }): Promise<ReplicaKillResult> {
  const live = ["127.0.12.11", "127.0.12.12"];
  const doomed = "127.0.12.13";
  const replica = await startReplicaProcess(doomed, "llm", { ttftMs: 5, itlMs: 10 });
  const scrape = opts.scrapeIntervalMs ?? 50;
  const stack = await startStack(`${chatPoolYaml([...live, doomed])}---
apiVersion: infergate.io/v1alpha1
kind: InfergateConfig
metadata: {name: c}
spec: {scrape: {intervalMs: ${scrape}}}
`, live.map((ip) => ({ ip, models: ["llm"], ttftMs: 5, itlMs: 10 })));
  const envoy = stack.server.envoy!;
  const stat = async (name: string): Promise<number> => {
    const text = await envoy.admin("stats/prometheus?filter=cluster.infergate");
    return metricSamples(text, name).filter((s) => s.labels.includes("-picked") && s.labels.includes(`${doomed}:${SIM_PORT}`)).reduce((n, s) => n + s.value, 0);
  };
  try {
    await waitFor(async () => /endpoint 127\.0\.12\.13:8000 /.test(stack.server.snapshot), 5000);
    const load = steadyLoad(stack.inferenceUrl, { concurrency: opts.concurrency, maxMs: opts.loadMs + 30_000, model: "llm", maxTokens: 20 });
    await sleep(opts.loadMs / 2);
    // Requests on it when it dies: Envoy's count just before the kill, or just after it if more
    // started in between (Envoy takes a moment to see the connections reset).
    const activeBefore = await stat("envoy_cluster_endpoint_rq_active");
    replica.kill("SIGKILL");
    const killedAt = performance.now();
    const inFlightAtKill = Math.max(activeBefore, await stat("envoy_cluster_endpoint_rq_active"));
    // Watch connection attempts to the dead replica until none has come for a while.
    const failsAtKill = await stat("envoy_cluster_endpoint_cx_connect_fail");
    let last = failsAtKill;
    let lastAttemptMs = 0;
    while (performance.now() - killedAt < opts.loadMs / 2) {
      const now = await stat("envoy_cluster_endpoint_cx_connect_fail");
      if (now > last) { last = now; lastAttemptMs = performance.now() - killedAt; }
      await sleep(5);
    }
    const report = await load.stop();
    return { load: report, inFlightAtKill, failedAfterKill: report.records.filter((r) => r.status !== 200 && r.startMs > killedAt).length, lastAttemptMs, attemptsAfterKill: last - failsAtKill };
  } finally {
    replica.kill("SIGKILL");
    await stack.stop();
  }
}

export interface PushStormResult {
  load: LoadReport;
  pushes: number;
  /** Loads the filter applied (summed over workers) and loads or configurations rejected over the storm. */
  accepted: number;
  rejected: number;
  /** New Wasm filter configurations over the storm (a push that changes only the load makes none). */
  wasmReloads: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  /** Envoy's RSS, its own heap (admin /memory: tcmalloc's heap_size) and what of it is in use
   * (allocated), every `sampleEvery` pushes. */
  samples: Array<{ pushes: number; rssMiB: number; heapMiB: number; allocatedMiB: number }>;
  seconds: number;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * `pushes` snapshot pushes while traffic flows: one replica's reported queue flips on every scrape
 * (5 ms), so every scrape changes its score and the server pushes (no rate limit). Envoy's RSS is
 * read after a warm-up of `warmup` pushes and again at the end.
 */
export async function pushStorm(opts: { pushes: number; warmup: number; concurrency: number; sampleEvery?: number }): Promise<PushStormResult> {
  const ips = ["127.0.13.11", "127.0.13.12"];
  const stack = await startStack(`${chatPoolYaml(ips)}---
apiVersion: infergate.io/v1alpha1
kind: InfergateConfig
metadata: {name: c}
spec: {scrape: {intervalMs: 5}, push: {minIntervalMs: 0}}
`, ips.map((ip) => ({ ip, models: ["llm"] })));
  const envoy = stack.server.envoy!;
  const pushed = async (): Promise<number> => metricSamples(await stack.server.metricsText(), "infergate_snapshot_pushes_total")[0]?.value ?? 0;
  // A new load reaches the filter on the load channel (the filter counts what it applies and what
  // it rejects, on every worker); a new routing snapshot, as a new Wasm filter configuration (ECDS).
  const ecdsOf = async (filter: string, stat: string): Promise<number> =>
    Number(new RegExp(`^extension_config_discovery\\.http_filter\\.${filter}\\.${stat}: (\\d+)$`, "m").exec(await envoy.admin("stats?filter=extension_config_discovery"))?.[1] ?? 0);
  const filterCount = async (counter: string): Promise<number> =>
    Number(new RegExp(`^wasmcustom\\.infergate\\.${counter}: (\\d+)$`, "m").exec(await envoy.admin("stats?filter=wasmcustom"))?.[1] ?? 0);
  const accepted = (): Promise<number> => filterCount("load_applied_total");
  const rejected = async (): Promise<number> => (await filterCount("load_rejected_total")) + (await ecdsOf(FILTER_NAME, "config_fail"));
  let flipping = true;
  const flipper = (async () => {
    for (let i = 0; flipping; i++) {
      await setReplicaLoad(`${ips[0]}:${SIM_PORT}`, { waiting: i % 2 === 0 ? 40 : 0 }).catch(() => undefined);
      await sleep(3);
    }
  })();
  const started = performance.now();
  try {
    const load = steadyLoad(stack.inferenceUrl, { concurrency: opts.concurrency, maxMs: 600_000, model: "llm" });
    const base = await pushed();
    await waitFor(async () => (await pushed()) - base >= opts.warmup, 600_000, 50);
    const rssBeforeMiB = rssMiB(envoy.pid!);
    const [acceptedBefore, rejectedBefore, wasmBefore] = [await accepted(), await rejected(), await ecdsOf(FILTER_NAME, "config_reload")];
    const samples: PushStormResult["samples"] = [];
    const sample = async (n: number): Promise<void> => {
      const memory = JSON.parse(await envoy.admin("memory")) as { heap_size?: string; allocated?: string };
      samples.push({ pushes: n, rssMiB: rssMiB(envoy.pid!), heapMiB: Number(memory.heap_size ?? NaN) / 2 ** 20, allocatedMiB: Number(memory.allocated ?? NaN) / 2 ** 20 });
    };
    await sample((await pushed()) - base);
    const every = opts.sampleEvery ?? Infinity;
    await waitFor(async () => {
      const n = (await pushed()) - base;
      if (n - samples.at(-1)!.pushes >= every) await sample(n);
      return n >= opts.pushes;
    }, 1_200_000, 100);
    flipping = false;
    await flipper;
    const report = await load.stop();
    // Let Envoy finish applying the last pushes and free the old configurations.
    await sleep(2000);
    return {
      load: report, pushes: (await pushed()) - base,
      accepted: (await accepted()) - acceptedBefore, rejected: (await rejected()) - rejectedBefore,
      wasmReloads: (await ecdsOf(FILTER_NAME, "config_reload")) - wasmBefore,
      rssBeforeMiB, rssAfterMiB: rssMiB(envoy.pid!), samples: (await sample((await pushed()) - base), samples), seconds: (performance.now() - started) / 1000,
    };
  } finally {
    flipping = false;
    await flipper;
    await stack.stop();
  }
}

/** A pushed endpoint score in a snapshot text. */
export function scoreOf(snapshot: string, address: string): number | undefined {
  const m = new RegExp(`^endpoint ${address.replace(/\./g, "\\.")} (\\d+)`, "m").exec(snapshot);
  return m ? Number(m[1]) : undefined;
}

/**
 * How long a replica's load change takes to reach the served snapshot: `trials` times, a replica
 * of `replicas` (in turn) reports a long queue, and the time until its pushed score drops is
 * taken; then its load is cleared again. Milliseconds, sorted.
 */
export async function pushLatencies(stack: { server: { snapshot: string } }, replicas: string[], trials: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < trials; i++) {
    const address = replicas[i % replicas.length]!;
    const changed = performance.now();
    await setReplicaLoad(address, { waiting: 30, kvUsage: 0.9 });
    await waitFor(async () => (scoreOf(stack.server.snapshot, address) ?? 1000) < 500, 3000, 1);
    latencies.push(performance.now() - changed);
    await setReplicaLoad(address, {});
    await waitFor(async () => scoreOf(stack.server.snapshot, address) === 1000, 3000, 1);
  }
  return latencies.sort((a, b) => a - b);
}
