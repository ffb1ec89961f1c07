// The EPP's own cost: added latency per request of Envoy's EPP route (ext_proc to the Gateway API
// Inference Extension's endpoint picker v1.5.0) over a plain Envoy route to the same replicas, with
// an instant backend. The method is bench/overhead.ts's (which measures the infergate filter the
// same way), so the two are comparable: the same simulator with ttftMs 0 and itlMs 0, the same
// request (`/v1/completions`, max_tokens 1, a 4 KB and a 200 KB body), one request at a time over
// a 2-connection keep-alive pool, 20 warm-up pairs, then n pairs with the two routes interleaved.
// Repeated `--reps` times (a fresh stack each time); the summary is the median over repetitions of
// each repetition's median and P99, with the range over repetitions.
//
//   npx tsx bench/peers/epp-latency.ts [--n 400] [--reps 3] [--secure-serving true|false] [--infergate]
//
// Run it in a private network namespace (the EPP binds its ports on every interface):
//   unshare --net bash -c 'ip link set lo up && npx tsx bench/peers/epp-latency.ts'
// Build first, outside the namespace: bash scripts/build-epp.sh && bash scripts/build-kube-apiserver.sh
// (or set EPP_BIN, EPP_MODULE_DIR, KUBE_APISERVER_BIN, ETCD_BIN).
// --infergate also runs bench/overhead.ts after each repetition, for a side-by-side on the same
// machine state.
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { Agent, request } from "undici";
import { startSimServer } from "../../sim/server.ts";
import { distribution, type Distribution } from "../summary.ts";
import { EPP_VERSION, startGieEpp } from "./gie-epp.ts";

export interface EppOverhead { bodyBytes: number; plain: Distribution; epp: Distribution; addedMedianMs: number; addedP99Ms: number }

const IPS = ["127.0.6.21", "127.0.6.22"];
const SIZES = [4 * 1024, 200 * 1024];

