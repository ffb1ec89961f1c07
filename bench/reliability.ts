// The reliability report: the fault scenarios of test/support/faults.ts at full length, each run
// --runs times, with the figures written to bench/results/reliability.md.
//   npm run reliability [-- --runs 3 --pushes 10000]
// Run it inside a private network namespace if other services use 127.0.x.x addresses:
//   unshare --net bash -c 'ip link set lo up && npm run reliability'
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { startHostileReplicaProcess } from "../test/support/hostile-replica.ts";
import { controlPlaneKill, pushLatencies, pushStorm, replicaKillUnderLoad } from "../test/support/faults.ts";
import { chatPoolYaml, SIM_PORT, startStack } from "../test/support/stack.ts";
import { median } from "./calibrate.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "3" }, pushes: { type: "string", default: "10000" }, out: { type: "string", default: "bench/results/reliability.md" } } });
const runs = Number(values.runs);
const started = performance.now();
const log = (m: string): void => console.log(`[${((performance.now() - started) / 1000).toFixed(0)} s] ${m}`);
const fmt = (xs: number[], digits = 0): string => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

const cp: Array<Awaited<ReturnType<typeof controlPlaneKill>>> = [];
for (let i = 0; i < runs; i++) {
  cp.push(await controlPlaneKill({ loadMs: 20_000, downMs: 10_000, concurrency: 8 }));
  log(`control plane kill ${i + 1}: ${cp.at(-1)!.load.failed} of ${cp.at(-1)!.load.sent} failed`);
}

const rk: Array<Awaited<ReturnType<typeof replicaKillUnderLoad>>> = [];
for (let i = 0; i < runs; i++) {
  rk.push(await replicaKillUnderLoad({ concurrency: 16, loadMs: 6000 }));
  log(`replica kill ${i + 1}: ${rk.at(-1)!.load.failed} failed, ${rk.at(-1)!.inFlightAtKill} in flight, last attempt ${rk.at(-1)!.lastAttemptMs.toFixed(0)} ms`);
}

const ps: Array<Awaited<ReturnType<typeof pushStorm>>> = [];
for (let i = 0; i < runs; i++) {
  ps.push(await pushStorm({ pushes: Number(values.pushes), warmup: 500, concurrency: 8, sampleEvery: 2000 }));
  log(`push storm ${i + 1}: ${ps.at(-1)!.pushes} pushes, RSS ${ps.at(-1)!.rssBeforeMiB.toFixed(1)} → ${ps.at(-1)!.rssAfterMiB.toFixed(1)} MiB`);
}

