// InferenceModel targetModels weights (canary release), applied by the filter inside Envoy, and
// live configuration edits reaching a running Envoy over ECDS. Each test first puts the weights
// it starts from in place, so the tests run in any order.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { podsYaml, postJson, startStack, waitFor, type Stack } from "../support/stack.ts";

const IPS = ["127.0.2.11", "127.0.2.12"];

function poolYaml(stableWeight: number, canaryWeight: number): string {
  return `apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata:
  name: canary-pool
spec:
  targetPortNumber: 8000
  selector:
    app: llm
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata:
  name: chat
spec:
  modelName: chat
  criticality: Standard
  poolRef:
    name: canary-pool
  targetModels:
  - name: llm-stable
    weight: ${stableWeight}
  - name: llm-canary
    weight: ${canaryWeight}
${podsYaml("llm", IPS)}`;
}

async function countModels(url: string, n: number, concurrency = 8): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const r = await postJson(`${url}/v1/completions`, { model: "chat", prompt: "hello", max_tokens: 1 });
      assert.equal(r.status, 200, r.text);
      counts.set(r.body.model, (counts.get(r.body.model) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return counts;
}

/** Writes the weights and waits until Envoy routes with them (a canary share of 0 or 50%). */
async function useWeights(stack: Stack, stable: number, canary: number): Promise<void> {
  stack.writeConfig(poolYaml(stable, canary));
  await waitFor(async () => stack.server.snapshot.includes(`target llm-stable ${stable}\ntarget llm-canary ${canary}\n`), 3000);
  // The snapshot is pushed; 20 requests confirm Envoy has it (20 stable in a row under 50/50: 1 in a million).
  // (A 404 is possible until Envoy has the snapshot, when the previous test left `chat` out.)
  await waitFor(async () => {
    const counts = await countModels(stack.inferenceUrl, 20, 1).catch(() => new Map<string, number>());
    return canary === 0 ? counts.get("llm-stable") === 20 : (counts.get("llm-canary") ?? 0) > 0;
  }, 3000, 0);
}

describe("weighted target models", () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack(poolYaml(50, 50), IPS.map((ip) => ({ ip, models: ["llm-stable", "llm-canary"] })));
  });

  after(async () => { await stack?.stop(); });

  it("splits 50/50 over 400 requests", async () => {
    await useWeights(stack, 50, 50);
    const counts = await countModels(stack.inferenceUrl, 400);
    // Binomial(400, 0.5) has standard deviation 10; ±45 is 4.5 sigma, a false failure about once
    // in 150,000 runs, while a filter that ignored weights (0 or 400) fails at once.
    for (const model of ["llm-stable", "llm-canary"]) {
      const n = counts.get(model) ?? 0;
      assert.ok(n >= 155 && n <= 245, `${model}: ${n} of 400`);
    }
  });

  it("applies an edited weight live, without restarting Envoy", async (t) => {
    await useWeights(stack, 50, 50);
    const pid = stack.server.envoy!.pid;
    stack.writeConfig(poolYaml(100, 0));
    // Under 50/50, 20 stable answers in a row happen once in a million: seeing them means the
    // new weights are live.
    const elapsed = await waitFor(async () => {
      const counts = await countModels(stack.inferenceUrl, 20, 1);
      return counts.get("llm-stable") === 20;
    }, 5000, 0);
    // How fast is a benchmark's question (the file is polled every 100 ms); this test asks that
    // the edit applies at all, with no restart.
    t.diagnostic(`the edit was live after ${elapsed} ms`);
    const after = await countModels(stack.inferenceUrl, 200);
    assert.equal(after.get("llm-canary") ?? 0, 0, "weight 0 gets no traffic");
    assert.equal(stack.server.envoy!.pid, pid, "same Envoy process");
  });

  it("leaves out only the InferenceModel an invalid edit breaks, naming the field; the rest keeps routing", async () => {
    await useWeights(stack, 100, 0);
    const other = `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: other}
spec: {modelName: other, poolRef: {name: canary-pool}, targetModels: [{name: llm-stable, weight: 1}]}
`;
    stack.writeConfig(poolYaml(100, 0).replace("weight: 100", "weight: lots") + other);
    await waitFor(async () => stack.server.problems.length > 0 && stack.server.snapshot.includes("model other "), 2000);
    assert.match(stack.server.problems.join("\n"), /InferenceModel chat.*spec\.targetModels\[0\]\.weight/);
    assert.doesNotMatch(stack.server.snapshot, /^model chat /m);
    await waitFor(async () => (await postJson(`${stack.inferenceUrl}/v1/completions`, { model: "chat", prompt: "x", max_tokens: 1 })).status === 404, 2000);
    for (let i = 0; i < 10; i++) assert.equal((await postJson(`${stack.inferenceUrl}/v1/completions`, { model: "other", prompt: "x", max_tokens: 1 })).status, 200);
  });

  it("rejects a file with no valid InferencePool and keeps routing with the last good one", async () => {
    await useWeights(stack, 100, 0);
    const routing = (): string => stack.server.snapshot.split("\n").filter((l: string) => /^(pool|model|target) /.test(l)).join("\n");
    const before = routing();
    stack.writeConfig(poolYaml(100, 0).replace("targetPortNumber: 8000", "targetPortNumber: port-eight-thousand"));
    await waitFor(async () => stack.server.lastRejection.length > 0, 2000);
    assert.match(stack.server.lastRejection.join("\n"), /InferencePool canary-pool\): spec\.targetPortNumber/);
    assert.match(stack.server.lastRejection.join("\n"), /no valid InferencePool/);
    assert.equal(routing(), before, "pools, models and weights unchanged");
    const counts = await countModels(stack.inferenceUrl, 50);
    assert.equal(counts.get("llm-stable"), 50);
  });
});
