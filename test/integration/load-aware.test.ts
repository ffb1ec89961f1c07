// Live load-aware routing through real Envoy: scraped replica metrics become scores pushed into
// the filter; dead replicas drop out; the filter keeps routing without the extension server;
// Sheddable requests are shed when the pool is saturated; same-prefix requests stick together.
// Each describe starts its own stack, and each test starts from idle replicas, so any test can run
// alone or in any order.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { startSimServer } from "../../sim/server.ts";
import { chatPoolYaml, metricSamples, podsYaml, postJson, setReplicaLoad, SIM_PORT, startStack, waitFor, type Stack } from "../support/stack.ts";

const IPS = ["127.0.4.11", "127.0.4.12", "127.0.4.13"];
const ADDRESSES = IPS.map((ip) => `${ip}:${SIM_PORT}`);

const CONFIG = chatPoolYaml(IPS, "llm", [{ name: "batch", criticality: "Sheddable" }]);
const setLoad = setReplicaLoad;

async function send(stack: Stack, model = "chat", prompt = "hello"): Promise<{ status: number; servedBy: string | null; body: any }> {
  return postJson(`${stack.inferenceUrl}/v1/completions`, { model, prompt, max_tokens: 1 });
}

async function spread(stack: Stack, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = await send(stack, "chat", `request ${i}`);
    assert.equal(r.status, 200);
    counts.set(r.servedBy!, (counts.get(r.servedBy!) ?? 0) + 1);
  }
  return counts;
}

/** Ready endpoints, per the extension server's own metrics. */
async function readyCount(stack: Stack): Promise<number> {
  return metricSamples(await stack.server.metricsText(), "infergate_endpoint_ready").filter((s) => s.value === 1).length;
}

/** Clears injected load on every replica and waits until the snapshot shows them all idle and ready. */
async function idle(stack: Stack): Promise<void> {
  for (const a of ADDRESSES) await setLoad(a, {});
  await waitFor(async () => {
    const scores = stack.server.snapshot.split("\n").filter((l) => l.startsWith("endpoint ")).map((l) => l.split(" ")[2]);
    return scores.length === IPS.length && scores.every((s) => s === "1000") && (await readyCount(stack)) === IPS.length;
  }, 5000);
}

async function startPool(): Promise<Stack> {
  return startStack(CONFIG, IPS.map((ip) => ({ ip, models: ["llm"] })));
}

