// Two builds of the filter in one Envoy: what a change to the filter does to its added latency,
// with the machine's drift and the differences between Envoy processes cancelled. One infergate
// extension server and one Envoy (2 workers) over two instant replicas; the Envoy has the plain
// listener and two copies of the inference listener, one whose filter runs build A and one build
// B, each in its own Wasm VM (its own vm_id, so the two builds' workers keep their load records
// apart) with the snapshot the extension server published at start. Requests go to the three
// listeners in turn, one at a time over `--connections` connections each (enough that both workers
// route), starting at a different listener each iteration and going round the other way every
// other iteration. Each build's added latency is the median of the paired differences with the
// plain request of the same iteration (as bench/overhead.ts); B − A is the difference of the two,
// per repetition.
//
//   unshare --net bash -c 'ip link set lo up && npx tsx bench/filter-ab.ts --a A.wasm --b B.wasm [--n 600] [--reps 5] [--bytes 4096] [--text ascii] [--connections 32]'
//
// A build is a .wasm file, or `probe:MODE`: filter/probe/partial_filter.ts, built here, which does
// only part of the filter's work (MODE is callbacks, route or read; that file says what each does).
// Both builds get the live load on the load channel, as the snapshot names it. Each repetition
// starts a fresh Envoy, with A and B's listeners in alternating order. With few connections per listener the result depends on
// which worker each connection lands on (tens of µs): keep --connections well above the workers.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { InfergateServer } from "../extension-server/src/server.ts";
import { buildBootstrap } from "../extension-server/src/envoy/bootstrap.ts";
import { EnvoyProcess } from "../extension-server/src/envoy/process.ts";
import { wasmFilter } from "../extension-server/src/envoy/resources.ts";
import { loadConfigFile } from "../extension-server/src/config/file-source.ts";
import type { RoutingConfig } from "../extension-server/src/config/routing-config.ts";
import { startSimServer } from "../sim/server.ts";
import { instantPoolYaml } from "./overhead.ts";
import { bodyOf, isPromptText, PROMPT_TEXTS } from "./prompt-texts.ts";
import { interleave, pairedAdded } from "./interleave.ts";
import { distribution } from "./summary.ts";
import { scratchDir } from "../test/support/scratch-dir.ts";

const IPS = ["127.0.6.51", "127.0.6.52"];
const WARMUP = 100;
const HERE = dirname(fileURLToPath(import.meta.url));

type Json = Record<string, unknown>;
interface Repetition { a: number; b: number; bMinusA: number }

/** A build to compare: its module and the plugin configuration it gets (null: the snapshot). */
interface Build { wasm: string; configuration: string | null }

/** Builds filter/probe/partial_filter.ts into `dir` (outside the repository's asconfig.json);
 * returns the module's path. */
export function buildPartialFilter(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const wasm = join(dir, "partial_filter.wasm");
  const asc = join(HERE, "..", "node_modules", ".bin", "asc");
  execFileSync(asc, [join(HERE, "..", "filter", "probe", "partial_filter.ts"), "-O3", "--runtime", "stub", "--exportStart", "_initialize", "--use", "abort=", "-o", wasm], { cwd: dir, stdio: "inherit" });
  return wasm;
}

/** A .wasm file, or `probe:MODE` (the partial filter, configured for MODE; `probe` builds it). */
function buildOf(spec: string, probe: () => string): Build {
  if (!spec.startsWith("probe:")) return { wasm: resolve(spec), configuration: null };
  const mode = spec.slice("probe:".length);
  return { wasm: probe(), configuration: mode === "callbacks" ? mode : `${mode} ${IPS[0]}:8000 default/instant` };
}

/** The bootstrap's inference listener with its filter replaced by `build`, in VM `vmId`. */
function inferenceCopy(listener: Json, name: string, build: Build, vmId: string, snapshot: string): Json {
  const copy = structuredClone(listener) as { name: string; address: { socket_address: { port_value: number } }; filter_chains: Array<{ filters: Array<{ typed_config: { http_filters: Json[]; stat_prefix: string } }> }> };
  copy.name = name;
  copy.address.socket_address.port_value = 0;
  const hcm = copy.filter_chains[0]!.filters[0]!.typed_config;
  hcm.stat_prefix = name;
  const filter = wasmFilter({ wasmPath: build.wasm, snapshot: build.configuration ?? snapshot }) as { config: { vm_config: { vm_id: string } } };
  filter.config.vm_config.vm_id = vmId;
  const at = hcm.http_filters.findIndex((f) => f.config_discovery !== undefined && (f.config_discovery as { type_urls: string[] }).type_urls.some((u) => u.endsWith(".wasm.v3.Wasm")));
  if (at < 0) throw new Error("the inference listener has no Wasm filter");
  hcm.http_filters[at] = { name: `infergate-${vmId}`, typed_config: filter };
  return copy as unknown as Json;
}

