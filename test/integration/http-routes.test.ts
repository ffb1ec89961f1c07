// HTTPRoutes in standalone mode, through real Envoy and the real filter: a 90/10 split across two
// InferencePools (the filter draws the pool by the rule's weights, then picks load-aware inside
// it), RequestMirror to a shadow pool (Envoy copies its share; the filter picks the shadow pool's
// endpoint, load-aware), and mirrors that are dead or slow costing the primary nothing.
//
// Every scenario is one rule of one HTTPRoute, chosen by an `x-test` header, so one Envoy serves
// them all.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { metricSamples, podsYaml, postJson, setReplicaLoad, startStack, waitFor, type Stack } from "../support/stack.ts";

const MAIN = ["127.0.3.11", "127.0.3.12"];
const CANARY = ["127.0.3.21"];
const SHADOW = ["127.0.3.31", "127.0.3.32"];
const DEAD = ["127.0.3.41"]; // nothing listens there
const SLOW = ["127.0.3.51"];
const SLOW_MS = 3000;

const pool = (name: string) => `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: ${name}}
spec: {targetPortNumber: 8000, selector: {app: ${name}}}
`;

const rule = (test: string, backends: string, filters = "") => `  - matches: [{path: {type: PathPrefix, value: /v1}, headers: [{name: x-test, value: ${test}}]}]
    backendRefs: [${backends}]${filters ? `\n    filters: [${filters}]` : ""}
`;
const ref = (name: string, weight?: number) => `{group: inference.networking.x-k8s.io, kind: InferencePool, name: ${name}${weight === undefined ? "" : `, weight: ${weight}`}}`;
const mirror = (name: string, percent: number) => `{type: RequestMirror, requestMirror: {backendRef: ${ref(name)}, percent: ${percent}}}`;

const CONFIG = ["main", "canary", "shadow", "dead", "slow"].map(pool).join("") + `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: chat}
spec: {modelName: chat, criticality: Standard, poolRef: {name: main}, targetModels: [{name: llm, weight: 1}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: llm}
spec:
  parentRefs: [{name: gateway}]
  rules:
${rule("split", `${ref("main", 90)}, ${ref("canary", 10)}`)}${rule("mirror", ref("main"), mirror("shadow", 30))}${rule("dead", ref("main"), mirror("dead", 100))}${rule("slow", ref("main"), mirror("slow", 100))}${rule("plain", ref("main"))}` +
  podsYaml("main", MAIN) + podsYaml("canary", CANARY) + podsYaml("shadow", SHADOW) + podsYaml("dead", DEAD) + podsYaml("slow", SLOW);

const REQUEST = { model: "chat", prompt: "hello", max_tokens: 1 };

async function send(stack: Stack, test: string, n: number, concurrency = 8): Promise<Array<{ status: number; servedBy: string | null; ms: number }>> {
  const out: Array<{ status: number; servedBy: string | null; ms: number }> = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const start = performance.now();
      const r = await postJson(`${stack.inferenceUrl}/v1/completions`, REQUEST, { "x-test": test });
      out.push({ status: r.status, servedBy: r.servedBy, ms: performance.now() - start });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return out;
}

const quantile = (xs: number[], q: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]!; };