/** Push latency (a replica's load change → the served snapshot) with and without a hostile replica. */
async function latencies(hostile: boolean): Promise<number[]> {
  const good = ["127.0.15.11", "127.0.15.12"];
  const bad = "127.0.15.13";
  const replica = hostile ? await startHostileReplicaProcess(bad, SIM_PORT) : undefined;
  const stack = await startStack(chatPoolYaml(hostile ? [...good, bad] : good), good.map((ip) => ({ ip, models: ["llm"] })));
  try {
    await new Promise((r) => setTimeout(r, 1000));
    return await pushLatencies(stack, good.map((ip) => `${ip}:${SIM_PORT}`), 20);
  } finally {
    await stack.stop();
    await replica?.close();
  }
}
const hostileMedians: number[] = [];
const hostileMax: number[] = [];
const calmMedians: number[] = [];
const calmMax: number[] = [];
for (let i = 0; i < runs; i++) {
  const h = await latencies(true);
  const c = await latencies(false);
  hostileMedians.push(median(h)); hostileMax.push(Math.max(...h));
  calmMedians.push(median(c)); calmMax.push(Math.max(...c));
  log(`push latency ${i + 1}: hostile median ${median(h).toFixed(0)} ms, without ${median(c).toFixed(0)} ms`);
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const report = `# Reliability under faults

Produced by \`npm run reliability -- --runs ${runs} --pushes ${values.pushes}\` (bench/reliability.ts, scenarios in
test/support/faults.ts) on this repository's 2-core machine, in ${((performance.now() - started) / 60_000).toFixed(0)} minutes. Every figure is
the median over ${runs} runs with the range in brackets. Everything runs through a real Envoy
(1.39.3, \`--concurrency 2\`) with the compiled filter and simulated replicas over real sockets.
The same scenarios, shorter, are the test \`test/integration/faults.test.ts\` in \`npm test\`.

## The extension server SIGKILLed under steady load

8 clients send completions back to back for 20 s; halfway, the extension server (its own
process, serving xDS) gets SIGKILL; 10 s later a new one starts on the same port and pushes a
configuration edit.

| requests sent | failed | served while the server was down | server up → Envoy applies its edit |
|---|---|---|---|
| ${sum(cp.map((r) => r.load.sent))} (${runs} runs) | ${sum(cp.map((r) => r.load.failed))} | ${fmt(cp.map((r) => r.servedWhileDown))} | ${fmt(cp.map((r) => r.resumeMs))} ms |

The edit waits for Envoy's xDS reconnection backoff, not for the server: the generated bootstrap
sets it to 0.25–2 s (Envoy's default grows to 30 s while the server is down; with it, this figure
was 536, 7291 and 4920 ms in three runs).

## A replica SIGKILLed under load

16 clients stream 20-token completions (about 200 ms each) across three replicas for 6 s;
halfway one replica (its own process) gets SIGKILL. The scrape interval is 50 ms.

| requests sent | failed | of them sent after the kill | on the replica when it died | last request sent to it, after the kill | requests sent to it after the kill (each retried on the next endpoint) |
|---|---|---|---|---|---|
| ${sum(rk.map((r) => r.load.sent))} (${runs} runs) | ${sum(rk.map((r) => r.load.failed))} | ${sum(rk.map((r) => r.failedAfterKill))} | ${sum(rk.map((r) => r.inFlightAtKill))} | ${fmt(rk.map((r) => r.lastAttemptMs))} ms | ${fmt(rk.map((r) => r.attemptsAfterKill))} |

Only requests the replica was already serving failed (their responses were cut). Requests sent
to it before its scrape failed were refused at connect and retried on the next listed endpoint.

## ${values.pushes} snapshot pushes while traffic flows

One replica's reported queue flips on every 5 ms scrape, with no push rate limit, so every scrape
pushes a new load on the load channel while 8 clients send completions. Envoy's resident memory is
read after 500 warm-up pushes and at the end. "Loads applied" is the filter's \`load_applied_total\`,
summed over Envoy's workers (each applies each load); "rejected" counts loads the filter rejected
and Wasm filter configurations Envoy rejected.

| pushes | loads applied | Wasm filter rebuilt | rejected | requests sent | failed | Envoy RSS before → after (MiB) | change | duration |
|---|---|---|---|---|---|---|---|---|
| ${fmt(ps.map((r) => r.pushes))} | ${fmt(ps.map((r) => r.accepted))} | ${sum(ps.map((r) => r.wasmReloads))} | ${sum(ps.map((r) => r.rejected))} | ${sum(ps.map((r) => r.load.sent))} | ${sum(ps.map((r) => r.load.failed))} | ${fmt(ps.map((r) => r.rssBeforeMiB), 1)} → ${fmt(ps.map((r) => r.rssAfterMiB), 1)} | ${fmt(ps.map((r) => 100 * (r.rssAfterMiB / r.rssBeforeMiB - 1)), 1)} % | ${fmt(ps.map((r) => r.seconds))} s |

"Loads applied" is about three per push: the filter runs in three Wasm VMs here (one per worker
and the main thread's), each holding a stream (\`infergate_load_streams\` is 3) and applying each
load. Per VM it is about 95% of "pushes", as Envoy's applied ECDS configurations were before the
load channel (9,506 of 10,012); the difference was not investigated.

Envoy's memory as the pushes went, per run (pushes: RSS / tcmalloc heap / of it allocated, MiB;
admin \`/memory\`). Memory Envoy keeps per push shows as a rising "allocated"; a heap that grows
while "allocated" stays flat is the allocator keeping freed pages.

Two earlier designs grew Envoy's memory with every push, because every push was a new Wasm plugin
configuration (the load was part of it), and Envoy makes a root context and a plugin per worker for
each. First, the filter set a tick period in every root context, and Envoy keeps a timer per root
context that ever set one: 22 → 68 MiB heap and 89 → 145 MiB RSS by 9,500 pushes. Without the tick,
Envoy still kept about 1 KB per push (proxy-wasm-cpp-host keeps each plugin's key, which contains
its configuration, in per-VM fail callbacks and a canary cache): allocated 12 → 21 MiB and RSS
+14.9% (14.5–17.4) over 10,000 pushes. The load then travelled in a native \`set_filter_state\`
filter's configuration, which Envoy frees when it is replaced; it now travels on the load channel
(README, "the snapshot travels in two parts"), a gRPC stream each filter instance holds, so a
load-only push changes no Envoy configuration at all ("Wasm filter rebuilt" above).

${ps.map((r, i) => `- run ${i + 1}: ${r.samples.map((x) => `${x.pushes}: ${x.rssMiB.toFixed(0)} / ${x.heapMiB.toFixed(0)} / ${x.allocatedMiB.toFixed(0)}`).join(", ")}`).join("\n")}

## Push latency with a hostile replica in the pool

A replica's load change until the served snapshot shows it, 20 trials per run, with and without a
hostile replica (test/support/hostile-replica.ts: a 10 MB body, a 1 MB line, NaN/Inf/negative
values, injected newlines, in turn on each scrape) in the same pool.

| | median of a run's latencies | slowest trial of a run |
|---|---|---|
| with the hostile replica | ${fmt(hostileMedians)} ms | ${fmt(hostileMax)} ms |
| without it | ${fmt(calmMedians)} ms | ${fmt(calmMax)} ms |
`;
writeFileSync(values.out, report);
log(`wrote ${values.out}`);
