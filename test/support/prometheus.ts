// A real Prometheus for tests: its own configuration and data directory in a temporary folder,
// listening on loopback, stopped (with the data) by `stop()`. Queries go through its HTTP API.
import { spawn } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { waitFor } from "./stack.ts";
import { scratchDir } from "./scratch-dir.ts";

export interface Sample { metric: Record<string, string>; value: number }

export interface PrometheusProcess {
  url: string;
  /** An instant query at the current time (GET /api/v1/query): the vector's samples. */
  query(expr: string): Promise<Sample[]>;
  /** GET /api/v1/<path>: the `data` of a successful answer. */
  api<T>(path: string): Promise<T>;
  /** What Prometheus logged, for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

export async function startPrometheus(opts: { bin: string; port: number; config: object }): Promise<PrometheusProcess> {
  const dir = scratchDir("infergate-prometheus");
  const configFile = join(dir, "prometheus.yaml");
  writeFileSync(configFile, toYaml(opts.config));
  const child = spawn(opts.bin, [
    `--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${opts.port}`, "--log.level=warn",
  ], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const collect = (c: Buffer): void => { if (output.length < 200_000) output += c.toString(); };
  child.stdout!.on("data", collect);
  child.stderr!.on("data", collect);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const url = `http://127.0.0.1:${opts.port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}/api/v1/${path}`);
    const body = await res.json() as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`${path}: ${body.error ?? res.status}`);
    return body.data;
  };
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited ${child.exitCode}:\n${output}`);
      return (await fetch(`${url}/-/ready`).catch(() => undefined))?.status === 200;
    }, 30_000, 100);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url, api, stop, log: () => output,
    async query(expr) {
      const data = await api<{ resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> }>(`query?query=${encodeURIComponent(expr)}`);
      if (data.resultType !== "vector") throw new Error(`${expr}: a ${data.resultType}, not a vector`);
      return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
  };
}