interface Options { n: number; connections: number; body: string; config: RoutingConfig }

async function repetition(server: InfergateServer, builds: { a: Build; b: Build }, o: Options, swap: boolean): Promise<Repetition> {
  const bootstrap = buildBootstrap({
    listenAddress: "127.0.0.1", adminPort: 0, plainPort: 0, inferencePort: 0, xdsAddress: "127.0.0.1", xdsPort: server.xdsPort,
    wasmPath: builds.a.wasm, snapshot: server.snapshot, config: o.config,
  }) as { static_resources: { listeners: Json[] } };
  const listeners = bootstrap.static_resources.listeners;
  const inference = listeners.find((l) => String(l.name).startsWith("inference-"))!;
  const copies = (swap ? (["b", "a"] as const) : (["a", "b"] as const)).map((k) => inferenceCopy(inference, `build-${k}`, builds[k], `ab-${k}`, server.snapshot));
  bootstrap.static_resources.listeners = [listeners.find((l) => String(l.name).startsWith("plain-"))!, ...copies];
  const envoy = await EnvoyProcess.start({ bootstrap, concurrency: 2, logLevel: "error" });
  try {
    const addresses = await envoy.listenerAddresses();
    const origin = (prefix: string): string => `http://${[...addresses].find(([name]) => name.startsWith(prefix))![1]}`;
    const routes: Record<string, string> = { plain: origin("plain-"), a: origin("build-a"), b: origin("build-b") };
    const samples = await interleave(routes, { connections: o.connections, warmup: WARMUP, n: o.n, path: "/v1/completions", body: o.body, alternate: true });
    const added = (route: string): number => distribution(pairedAdded(samples, route, "plain")).median;
    const a = added("a");
    const b = added("b");
    return { a, b, bMinusA: b - a };
  } finally {
    await envoy.stop();
  }
}

if (process.argv[1]?.endsWith("filter-ab.ts")) {
  const { values } = parseArgs({ options: {
    a: { type: "string" }, b: { type: "string" }, n: { type: "string", default: "600" }, reps: { type: "string", default: "5" },
    bytes: { type: "string", default: "4096" }, text: { type: "string", default: "ascii" }, connections: { type: "string", default: "32" },
  } });
  if (!values.a || !values.b) throw new Error("--a and --b name the two filter builds (.wasm)");
  const text = values.text!;
  if (!isPromptText(text)) throw new Error(`--text must be one of ${Object.keys(PROMPT_TEXTS).join(", ")}`);
  const body = bodyOf(Number(values.bytes), '{"model":"m","prompt":"', text, '","max_tokens":1}').toString("utf8");
  const sims = await Promise.all(IPS.map((host) => startSimServer({ host, port: 8000, servedModels: ["m"], ttftMs: 0, itlMs: 0 })));
  const dir = scratchDir("infergate-filter-ab");
  const configPath = join(dir, "pool.yaml");
  let probe: string | undefined;
  const probeWasm = (): string => (probe ??= buildPartialFilter(join(dir, "probe")));
  const builds = { a: buildOf(values.a, probeWasm), b: buildOf(values.b, probeWasm) };
  writeFileSync(configPath, instantPoolYaml(IPS));
  const server = new InfergateServer({ source: { file: configPath }, xdsPort: 0, log: () => undefined });
  try {
    await server.start();
    const config = loadConfigFile(configPath);
    const reps: Repetition[] = [];
    for (let k = 0; k < Number(values.reps); k++) {
      const r = await repetition(server, builds, { n: Number(values.n), connections: Number(values.connections), body, config }, k % 2 === 1);
      reps.push(r);
      console.error(`rep ${k + 1}: A ${r.a.toFixed(3)} ms, B ${r.b.toFixed(3)} ms, B − A ${(r.bMinusA * 1000).toFixed(1)} µs`);
    }
    const f = (xs: number[], scale = 1, digits = 3): string => `${(distribution(xs).median * scale).toFixed(digits)} [${(Math.min(...xs) * scale).toFixed(digits)}–${(Math.max(...xs) * scale).toFixed(digits)}]`;
    console.log(`${Buffer.byteLength(body)}-byte body (${text}), added median (ms), median [range] over ${reps.length} repetitions of ${values.n}: A ${f(reps.map((r) => r.a))}, B ${f(reps.map((r) => r.b))}; B − A ${f(reps.map((r) => r.bMinusA), 1000, 1)} µs`);
  } finally {
    await server.stop();
    await Promise.all(sims.map((s) => s.close()));
  }
}
