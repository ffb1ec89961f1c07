// InferenceObjective priorities and InferenceModelRewrite rules through real Envoy and the real
// filter: weighted rewrites, a rule for any model, an InferenceModel winning over a rewrite for
// the same name, the client's x-gateway-model-name-rewrite ignored, and shedding by priority as
// the pool's saturation rises (lower priorities first; 0 and above never).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { podsYaml, postJson, setReplicaLoad, startStack, waitFor, type Stack } from "../support/stack.ts";

const IPS = ["127.0.4.11", "127.0.4.12"];

const CONFIG = `apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: pool}
spec: {targetPortNumber: 8000, selector: {app: llm}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: chat}
spec: {modelName: chat, criticality: Standard, poolRef: {name: pool}, targetModels: [{name: llm-a}]}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: cheap}
spec: {modelName: cheap, criticality: Sheddable, poolRef: {name: pool}, targetModels: [{name: llm-a}]}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModelRewrite
metadata: {name: assistant}
spec:
  poolRef: {name: pool}
  rules:
  - matches: [{model: {value: assistant}}, {model: {value: chat}}]
    targets: [{modelRewrite: llm-a, weight: 3}, {modelRewrite: llm-b, weight: 1}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModelRewrite
metadata: {name: fallback}
spec:
  poolRef: {name: pool}
  rules: [{targets: [{modelRewrite: llm-default}]}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata: {name: interactive}
spec: {priority: 5, poolRef: {name: pool}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata: {name: bulk}
spec: {priority: -1, poolRef: {name: pool}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata: {name: scavenger}
spec: {priority: -3, poolRef: {name: pool}}
${podsYaml("llm", IPS)}`;

const chat = (model: string, headers: Record<string, string> = {}) => (stack: Stack) =>
  postJson(`${stack.inferenceUrl}/v1/completions`, { model, prompt: "hello", max_tokens: 1 }, headers);

describe("InferenceObjective and InferenceModelRewrite", () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack(CONFIG, IPS.map((ip) => ({ ip, models: ["llm-a", "llm-b", "llm-default"] })));
    await waitFor(async () => (await chat("assistant")(stack)).status === 200, 10_000);
  });

  after(async () => { await stack?.stop(); });

  it("rewrites by the rule's weights, rewrites any other model by the rule without matches, and ignores the client's rewrite header", async () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const r = await chat("assistant", { "x-gateway-model-name-rewrite": "llm-b" })(stack);
      assert.equal(r.status, 200, r.text);
      counts.set(r.body.model, (counts.get(r.body.model) ?? 0) + 1);
    }
    // Binomial(400, 0.75): mean 300, standard deviation 8.7; [261, 339] is ±4.5 sigma. A filter
    // that honoured the client's header would serve llm-b 400 times.
    const a = counts.get("llm-a") ?? 0;
    assert.ok(a >= 261 && a <= 339, `llm-a ${a}, llm-b ${counts.get("llm-b")} of 400`);
    assert.equal(a + (counts.get("llm-b") ?? 0), 400);
    const other = await chat("anything-else")(stack);
    assert.equal(other.status, 200, other.text);
    assert.equal(other.body.model, "llm-default");
  });

  it("an InferenceModel wins over a rewrite for the same model name, and the rewrite's match is reported", async () => {
    for (let i = 0; i < 20; i++) assert.equal((await chat("chat")(stack)).body.model, "llm-a", "the InferenceModel's one target, never the rewrite's llm-b");
    assert.ok(stack.server.problems.some((p) => /InferenceModelRewrite assistant\): spec\.rules\[0\]\.matches\[1\]\.model\.value: chat is already served by InferenceModel default\/chat/.test(p)), stack.server.problems.join("\n"));
  });

  it("sheds by priority as saturation rises: lower priorities first, 0 and above never", async () => {
    const status = async (model: string, objective?: string) => (await chat(model, objective ? { "x-gateway-inference-objective": objective } : {})(stack)).status;
    const saturate = async (kv: number, milli: number) => {
      await Promise.all(IPS.map((ip) => setReplicaLoad(`${ip}:8000`, { kvUsage: kv })));
      await waitFor(async () => stack.server.snapshot.includes(`saturation default/pool ${milli}\n`), 3000);
      // The push reaches Envoy within milliseconds; wait for the request that only this
      // saturation sheds (priority -3 from 0.8, priority -1 only at 1.0), so a stale snapshot
      // from the previous step cannot satisfy the wait.
      const probe = milli >= 1000 ? "bulk" : "scavenger";
      await waitFor(async () => (await status("chat", probe)) === 429, 3000);
    };
    try {
      // Saturation 0.85 (KV 0.68 of the 0.8 threshold): priority -3 is shed from 0.8, -1 only from 1.0.
      await saturate(0.68, 850);
      for (let i = 0; i < 10; i++) {
        assert.equal(await status("chat", "scavenger"), 429, "priority -3 is shed at 0.85");
        assert.equal(await status("chat", "bulk"), 200, "priority -1 is not shed before 1.0");
        assert.equal(await status("cheap"), 200, "Sheddable is priority -1");
        assert.equal(await status("chat"), 200);
      }
      // Saturation 1.0: every negative priority is shed, 0 and above never.
      await saturate(0.8, 1000);
      for (let i = 0; i < 10; i++) {
        assert.equal(await status("chat", "bulk"), 429);
        assert.equal(await status("chat", "scavenger"), 429);
        assert.equal(await status("cheap"), 429, "a Sheddable model without an objective");
        assert.equal(await status("cheap", "interactive"), 200, "the objective's priority wins over the model's criticality");
        assert.equal(await status("chat"), 200, "Standard (0) is never shed");
        assert.equal(await status("chat", "no-such-objective"), 200, "an unknown objective changes nothing");
        assert.equal(await status("cheap", "no-such-objective"), 429, "...not even for a Sheddable model");
      }
      const shed = await chat("chat", { "x-gateway-inference-objective": "bulk" })(stack);
      assert.equal(shed.body.error.code, "pool_saturated");
    } finally {
      await Promise.all(IPS.map((ip) => setReplicaLoad(`${ip}:8000`, {})));
    }
  });
});
