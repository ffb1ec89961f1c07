// The peer end to end: the Gateway API Inference Extension's endpoint picker v1.5.0 (built from
// its Go module by scripts/build-epp.sh) behind a real Envoy that calls it per request over
// ext_proc, a real kube-apiserver holding its InferencePool and Pods, and three simulated
// replicas (bench/peers/gie-epp.ts). Runs inside scripts/test-e2e.sh's network namespace.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { startSimServer, type SimServer } from "../../sim/server.ts";
import { startGieEpp, type GieEpp } from "../../bench/peers/gie-epp.ts";
import { postJson, waitFor } from "../support/stack.ts";

const IPS = ["127.0.9.1", "127.0.9.2", "127.0.9.3"];
const POOL = IPS.map((ip) => `${ip}:8000`);
/** A server outside the pool, for the header-injection check. */
const OUTSIDER = "127.0.9.99";
const MODEL = "qwen3";

let seq = 0;
/** A completion request with a prompt of its own (no two share a prefix). */
function completion(): { model: string; prompt: string; max_tokens: number } {
  seq++;
  return { model: MODEL, prompt: `request ${seq} ${"lorem ipsum ".repeat(seq % 7)}${Math.random()}`, max_tokens: 2 };
}

describe("the Inference Extension's EPP v1.5.0 behind Envoy (ext_proc)", () => {
  let sims: SimServer[] = [];
  let outsider: SimServer | undefined;
  let peer: GieEpp | undefined;

  before(async () => {
    sims = await Promise.all(IPS.map((host) => startSimServer({ host, port: 8000, servedModels: [MODEL], ttftMs: 1, itlMs: 0 })));
    outsider = await startSimServer({ host: OUTSIDER, port: 8000, servedModels: [MODEL], ttftMs: 1, itlMs: 0 });
    peer = await startGieEpp({ replicas: POOL, timeoutMs: 100_000 });
  });

  after(async () => {
    await peer?.stop();
    await Promise.all([...sims, ...(outsider ? [outsider] : [])].map((s) => s.close()));
  });

  /** Load that a replica reports on top of its own; waits until the EPP's scrape has seen it. */
  async function setLoad(replica: number, waiting: number, kvUsage?: number): Promise<void> {
    const res = await fetch(`http://${POOL[replica]}/admin/load`, { method: "POST", body: JSON.stringify(waiting ? { waiting, kvUsage } : {}) });
    assert.equal(res.status, 200);
    await waitFor(async () => [...(await peer!.eppQueueSizes()).entries()].some(([pod, q]) => pod.startsWith(`gie-pool-${replica}`) && q === waiting), 5000, 20);
  }

  it("routes requests for the pool's model through Envoy to the replica the EPP picks", async () => {
    const served = new Map<string, number>();
    for (let i = 0; i < 15; i++) {
      const r = await postJson(`${peer!.url}/v1/completions`, completion());
      assert.equal(r.status, 200, r.text);
      assert.ok(POOL.includes(r.servedBy!), `served by ${r.servedBy}`);
      served.set(r.servedBy!, (served.get(r.servedBy!) ?? 0) + 1);
    }
    // Every request went through the ext_proc filter and the ORIGINAL_DST cluster.
    const stats = await (await fetch(`${peer!.envoyAdminUrl}/stats?filter=(ext_proc|original_destination_cluster.upstream_rq_total)`)).text();
    const stat = (name: string): number => Number(new RegExp(`^${name.replace(/\./g, "\\.")}: (\\d+)$`, "m").exec(stats)?.[1] ?? NaN);
    assert.ok(stat("cluster.original_destination_cluster.upstream_rq_total") >= 15, stats);
    assert.ok(stat("http.gie-epp.ext_proc.streams_started") >= 15, stats);
    // Chat completions too (the EPP's OpenAI parser reads both).
    const chat = await postJson(`${peer!.url}/v1/chat/completions`, { model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
    assert.equal(chat.status, 200, chat.text);
  });

  it("keeps a shared prompt prefix on one replica (prefix-cache-scorer), where round robin spreads it", async () => {
    const prefix = `a long system prompt shared by every request ${Math.random()} `.repeat(30);
    const viaEpp = new Set<string>();
    const viaPlain = new Set<string>();
    for (let i = 0; i < 9; i++) {
      const body = { model: MODEL, prompt: `${prefix}question ${i}`, max_tokens: 2 };
      viaEpp.add((await postJson(`${peer!.url}/v1/completions`, body)).servedBy!);
      viaPlain.add((await postJson(`${peer!.plainUrl}/v1/completions`, body)).servedBy!);
    }
    assert.equal(viaEpp.size, 1, `EPP route spread the prefix over ${[...viaEpp].join(", ")}`);
    assert.equal(viaPlain.size, 3);
  });

  it("follows load: a replica reporting a long queue is avoided once the EPP's scrape sees it", async () => {
    for (const loaded of [0, 2]) {
      await setLoad(loaded, 50, 0.95);
      for (let i = 0; i < 20; i++) {
        const r = await postJson(`${peer!.url}/v1/completions`, completion());
        assert.equal(r.status, 200, r.text);
        assert.notEqual(r.servedBy, POOL[loaded], `request ${i} went to the loaded replica ${POOL[loaded]}`);
      }
      await setLoad(loaded, 0);
    }
    // Both of the others carry the traffic when two are loaded.
    await setLoad(0, 50, 0.95);
    await setLoad(1, 50, 0.95);
    for (let i = 0; i < 10; i++) assert.equal((await postJson(`${peer!.url}/v1/completions`, completion())).servedBy, POOL[2]);
    await setLoad(0, 0);
    await setLoad(1, 0);
  });

  it("does not honour a client-supplied x-gateway-destination-endpoint: the EPP's header mutation replaces it", async () => {
    // Replica 0 is loaded, so the EPP never picks it; the client asks for it, or for a server
    // outside the pool.
    await setLoad(0, 50, 0.95);
    const before = { inPool: sims[0]!.stats().requests, outsider: outsider!.stats().requests };
    for (const target of [POOL[0]!, `${OUTSIDER}:8000`]) {
      for (let i = 0; i < 10; i++) {
        const r = await postJson(`${peer!.url}/v1/completions`, completion(), { "x-gateway-destination-endpoint": target });
        assert.equal(r.status, 200, r.text);
        assert.ok(POOL.slice(1).includes(r.servedBy!), `client asked for ${target}, served by ${r.servedBy}`);
      }
    }
    assert.equal(sims[0]!.stats().requests, before.inPool);
    assert.equal(outsider!.stats().requests, before.outsider);
    await setLoad(0, 0);
  });

  it("fails closed without the EPP (failure_mode_allow false, as the reference): 500, nothing reaches any replica", async () => {
    await peer!.stopEpp();
    const before = [...sims, outsider!].map((s) => s.stats().requests);
    for (const headers of [{}, { "x-gateway-destination-endpoint": `${OUTSIDER}:8000` }] as Array<Record<string, string>>) {
      const r = await postJson(`${peer!.url}/v1/completions`, completion(), headers);
      assert.equal(r.status, 500, r.text);
    }
    assert.deepEqual([...sims, outsider!].map((s) => s.stats().requests), before);
  });
});

describe("the same wiring failing open (ext_proc failure_mode_allow: true) without the EPP", () => {
  let sims: SimServer[] = [];
  let peer: GieEpp | undefined;
  const seen: string[] = [];
  let outsider: Server | undefined;

  before(async () => {
    sims = await Promise.all(IPS.slice(0, 2).map((host) => startSimServer({ host, port: 8000, servedModels: [MODEL], ttftMs: 1, itlMs: 0 })));
    outsider = createServer((req, res) => { seen.push(`${req.method} ${req.url}`); res.setHeader("x-served-by", "outsider"); res.end("{}"); });
    await new Promise<void>((r) => outsider!.listen(8000, OUTSIDER, () => r()));
    peer = await startGieEpp({ replicas: IPS.slice(0, 2).map((ip) => `${ip}:8000`), failureModeAllow: true, timeoutMs: 100_000 });
    await peer.stopEpp();
  });

  after(async () => {
    await peer?.stop();
    await Promise.all(sims.map((s) => s.close()));
    await new Promise((r) => outsider?.close(r));
  });

  it("a request with a body still gets 500 (its body is FULL_DUPLEX_STREAMED to the missing EPP)", async () => {
    const r = await postJson(`${peer!.url}/v1/completions`, completion(), { "x-gateway-destination-endpoint": `${OUTSIDER}:8000` });
    assert.equal(r.status, 500, r.text);
  });

  it("a body-less request goes wherever the client's x-gateway-destination-endpoint says, in the pool or not", async () => {
    const res = await fetch(`${peer!.url}/v1/models`, { headers: { "x-gateway-destination-endpoint": `${OUTSIDER}:8000` } });
    await res.text();
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-served-by"), "outsider");
    assert.deepEqual(seen, ["GET /v1/models"]);
    // Without the header, ORIGINAL_DST has nowhere to go.
    const bare = await fetch(`${peer!.url}/v1/models`);
    assert.equal(bare.status, 503, await bare.text());
  });
});
