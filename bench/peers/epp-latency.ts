// The endpoint picker callout's cost beside the infergate filter's: added latency per request over
// a plain route, with an instant backend, in one interleaved run. Five routes to the same two
// simulated replicas (ttftMs 0, itlMs 0), per repetition a fresh stack:
//   - the Inference Extension's reference wiring (bench/peers/gie-epp.ts): Envoy calls the EPP
//     v1.5.0 over ext_proc (FULL_DUPLEX_STREAMED both ways) and routes through ORIGINAL_DST
//     ("gie-epp"), beside that Envoy's plain round-robin route ("gie plain");
//   - infergate standalone, configured with no endpoint picker: the infergate filter alone
//     ("infergate"), as a user without an EPP runs it, beside that Envoy's plain route ("infergate plain");
//   - infergate standalone with a second pool whose endpointPickerRef names the same EPP: the
//     infergate filter then the EPP over ext_proc, as envoy/endpoint-picker.ts wires it ("infergate
//     + EPP"), and the infergate filter alone on the first pool, whose listener now also carries
//     the picker's ext_proc filter, idle on that route ("infergate, picker beside"), beside that
//     Envoy's plain route ("picker stack plain").
// Each route's added latency is against the plain route of its own Envoy. The request is
// bench/overhead.ts's (`/v1/completions`, max_tokens 1, a 4 KB and a 200 KB body), one at a time,
// each route over its own 2-connection keep-alive pool (both connections get used), or with
// `--connections C` over C connections of its own taken in turn; every
// iteration sends one request to each route, starting at a different route each time. 20 warm-up
// iterations, then n. Which Envoy worker a connection lands on moves a route's added latency by
// tens of µs (bench/filter-ab.ts measures it), so with two connections per route part of the spread
// between repetitions is where the connections landed; with C well above the workers, every worker
// takes a share of each route, as under real traffic.
// "Added median" is the median of the paired differences (a route's request minus its plain
// route's request of the same iteration): on a shared machine the load drifts, and pairing cancels
// the drift that a difference of two medians keeps (the infergate filter adds ~0.2 ms, less than
// that drift). "Added P99" is the difference of the two P99s. The summary is the median over
// repetitions, with the range over repetitions; the ratio is gie-epp added / infergate added, of
// those medians.
//
//   npx tsx bench/peers/epp-latency.ts [--n 400] [--reps 3] [--connections C] [--secure-serving true|false] [--wasm build/infergate.wasm]
//
// Run it in a private network namespace (the EPP binds its ports on every interface):
//   unshare --net bash -c 'ip link set lo up && npx tsx bench/peers/epp-latency.ts'
// Build first, outside the namespace: bash scripts/build-epp.sh && bash scripts/build-kube-apiserver.sh
// (or set EPP_BIN, EPP_MODULE_DIR, KUBE_APISERVER_BIN, ETCD_BIN).
// (Not named *overhead.ts: bench/overhead.ts runs its own main when argv[1] ends so.)
import { rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Agent, Client, request } from "undici";
import { InfergateServer } from "../../extension-server/src/server.ts";
import { startSimServer } from "../../sim/server.ts";
import { instantPoolYaml } from "../overhead.ts";
import { distribution, type Distribution } from "../summary.ts";
import { EPP_VERSION, startGieEpp } from "./gie-epp.ts";
import { scratchDir } from "../../test/support/scratch-dir.ts";

const IPS = ["127.0.6.21", "127.0.6.22"];
const SIZES = [4 * 1024, 200 * 1024];

export const ROUTES = ["gie plain", "gie-epp", "infergate plain", "infergate", "picker stack plain", "infergate, picker beside", "infergate + EPP"] as const;
export type Route = (typeof ROUTES)[number];
/** The plain route each route's added latency is measured against (the same Envoy's). */
const BASELINE: Partial<Record<Route, Route>> = {
  "gie-epp": "gie plain", infergate: "infergate plain",
  "infergate, picker beside": "picker stack plain", "infergate + EPP": "picker stack plain",
};

