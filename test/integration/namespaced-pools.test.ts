// Pool identity is namespaced end to end: two InferencePools named `llm` in two namespaces, each
// with its own replicas and model, route independently through one real Envoy, and Envoy accepts
// every snapshot (no NACK).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { metricSamples, postJson, SIM_PORT, startStack, waitFor, type Stack } from "../support/stack.ts";

const TEAM_A = ["127.0.8.11", "127.0.8.12"];
const TEAM_B = ["127.0.8.21", "127.0.8.22"];

function team(namespace: string, model: string, ips: string[]): string {
  return `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: llm, namespace: ${namespace}}
spec: {targetPortNumber: ${SIM_PORT}, selector: {app: llm}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: chat, namespace: ${namespace}}
spec: {modelName: ${model}, criticality: Critical, poolRef: {name: llm}, targetModels: [{name: served, weight: 1}]}
${ips.map((ip, i) => `---
apiVersion: v1
kind: Pod
metadata: {name: llm-${i}, namespace: ${namespace}, labels: {app: llm}}
status: {phase: Running, podIP: ${ip}}
`).join("")}`;
}

describe("two pools of the same name in two namespaces", () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack(team("team-a", "chat-a", TEAM_A) + team("team-b", "chat-b", TEAM_B),
      [...TEAM_A, ...TEAM_B].map((ip) => ({ ip, models: ["served"] })));
  });
  after(async () => { await stack?.stop(); });

  const served = async (model: string, n: number): Promise<Set<string>> => {
    const out = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await postJson(`${stack.inferenceUrl}/v1/completions`, { model, prompt: `hello ${i}`, max_tokens: 1 });
      assert.equal(r.status, 200, r.text);
      out.add(r.servedBy!.split(":")[0]!);
    }
    return out;
  };

  it("routes each team's model to its own pool only", async () => {
    assert.deepEqual([...await served("chat-a", 30)].sort(), TEAM_A);
    assert.deepEqual([...await served("chat-b", 30)].sort(), TEAM_B);
  });

  it("keeps each pool's load to itself", async () => {
    for (const ip of TEAM_A) {
      const res = await fetch(`http://${ip}:${SIM_PORT}/admin/load`, { method: "POST", body: JSON.stringify({ waiting: 40, kvUsage: 0.95 }) });
      assert.equal(res.status, 200);
    }
    try {
      await waitFor(async () => /^saturation team-a\/llm [1-9]\d{3,}$/m.test(stack.server.snapshot), 3000);
      assert.match(stack.server.snapshot, /^saturation team-b\/llm 0$/m, "team-b's pool is not saturated by team-a's load");
      assert.deepEqual([...await served("chat-b", 20)].sort(), TEAM_B);
    } finally {
      for (const ip of TEAM_A) await fetch(`http://${ip}:${SIM_PORT}/admin/load`, { method: "POST", body: "{}" });
    }
  });

  it("labels metrics with the namespaced pool, and Envoy never rejected a snapshot", async () => {
    const text = await stack.server.metricsText();
    const endpoints = metricSamples(text, "infergate_pool_endpoints");
    assert.deepEqual(endpoints.map((s) => [s.labels, s.value]).sort(), [['{pool="team-a/llm"}', 2], ['{pool="team-b/llm"}', 2]]);
    assert.equal(metricSamples(text, "infergate_xds_responses_total").filter((s) => s.labels.includes('result="nack"') && s.value > 0).length, 0, text);
    assert.ok(metricSamples(text, "infergate_xds_responses_total").some((s) => s.labels.includes('type="ecds",result="ack"') && s.value > 0));
  });
});
