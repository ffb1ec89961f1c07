// Envoy's CPU time per request on the infergate route against the plain route, to an instant
// backend: what the filter costs Envoy, measured as CPU rather than
// latency, so that other jobs on the machine barely move it. Blocks of requests alternate between
// the routes; each block's CPU is the sum over Envoy's threads (/proc/<pid>/task/*/schedstat, ns).
//
//   unshare --net bash -c 'ip link set lo up && npx tsx bench/filter-cpu.ts [--blocks 6] [--per-block 1000] [--bytes 4096] [--text ascii] [--wasm build/infergate.wasm] [--picker] [--workers 2] [--concurrency 2]'
//
// `--text` is the prompt's text (bench/prompt-texts.ts: ascii, english, chinese, chinese-escaped).
// `--workers` is Envoy's worker count, `--concurrency` the requests in flight at once (each over its
// own connection; spread them over the workers with --concurrency well above --workers).
// `--picker` adds a pool with an endpoint picker, so the listener also carries the picker's ext_proc
// filter (as in bench/peers/epp-latency.ts), idle on the routes measured here.
// Prints, per route, the median over blocks of Envoy µs per request, and the median over block
// pairs of the difference (infergate − plain).
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Agent, request } from "undici";
import { InfergateServer } from "../extension-server/src/server.ts";
import { startSimServer } from "../sim/server.ts";
import { instantPoolYaml } from "./overhead.ts";
import { pickerPoolYaml } from "./peers/epp-latency.ts";
import { bodyOf, isPromptText, PROMPT_TEXTS } from "./prompt-texts.ts";
import { median } from "./summary.ts";
import { scratchDir } from "../test/support/scratch-dir.ts";

const IPS = ["127.0.6.31", "127.0.6.32"];

/** The pool the filter routes (model m); with `picker`, also a v1 pool whose endpointPickerRef
 * names a picker (nothing listens there: only its filter's presence on the listener is measured). */
const poolYaml = (ips: string[], picker: boolean): string => instantPoolYaml(ips) + (picker ? `---\n${pickerPoolYaml(9002, "FailOpen", false)}\n` : "");

/** CPU time of every thread of `pid` so far, in nanoseconds. */
export function processCpuNs(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try { total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]); } catch { /* thread gone */ }
  }
  return total;
}

async function block(dispatcher: Agent, url: string, body: string, n: number, concurrency: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const res = await request(url, { method: "POST", dispatcher, body, headers: { "content-type": "application/json" } });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode} from ${url}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    blocks: { type: "string", default: "6" }, "per-block": { type: "string", default: "1000" }, bytes: { type: "string", default: "4096" }, text: { type: "string", default: "ascii" },
    wasm: { type: "string" }, picker: { type: "boolean", default: false }, concurrency: { type: "string", default: "2" }, workers: { type: "string", default: "2" },
  } });
  const perBlock = Number(values["per-block"]);
  const text = values.text!;
  if (!isPromptText(text)) throw new Error(`--text must be one of ${Object.keys(PROMPT_TEXTS).join(", ")}`);
  const sims = await Promise.all(IPS.map((host) => startSimServer({ host, port: 8000, servedModels: ["m"], ttftMs: 0, itlMs: 0 })));
  const configPath = join(scratchDir("infergate-filter-cpu"), "pool.yaml");
  writeFileSync(configPath, poolYaml(IPS, values.picker!));
  const server = new InfergateServer({
    source: { file: configPath }, xdsPort: 0, log: () => undefined, wasmPath: values.wasm,
    envoy: { adminPort: 0, plainPort: 0, inferencePort: 0, concurrency: Number(values.workers), logLevel: "error" },
  });
  const dispatcher = new Agent({ connections: Number(values.concurrency) });
  try {
    await server.start();
    const pid = server.envoy!.pid!;
    const listeners = await server.envoy!.listenerAddresses();
    const url = (prefix: string) => `http://${[...listeners].find(([name]) => name.startsWith(prefix))![1]}/v1/completions`;
    const routes = { plain: url("plain-"), infergate: url("inference-") };
    const body = bodyOf(Number(values.bytes), '{"model":"m","prompt":"', text, '","max_tokens":1}').toString("utf8");
    for (const u of Object.values(routes)) await block(dispatcher, u, body, 200, Number(values.concurrency)); // warm-up
    const perRequest: Record<string, number[]> = { plain: [], infergate: [] };
    for (let b = 0; b < Number(values.blocks); b++) {
      const order = b % 2 === 0 ? ["plain", "infergate"] : ["infergate", "plain"];
      for (const route of order) {
        const before = processCpuNs(pid);
        await block(dispatcher, routes[route as keyof typeof routes], body, perBlock, Number(values.concurrency));
        perRequest[route]!.push((processCpuNs(pid) - before) / perBlock / 1000);
      }
    }
    const added = perRequest.infergate!.map((v, i) => v - perRequest.plain![i]!);
    const f = (xs: number[]) => `${median(xs).toFixed(1)} [${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}]`;
    console.log(`body ${Buffer.byteLength(body)} bytes (${text}), ${values.blocks} blocks of ${perBlock} per route, Envoy CPU µs per request (median [min–max] over blocks):`);
    console.log(`  plain     ${f(perRequest.plain!)}`);
    console.log(`  infergate ${f(perRequest.infergate!)}`);
    console.log(`  added     ${f(added)}`);
  } finally {
    await dispatcher.close();
    await server.stop();
    await Promise.all(sims.map((s) => s.close()));
  }
}

if (process.argv[1]?.endsWith("filter-cpu.ts")) void main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