async function timed(dispatcher: Agent, url: string, body: string): Promise<number> {
  const started = performance.now();
  const res = await request(url, { method: "POST", dispatcher, body, headers: { "content-type": "application/json" } });
  await res.body.text();
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode} from ${url}`);
  return performance.now() - started;
}

/** bench/overhead.ts's measureOverhead, with the EPP route in place of the infergate route. */
export async function measureEppOverhead(plainUrl: string, eppUrl: string, bodyBytes: number, n: number): Promise<EppOverhead> {
  const dispatcher = new Agent({ connections: 2 });
  const body = JSON.stringify({ model: "m", prompt: "x".repeat(Math.max(0, bodyBytes - 40)), max_tokens: 1 });
  const plain: number[] = [];
  const epp: number[] = [];
  for (let i = 0; i < 20; i++) { await timed(dispatcher, plainUrl, body); await timed(dispatcher, eppUrl, body); } // warm-up
  for (let i = 0; i < n; i++) {
    plain.push(await timed(dispatcher, plainUrl, body));
    epp.push(await timed(dispatcher, eppUrl, body));
  }
  await dispatcher.close();
  const p = distribution(plain);
  const e = distribution(epp);
  return { bodyBytes: body.length, plain: p, epp: e, addedMedianMs: e.median - p.median, addedP99Ms: e.p99 - p.p99 };
}

/** One repetition: a fresh EPP stack (API server, EPP, Envoy) and fresh replicas. */
export async function runEppOverhead(n: number, secureServing: boolean): Promise<EppOverhead[]> {
  const sims = await Promise.all(IPS.map((host) => startSimServer({ host, port: 8000, servedModels: ["m"], ttftMs: 0, itlMs: 0 })));
  try {
    const peer = await startGieEpp({ replicas: sims.map((s) => s.address), secureServing });
    try {
      const out: EppOverhead[] = [];
      for (const size of SIZES) out.push(await measureEppOverhead(`${peer.plainUrl}/v1/completions`, `${peer.url}/v1/completions`, size, n));
      return out;
    } finally {
      await peer.stop();
    }
  } finally {
    await Promise.all(sims.map((s) => s.close()));
  }
}

const median = (xs: number[]): number => distribution(xs).median;
const f = (x: number): string => x.toFixed(3);
const range = (xs: number[]): string => `${f(Math.min(...xs))}–${f(Math.max(...xs))}`;

export function formatEppOverhead(reps: EppOverhead[][], label = "EPP"): string {
  const rows = SIZES.map((_, i) => {
    const r = reps.map((rep) => rep[i]!);
    const kb = (r[0]!.bodyBytes / 1024).toFixed(0);
    return `| ${kb} KB | ${f(median(r.map((x) => x.plain.median)))} | ${f(median(r.map((x) => x.epp.median)))} | **${f(median(r.map((x) => x.addedMedianMs)))}** (${range(r.map((x) => x.addedMedianMs))}) | ${f(median(r.map((x) => x.plain.p99)))} | ${f(median(r.map((x) => x.epp.p99)))} | **${f(median(r.map((x) => x.addedP99Ms)))}** (${range(r.map((x) => x.addedP99Ms))}) |`;
  });
  const perRep = reps.map((rep, k) => `| ${k + 1} | ${rep.map((o) => `${f(o.addedMedianMs)} / ${f(o.addedP99Ms)}`).join(" | ")} |`);
  return [
    `| body | plain median | ${label} median | added median (range) | plain P99 | ${label} P99 | added P99 (range) |`,
    "|---|---|---|---|---|---|---|",
    ...rows,
    "",
    `Medians over ${reps.length} repetitions (milliseconds); the range is over repetitions. Per repetition, added median / added P99:`,
    "",
    `| rep | ${SIZES.map((s) => `${s / 1024} KB`).join(" | ")} |`,
    `|---|${SIZES.map(() => "---").join("|")}|`,
    ...perRep,
  ].join("\n");
}

// (Not named *overhead.ts: bench/overhead.ts runs its own main when argv[1] ends so.)
if (process.argv[1]?.endsWith("epp-latency.ts")) {
  const { values } = parseArgs({ options: {
    n: { type: "string", default: "400" },
    reps: { type: "string", default: "3" },
    "secure-serving": { type: "string", default: "true" },
    infergate: { type: "boolean", default: false },
  } });
  const n = Number(values.n);
  const reps = Number(values.reps);
  const secureServing = values["secure-serving"] !== "false";
  const epp: EppOverhead[][] = [];
  const infergate: Array<Array<{ bodyBytes: number; plain: Distribution; inference: Distribution; addedMedianMs: number; addedP99Ms: number }>> = [];
  const load: number[] = [];
  for (let k = 0; k < reps; k++) {
    load.push(loadavg()[0]!);
    epp.push(await runEppOverhead(n, secureServing));
    console.error(`rep ${k + 1}/${reps}: EPP added median ${epp.at(-1)!.map((o) => f(o.addedMedianMs)).join(" / ")} ms`);
    if (values.infergate) {
      const { runSideMeasurements } = await import("../overhead.ts");
      infergate.push((await runSideMeasurements(n)).overhead);
      console.error(`rep ${k + 1}/${reps}: infergate added median ${infergate.at(-1)!.map((o) => f(o.addedMedianMs)).join(" / ")} ms`);
    }
  }
  console.log(`## EPP ${EPP_VERSION} overhead (ext_proc TLS ${secureServing ? "on" : "off"}), n=${n} pairs per size, ${reps} repetitions`);
  console.log(`${cpus().length} CPUs, 1-minute load average at the start of each repetition: ${load.map((l) => l.toFixed(2)).join(", ")}\n`);
  console.log(formatEppOverhead(epp));
  if (values.infergate) {
    console.log("\n## infergate filter overhead (bench/overhead.ts), after each EPP repetition\n");
    console.log(formatEppOverhead(infergate.map((rep) => rep.map((o) => ({ ...o, epp: o.inference }))), "infergate"));
  }
}