/** One repetition at one body size: each route's latency distribution, and the median of its
 * paired differences with its plain route. */
export interface RouteLatencies { bodyBytes: number; routes: Record<Route, Distribution>; pairedAddedMs: Partial<Record<Route, number>> }

/** A v1 pool `instant-epp` over the Pods labelled app: instant, whose endpointPickerRef names the
 * Service `epp` at 127.0.0.1:`port` (h2c unless `tls`). */
export function pickerPoolYaml(port: number, failureMode: "FailOpen" | "FailClose", tls: boolean): string {
  return `apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: instant-epp}
spec:
  selector: {matchLabels: {app: instant}}
  targetPorts: [{number: 8000}]
  endpointPickerRef: {name: epp, port: {number: ${port}}, failureMode: ${failureMode}}
---
apiVersion: v1
kind: Service
metadata: {name: epp}
spec: {clusterIP: 127.0.0.1, ports: [{port: ${port}${tls ? "" : ", appProtocol: kubernetes.io/h2c"}}]}`;
}

/** infergate's configuration: a pool the filter alone routes (model m), and, when `eppPort` is
 * given, a v1 pool over the same Pods whose endpointPickerRef names the EPP (model m-epp). */
function infergateYaml(eppPort: number | undefined, tls: boolean): string {
  if (eppPort === undefined) return instantPoolYaml(IPS);
  return `${instantPoolYaml(IPS)}---
${pickerPoolYaml(eppPort, "FailClose", tls)}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: m-epp}
spec: {modelName: m-epp, criticality: Critical, poolRef: {name: instant-epp}}
`;
}

/** One route's way to send: a keep-alive pool, or its own connections taken in turn. */
type Sender = { agent: Agent } | { clients: Client[]; path: string };

function sender(url: string, connections: number | undefined): Sender {
  if (connections === undefined) return { agent: new Agent({ connections: 2 }) };
  const u = new URL(url);
  return { clients: Array.from({ length: connections }, () => new Client(u.origin, { pipelining: 1 })), path: u.pathname };
}

async function timed(via: Sender, url: string, body: string, i: number): Promise<number> {
  const started = performance.now();
  const options = { method: "POST" as const, body, headers: { "content-type": "application/json" } };
  const res = "agent" in via ? await request(url, { ...options, dispatcher: via.agent }) : await via.clients[i % via.clients.length]!.request({ ...options, path: via.path });
  await res.body.text();
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode} from ${url}`);
  return performance.now() - started;
}

/** Interleaves the routes, one request each per iteration, rotating which goes first. */
export async function measureRoutes(urls: Record<Route, string>, bodyBytes: number, n: number, connections?: number): Promise<RouteLatencies> {
  const prompt = "x".repeat(Math.max(0, bodyBytes - 48));
  // Each route's model: the EPP routes any model; infergate's pools each serve their own.
  const bodies: Record<Route, string> = Object.fromEntries(ROUTES.map((r) => [r, JSON.stringify({ model: r === "infergate + EPP" ? "m-epp" : "m", prompt, max_tokens: 1 })])) as Record<Route, string>;
  const senders = Object.fromEntries(ROUTES.map((r) => [r, sender(urls[r], connections)])) as Record<Route, Sender>;
  const samples = Object.fromEntries(ROUTES.map((r) => [r, [] as number[]])) as Record<Route, number[]>;
  try {
    for (let i = 0; i < 20 + n; i++) {
      for (let k = 0; k < ROUTES.length; k++) {
        const route = ROUTES[(i + k) % ROUTES.length]!;
        const ms = await timed(senders[route], urls[route], bodies[route], i);
        if (i >= 20) samples[route].push(ms);
      }
    }
  } finally {
    await Promise.all(ROUTES.flatMap((r) => { const s = senders[r]; return "agent" in s ? [s.agent.close()] : s.clients.map((c) => c.close()); }));
  }
  const paired = (route: Route): number => distribution(samples[route].map((ms, i) => ms - samples[BASELINE[route]!][i]!)).median;
  return {
    bodyBytes: bodies.infergate.length,
    routes: Object.fromEntries(ROUTES.map((r) => [r, distribution(samples[r])])) as Record<Route, Distribution>,
    pairedAddedMs: Object.fromEntries(ROUTES.filter((r) => BASELINE[r]).map((r) => [r, paired(r)])),
  };
}

/** Waits for the picker cluster's first health check (until then FailClose answers 503): the
 * picker pool's model is served through the EPP. */
async function untilThroughPicker(inferenceUrl: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await fetch(inferenceUrl, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "m-epp", prompt: "ready?", max_tokens: 1 }) });
    await res.text();
    if (res.headers.get("x-went-into-resp-headers")) return;
    if (Date.now() > deadline) throw new Error(`the infergate + EPP route never reached the EPP (last status ${res.status})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** An infergate standalone stack; with `eppPort`, its picker pool too, once that pool's route is
 * served through the EPP. */
