// Brings up a real stack for integration tests: simulated vLLM replicas on their own loopback
// addresses, the extension server in standalone mode (xDS on an ephemeral port) and a real Envoy running
// the compiled filter. Envoy binds port 0 and the harness reads the bound ports from its admin.
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { InfergateServer } from "../../extension-server/src/server.ts";
import { startSimServer, type SimOptions, type SimServer } from "../../sim/server.ts";
import { scratchDir } from "./scratch-dir.ts";

export interface ReplicaSpec extends Partial<SimOptions> { ip: string; models: string[] }

export interface Stack {
  plainUrl: string;
  inferenceUrl: string;
  server: InfergateServer;
  replicas: SimServer[];
  configPath: string;
  /** Atomically replaces the configuration file (as an editor or a ConfigMap update would). */
  writeConfig(yaml: string): void;
  stop(): Promise<void>;
}

export const SIM_PORT = 8000;

/** Pod documents for replicas, labelled for a pool selector `app: <app>`. */
export function podsYaml(app: string, ips: string[]): string {
  return ips.map((ip, i) => `---
apiVersion: v1
kind: Pod
metadata:
  name: ${app}-${i}
  labels:
    app: ${app}
status:
  phase: Running
  podIP: ${ip}
`).join("");
}

/**
 * An InferencePool `pool` over the Pods labelled `app: llm` at `ips` (port SIM_PORT), with a Critical
 * InferenceModel `chat` whose requests go to `target`, and any more InferenceModels on the pool.
 */
export function chatPoolYaml(ips: string[], target = "llm", more: Array<{ name: string; criticality: string }> = []): string {
  const model = (name: string, criticality: string): string => `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: ${name}}
spec: {modelName: ${name}, criticality: ${criticality}, poolRef: {name: pool}, targetModels: [{name: ${target}, weight: 1}]}
`;
  return `apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: pool}
spec: {targetPortNumber: ${SIM_PORT}, selector: {app: llm}}
${model("chat", "Critical")}${more.map((m) => model(m.name, m.criticality)).join("")}${podsYaml("llm", ips)}`;
}

/** Sets the extra load a simulated replica reports (sim/server.ts `/admin/load`; `{}` clears it). */
export async function setReplicaLoad(address: string, load: Record<string, number>): Promise<void> {
  const res = await fetch(`http://${address}/admin/load`, { method: "POST", body: JSON.stringify(load) });
  if (res.status !== 200) throw new Error(`${address}/admin/load: HTTP ${res.status}`);
}

/** `metricsPort`: serve the extension server's /metrics (0: an ephemeral port; default: none).
 * `inferencePorts: "config"`: Envoy's inference listeners on the ports the pools' attach-to and the
 * HTTPRoutes' parentRefs name (default: one ephemeral listener serving everything); `inferenceUrl`
 * is then the first of them. */
export async function startStack(yaml: string, replicas: ReplicaSpec[], opts: { metricsPort?: number; inferencePorts?: "config" } = {}): Promise<Stack> {
  const dir = scratchDir("infergate-test");
  const configPath = join(dir, "pool.yaml");
  const writeConfig = (text: string): void => {
    const tmp = `${configPath}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, configPath);
  };
  writeConfig(yaml);
  const sims = await Promise.all(replicas.map((r) => startSimServer({ ttftMs: 1, itlMs: 0, ...r, host: r.ip, port: SIM_PORT, servedModels: r.models })));
  const server = new InfergateServer({
    source: { file: configPath }, xdsPort: 0, metricsPort: opts.metricsPort, log: () => undefined,
    envoy: { adminPort: 0, plainPort: 0, inferencePort: opts.inferencePorts === "config" ? undefined : 0, concurrency: 2, logLevel: "warn" },
  });
  try {
    await server.start();
  } catch (err) {
    await server.stop().catch(() => undefined);
    await Promise.all(sims.map((s) => s.close()));
    throw err;
  }
  const listeners = await server.envoy!.listenerAddresses();
  const find = (prefix: string): string => {
    const entry = [...listeners].find(([name]) => name.startsWith(prefix));
    if (!entry) throw new Error(`no ${prefix} listener in ${JSON.stringify([...listeners])}`);
    return `http://${entry[1]}`;
  };
  return {
    plainUrl: find("plain-"),
    inferenceUrl: find("inference-"),
    server, replicas: sims, configPath, writeConfig,
    async stop() {
      await server.stop();
      await Promise.all(sims.map((s) => s.close()));
    },
  };
}

export interface ChatResult { status: number; servedBy: string | null; body: any; text: string }

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<ChatResult> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown;
  try { parsed = JSON.parse(text); } catch { parsed = undefined; }
  return { status: res.status, servedBy: res.headers.get("x-served-by"), body: parsed, text };
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns the elapsed milliseconds. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 20): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (await check()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

/** The samples of one metric in a Prometheus exposition, as `{labels} value` → value. */
export function metricSamples(text: string, name: string): Array<{ labels: string; value: number }> {
  const out: Array<{ labels: string; value: number }> = [];
  for (const line of text.split("\n")) {
    const m = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (m) out.push({ labels: m[1] ?? "", value: Number(m[2]) });
  }
  return out;
}