describe("HTTPRoutes in standalone mode", () => {
  let stack: Stack;
  const received = (ips: string[]): number => stack.replicas.filter((r) => ips.includes(r.host)).reduce((n, r) => n + r.stats().requests, 0);

  before(async () => {
    stack = await startStack(CONFIG, [
      ...[...MAIN, ...CANARY, ...SHADOW].map((ip) => ({ ip, models: ["llm"] })),
      ...SLOW.map((ip) => ({ ip, models: ["llm"], ttftMs: SLOW_MS })),
    ]);
    await waitFor(async () => (await postJson(`${stack.inferenceUrl}/v1/completions`, REQUEST, { "x-test": "plain" })).status === 200, 10_000);
  });

  after(async () => { await stack?.stop(); });

  it("splits 90/10 across two pools, and picks load-aware inside the pool the filter drew", async () => {
    const results = await send(stack, "split", 1000);
    assert.ok(results.every((r) => r.status === 200), JSON.stringify(results.find((r) => r.status !== 200)));
    const canary = results.filter((r) => CANARY.includes(r.servedBy!.split(":")[0]!)).length;
    const main = results.filter((r) => MAIN.includes(r.servedBy!.split(":")[0]!)).length;
    assert.equal(canary + main, 1000);
    // Binomial(1000, 0.1): mean 100, standard deviation 9.5; [58, 142] is ±4.4 sigma, a false
    // failure about once in 100,000 runs, while ignoring the weights (~500) or the route (0) fails.
    assert.ok(canary >= 58 && canary <= 142, `canary served ${canary} of 1000`);
    // Inside the main pool, the filter still balances: a replica reporting a deep queue gets few.
    await setReplicaLoad(`${MAIN[0]}:8000`, { waiting: 50 });
    try {
      await waitFor(async () => stack.server.snapshot.includes(`endpoint ${MAIN[0]}:8000 `) && !stack.server.snapshot.includes(`endpoint ${MAIN[0]}:8000 1000`), 3000);
      const loaded = await send(stack, "split", 200);
      const onLoaded = loaded.filter((r) => r.servedBy === `${MAIN[0]}:8000`).length;
      const onOther = loaded.filter((r) => r.servedBy === `${MAIN[1]}:8000`).length;
      assert.ok(onLoaded < onOther / 4, `loaded replica ${onLoaded}, other ${onOther}`);
    } finally {
      await setReplicaLoad(`${MAIN[0]}:8000`, {});
    }
  });

  it("mirrors 30% of requests to the shadow pool, to the endpoint the filter picked there", async () => {
    await setReplicaLoad(`${SHADOW[0]}:8000`, { waiting: 50 });
    try {
      await waitFor(async () => !stack.server.snapshot.includes(`endpoint ${SHADOW[0]}:8000 1000`), 3000);
      const before = SHADOW.map((ip) => received([ip]));
      const results = await send(stack, "mirror", 1000);
      assert.ok(results.every((r) => r.status === 200 && MAIN.includes(r.servedBy!.split(":")[0]!)), "the primary answers, from its own pool");
      // Copies are sent after the primary; wait until they stop arriving.
      let last = -1;
      await waitFor(async () => { const now = received(SHADOW); const settled = now === last; last = now; return settled; }, 5000, 200);
      const copies = SHADOW.map((ip, i) => received([ip]) - before[i]!);
      const total = copies[0]! + copies[1]!;
      // Binomial(1000, 0.3): mean 300, standard deviation 14.5; [235, 365] is ±4.5 sigma.
      assert.ok(total >= 235 && total <= 365, `mirrored ${total} of 1000`);
      // The loaded shadow replica gets few copies: the filter picked the mirror endpoint by load
      // (round robin would give it half).
      assert.ok(copies[0]! < total / 5, `copies per shadow replica: ${copies.join(", ")}`);
    } finally {
      await setReplicaLoad(`${SHADOW[0]}:8000`, {});
    }
  });

  it("a dead or slow mirror pool costs the primary nothing: same success, same latency", async () => {
    const measure = async (test: string) => {
      const r = await send(stack, test, 200, 4);
      return { ok: r.filter((x) => x.status === 200).length, p50: quantile(r.map((x) => x.ms), 0.5), p95: quantile(r.map((x) => x.ms), 0.95), max: Math.max(...r.map((x) => x.ms)) };
    };
    // Interleaved, so background noise on the shared machine hits every scenario alike.
    const rounds: Record<string, Array<Awaited<ReturnType<typeof measure>>>> = { plain: [], dead: [], slow: [] };
    for (let i = 0; i < 2; i++) for (const test of ["plain", "dead", "slow"]) rounds[test]!.push(await measure(test));
    const summary = Object.fromEntries(Object.entries(rounds).map(([k, v]) => [k, {
      ok: v.reduce((n, x) => n + x.ok, 0), p50: Math.max(...v.map((x) => x.p50)), p95: Math.max(...v.map((x) => x.p95)), max: Math.max(...v.map((x) => x.max)),
    }]));
    console.log(`primary latency (ms) with no mirror, a dead mirror, a slow (${SLOW_MS} ms) mirror: ${JSON.stringify(summary)}`);
    for (const test of ["dead", "slow"]) {
      assert.equal(summary[test]!.ok, 400, `${test}: every primary request succeeds`);
      // A primary that waited for its copy even once would take >= SLOW_MS (slow) or a connect
      // timeout (dead): the bound is far below that and far above scheduling noise on 2 shared cores.
      assert.ok(summary[test]!.max < SLOW_MS / 3, `${test}: slowest primary ${summary[test]!.max} ms`);
      assert.ok(summary[test]!.p50 <= 2 * summary.plain!.p50 + 10, `${test}: median ${summary[test]!.p50} ms vs ${summary.plain!.p50} ms without a mirror`);
    }
    assert.equal(summary.plain!.ok, 400);
    // Every copy is counted, in Envoy's stats for the mirror clusters and in the server's metrics.
    const metrics = await stack.server.metricsText();
    const copies = (cluster: string, result: string) => metricSamples(metrics, "infergate_mirror_requests_total")
      .find((s) => s.labels.includes(`cluster="${cluster}"`) && s.labels.includes(`result="${result}"`))?.value ?? 0;
    assert.ok(copies("httproute/default/llm/rule/2-mirror-0", "failed") >= 400, "copies to the dead pool counted as failed");
    assert.equal(copies("httproute/default/llm/rule/2-mirror-0", "sent"), 0, "none reached a dead replica");
    assert.ok(copies("httproute/default/llm/rule/3-mirror-0", "sent") >= 400, "copies to the slow pool counted as sent");
    assert.equal(copies("httproute/default/llm/rule/3-mirror-0", "failed"), 0);
  });
});