async function startInfergate(eppPort: number | undefined, tls: boolean, wasmPath?: string): Promise<{ server: InfergateServer; urls: { plain: string; inference: string }; stop: () => Promise<void> }> {
  const dir = scratchDir("infergate-epp-latency");
  writeFileSync(join(dir, "pools.yaml"), infergateYaml(eppPort, tls));
  const server = new InfergateServer({ source: { file: join(dir, "pools.yaml") }, xdsPort: 0, log: () => undefined, wasmPath, envoy: { adminPort: 0, plainPort: 0, inferencePort: 0, concurrency: 2, logLevel: "error" } });
  const stop = async (): Promise<void> => { await server.stop(); rmSync(dir, { recursive: true, force: true }); };
  try {
    await server.start();
    const listeners = await server.envoy!.listenerAddresses();
    const url = (prefix: string): string => `http://${[...listeners].find(([name]) => name.startsWith(prefix))![1]}/v1/completions`;
    const urls = { plain: url("plain-"), inference: url("inference-") };
    if (eppPort !== undefined) await untilThroughPicker(urls.inference);
    return { server, urls, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** One repetition: fresh replicas, API server, EPP, reference Envoy and the two infergate stacks. */
export async function runRepetition(n: number, secureServing: boolean, wasmPath?: string, connections?: number): Promise<RouteLatencies[]> {
  const sims = await Promise.all(IPS.map((host) => startSimServer({ host, port: 8000, servedModels: ["m", "m-epp"], ttftMs: 0, itlMs: 0 })));
  try {
    const peer = await startGieEpp({ replicas: sims.map((s) => s.address), secureServing });
    try {
      const ig = await startInfergate(undefined, secureServing, wasmPath);
      try {
        const mixed = await startInfergate(peer.grpcPort, secureServing, wasmPath);
        try {
          const urls: Record<Route, string> = {
            "gie plain": `${peer.plainUrl}/v1/completions`, "gie-epp": `${peer.url}/v1/completions`,
            "infergate plain": ig.urls.plain, infergate: ig.urls.inference,
            "picker stack plain": mixed.urls.plain, "infergate, picker beside": mixed.urls.inference, "infergate + EPP": mixed.urls.inference,
          };
          const out: RouteLatencies[] = [];
          for (const size of SIZES) out.push(await measureRoutes(urls, size, n, connections));
          return out;
        } finally {
          await mixed.stop();
        }
      } finally {
        await ig.stop();
      }
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
const added = (r: RouteLatencies, route: Route, stat: "median" | "p99"): number =>
  stat === "median" ? r.pairedAddedMs[route]! : r.routes[route].p99 - r.routes[BASELINE[route]!].p99;

/** The comparison table and the ratio, over repetitions (reps[k][size index]). */
export function formatComparison(reps: RouteLatencies[][]): string {
  const lines: string[] = [
    "| body | route | median | added median (range) | P99 | added P99 (range) |",
    "|---|---|---|---|---|---|",
  ];
  const ratios: string[] = [];
  SIZES.forEach((_, s) => {
    const r = reps.map((rep) => rep[s]!);
    const kb = `${(r[0]!.bodyBytes / 1024).toFixed(0)} KB`;
    for (const route of ROUTES) {
      const med = f(median(r.map((x) => x.routes[route].median)));
      const p99 = f(median(r.map((x) => x.routes[route].p99)));
      if (!BASELINE[route]) { lines.push(`| ${kb} | ${route} | ${med} | | ${p99} | |`); continue; }
      const am = r.map((x) => added(x, route, "median"));
      const ap = r.map((x) => added(x, route, "p99"));
      lines.push(`| ${kb} | ${route} | ${med} | **${f(median(am))}** (${range(am)}) | ${p99} | **${f(median(ap))}** (${range(ap)}) |`);
    }
    const epp = median(r.map((x) => added(x, "gie-epp", "median")));
    const ig = median(r.map((x) => added(x, "infergate", "median")));
    const beside = median(r.map((x) => added(x, "infergate, picker beside", "median")));
    const ours = median(r.map((x) => added(x, "infergate + EPP", "median")));
    ratios.push(`- ${kb}: **${(epp / ig).toFixed(1)}×** (${f(epp)} / ${f(ig)} ms); with a picker pool beside it (idle ext_proc on the route): ${(epp / beside).toFixed(1)}× (${f(beside)} ms); infergate + EPP added / infergate added: ${(ours / ig).toFixed(1)}×`);
  });
  return [
    ...lines,
    "",
    `Milliseconds; medians over ${reps.length} repetitions, the range over repetitions. Added median: the median of paired differences with the same Envoy's plain route; added P99: the difference of the P99s.`,
    "",
    "EPP added / infergate added (the medians over repetitions of the paired added medians):",
    "",
    ...ratios,
  ].join("\n");
}

if (process.argv[1]?.endsWith("epp-latency.ts")) {
  const { values } = parseArgs({ options: {
    n: { type: "string", default: "400" },
    reps: { type: "string", default: "3" },
    "secure-serving": { type: "string", default: "true" },
    wasm: { type: "string" },
    connections: { type: "string" },
  } });
  const n = Number(values.n);
  const connections = values.connections === undefined ? undefined : Number(values.connections);
  const reps = Number(values.reps);
  const secureServing = values["secure-serving"] !== "false";
  const results: RouteLatencies[][] = [];
  const load: number[] = [];
  const started = Date.now();
  for (let k = 0; k < reps; k++) {
    load.push(loadavg()[0]!);
    results.push(await runRepetition(n, secureServing, values.wasm, connections));
    console.error(`rep ${k + 1}/${reps}: added median ${results.at(-1)!.map((r) => `${(r.bodyBytes / 1024).toFixed(0)} KB gie-epp ${f(added(r, "gie-epp", "median"))}, infergate ${f(added(r, "infergate", "median"))}, picker beside ${f(added(r, "infergate, picker beside", "median"))}, infergate + EPP ${f(added(r, "infergate + EPP", "median"))}`).join("; ")} ms`);
  }
  console.log(`## EPP ${EPP_VERSION} callout vs the infergate filter (ext_proc TLS ${secureServing ? "on" : "off"}), n=${n} per route and size, ${reps} repetitions, ${connections === undefined ? "a 2-connection keep-alive pool" : `${connections} connections`} per route`);
  console.log(`${cpus().length} CPUs, 1-minute load average at the start of each repetition: ${load.map((l) => l.toFixed(2)).join(", ")}; ${((Date.now() - started) / 1000).toFixed(0)} s in all\n`);
  console.log(formatComparison(results));
}
