// The infergate filter's added latency as Envoy's worker count grows. Each pick reads the load
// record of every other worker that routed in the last few seconds (filter/src/shared_load.ts), so
// the filter's cost per request grows with the workers that route. Two infergate stacks over the
// same two instant replicas, one Envoy with 2 workers and one with `--workers` (default 16); each
// route is used through 32 one-connection clients in turn, so every worker of each Envoy takes
// connections and routes. The four routes (each Envoy's plain and inference route) interleave, one
// request each per iteration, starting at a different route each time; the added latency is the
// median of the paired differences with the same Envoy's plain route (as bench/overhead.ts).
//
//   unshare --net bash -c 'ip link set lo up && npx tsx bench/filter-workers.ts [--workers 16] [--n 600] [--reps 3] [--wasm build/infergate.wasm]'
//
// On this machine's 2 cores, 16 worker threads share them: the plain route on the same Envoy pays
// for that too, so the difference is the filter's own.
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { InfergateServer } from "../extension-server/src/server.ts";
import { startSimServer } from "../sim/server.ts";
import { instantPoolYaml } from "./overhead.ts";
import { interleave, pairedAdded } from "./interleave.ts";
import { distribution } from "./summary.ts";
import { scratchDir } from "../test/support/scratch-dir.ts";

const IPS = ["127.0.6.41", "127.0.6.42"];
const CONNECTIONS = 32;

interface Stack { origins: { plain: string; inference: string }; workersRouting: () => Promise<number>; stop: () => Promise<void> }

async function startStack(concurrency: number, wasmPath: string | undefined): Promise<Stack> {
  const dir = scratchDir("infergate-filter-workers");
  writeFileSync(join(dir, "pools.yaml"), instantPoolYaml(IPS));
  const server = new InfergateServer({ source: { file: join(dir, "pools.yaml") }, wasmPath, xdsPort: 0, log: () => undefined, envoy: { adminPort: 0, plainPort: 0, inferencePort: 0, concurrency, logLevel: "error" } });
  const stop = async (): Promise<void> => { await server.stop(); rmSync(dir, { recursive: true, force: true }); };
  try {
    await server.start();
    const listeners = await server.envoy!.listenerAddresses();
    const origin = (prefix: string): string => `http://${[...listeners].find(([name]) => name.startsWith(prefix))![1]}`;
    // Workers with a connection (both listeners' stats share one name here: they bound port 0).
    const workersRouting = async (): Promise<number> => (await server.envoy!.admin("stats?filter=worker_"))
      .split("\n").filter((l) => /\.worker_\d+\.downstream_cx_total: [1-9]/.test(l)).length;
    return { origins: { plain: origin("plain-"), inference: origin("inference-") }, workersRouting, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** One repetition: the added median of the inference route at each worker count (ms). */
async function repetition(workers: number, n: number, wasmPath: string | undefined): Promise<{ few: number; many: number; routing: number }> {
  const few = await startStack(2, wasmPath);
  try {
    const many = await startStack(workers, wasmPath);
    try {
      const origins = { "few plain": few.origins.plain, few: few.origins.inference, "many plain": many.origins.plain, many: many.origins.inference };
      const body = JSON.stringify({ model: "m", prompt: "x".repeat(4096 - 48), max_tokens: 1 });
      // Two rounds over the connections to warm up (every worker registers), then n.
      const samples = await interleave(origins, { connections: CONNECTIONS, warmup: 2 * CONNECTIONS, n, path: "/v1/completions", body });
      const added = (route: string): number => distribution(pairedAdded(samples, route, `${route} plain`)).median;
      return { few: added("few"), many: added("many"), routing: await many.workersRouting() };
    } finally {
      await many.stop();
    }
  } finally {
    await few.stop();
  }
}

if (process.argv[1]?.endsWith("filter-workers.ts")) {
  const { values } = parseArgs({ options: { workers: { type: "string", default: "16" }, n: { type: "string", default: "600" }, reps: { type: "string", default: "3" }, wasm: { type: "string" } } });
  const workers = Number(values.workers);
  const sims = await Promise.all(IPS.map((host) => startSimServer({ host, port: 8000, servedModels: ["m"], ttftMs: 0, itlMs: 0 })));
  try {
    const reps = [];
    for (let k = 0; k < Number(values.reps); k++) {
      reps.push(await repetition(workers, Number(values.n), values.wasm));
      const r = reps.at(-1)!;
      console.error(`rep ${k + 1}: 2 workers ${r.few.toFixed(3)} ms, ${workers} workers ${r.many.toFixed(3)} ms (${r.routing} worker stats with connections)`);
    }
    const f = (xs: number[]): string => `${distribution(xs).median.toFixed(3)} [${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)}]`;
    console.log(`infergate route, 4 KB, added median (ms), median [range] over ${reps.length} repetitions of ${values.n}: 2 workers ${f(reps.map((r) => r.few))}, ${workers} workers ${f(reps.map((r) => r.many))}`);
  } finally {
    await Promise.all(sims.map((s) => s.close()));
  }
}