describe("load-aware routing", () => {
  let stack: Stack;

  before(async () => { stack = await startPool(); });
  beforeEach(async () => { await idle(stack); });
  after(async () => { await stack?.stop(); });

  it("sends less new traffic to a loaded replica, and applies a load change quickly", async () => {
    const even = await spread(stack, 60);
    for (const a of ADDRESSES) assert.ok((even.get(a) ?? 0) >= 8, `idle pool spreads: ${JSON.stringify([...even])}`);
    const changed = performance.now();
    await setLoad(ADDRESSES[0]!, { waiting: 30, kvUsage: 0.9 });
    // 10 requests in a row avoiding the loaded replica (1 in 57 by chance when it was still equal).
    const elapsed = await waitFor(async () => {
      const c = await spread(stack, 10);
      return !c.has(ADDRESSES[0]!);
    }, 3000, 0);
    const loaded = await spread(stack, 60);
    assert.equal(loaded.get(ADDRESSES[0]!) ?? 0, 0, `loaded replica still chosen: ${JSON.stringify([...loaded])}`);
    assert.ok(performance.now() - changed < 2000, `load change took ${elapsed} ms to affect routing`);
  });

  it("sheds Sheddable requests when the pool is saturated, never Critical ones", async () => {
    for (const a of ADDRESSES) await setLoad(a, { waiting: 12 });
    await waitFor(async () => (await send(stack, "batch")).status === 429, 3000);
    const shed = await send(stack, "batch");
    assert.equal(shed.status, 429);
    assert.equal(shed.body.error.code, "pool_saturated");
    assert.equal(shed.body.error.type, "rate_limit_exceeded");
    for (let i = 0; i < 10; i++) assert.equal((await send(stack, "chat")).status, 200, "Critical is never shed");
    for (const a of ADDRESSES) await setLoad(a, {});
    await waitFor(async () => (await send(stack, "batch")).status === 200, 3000);
  });

  it("keeps same-prefix requests on one endpoint until it is overloaded", async () => {
    const system = "You are a careful assistant for the finance team. ".repeat(12);
    const ask = (i: number) => postJson(`${stack.inferenceUrl}/v1/chat/completions`, {
      model: "chat", max_tokens: 1, messages: [{ role: "system", content: system }, { role: "user", content: `question ${i}` }],
    });
    const first = await ask(0);
    const home = first.servedBy!;
    for (let i = 1; i < 20; i++) assert.equal((await ask(i)).servedBy, home, "same prefix, same endpoint");
    await setLoad(home, { waiting: 40, kvUsage: 0.95 });
    await waitFor(async () => (await ask(99)).servedBy !== home, 3000);
    const moved = new Set<string>();
    for (let i = 0; i < 10; i++) moved.add((await ask(100 + i)).servedBy!);
    assert.ok(!moved.has(home), "an overloaded endpoint loses its affinity");
  });

  it("picks up a new Pod from the configuration without a restart", async () => {
    const extra = await startSimServer({ host: "127.0.4.14", port: SIM_PORT, servedModels: ["llm"], ttftMs: 1, itlMs: 0 });
    try {
      stack.writeConfig(CONFIG + podsYaml("llm", ["127.0.4.14"]).replace("name: llm-0", "name: llm-new"));
      await waitFor(async () => (await spread(stack, 10)).has(extra.address), 3000, 0);
      assert.ok(extra.stats().requests > 0);
    } finally {
      stack.writeConfig(CONFIG);
      await waitFor(async () => !stack.server.snapshot.includes("127.0.4.14"), 3000);
      await extra.close();
    }
  });
});

describe("a replica that dies", () => {
  let stack: Stack;

  before(async () => {
    stack = await startPool();
    await idle(stack);
  });
  after(async () => { await stack?.stop(); });

  it("stops sending to a dead replica within a scrape interval, losing no new request", async () => {
    const dead = stack.replicas[1]!;
    const results: Array<{ at: number; status: number; servedBy: string | null }> = [];
    const start = performance.now();
    let killedAt = Infinity;
    const killer = (async () => {
      await new Promise((r) => setTimeout(r, 300));
      killedAt = performance.now();
      await dead.close();
    })();
    while (performance.now() - start < 1500) {
      const at = performance.now();
      const r = await send(stack);
      results.push({ at, status: r.status, servedBy: r.servedBy });
    }
    await killer;
    const afterKill = results.filter((r) => r.at > killedAt);
    assert.ok(afterKill.length > 20);
    assert.deepEqual(afterKill.filter((r) => r.status !== 200), [], "Envoy retried refused connections on the next endpoint");
    const late = afterKill.filter((r) => r.at > killedAt + 200);
    assert.ok(late.every((r) => r.servedBy !== dead.address), "no traffic to the dead replica after a scrape interval");
    const ready = metricSamples(await stack.server.metricsText(), "infergate_endpoint_ready").find((s) => s.labels.includes(`endpoint="${dead.address}"`));
    assert.equal(ready?.value, 0);
  });
});

describe("without the extension server", () => {
  let stack: Stack;

  before(async () => {
    stack = await startPool();
    await idle(stack);
  });
  after(async () => { await stack?.stop(); });

  it("keeps routing with the last snapshot when the extension server stops", async () => {
    await stack.server.stopControlPlane();
    const counts = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const r = await send(stack);
      assert.equal(r.status, 200);
      counts.set(r.servedBy!, (counts.get(r.servedBy!) ?? 0) + 1);
    }
    assert.ok(counts.size >= 2, "still spreading over the live replicas");
  });
});
