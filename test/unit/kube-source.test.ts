// The Kubernetes source against a fake API server over real HTTP (client-node's informers doing
// real LIST and WATCH requests): seed resources in, edits and Pod changes live, bad objects
// rejected with the previous configuration kept, InferencePool status reported.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import type { RoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import { KubeSource } from "../../extension-server/src/config/kube-source.ts";
import { InfergateServer } from "../../extension-server/src/server.ts";
import { FakeKubeApi } from "../support/fake-kube-api.ts";
import { waitFor } from "../support/stack.ts";

const POOLS_V1ALPHA1 = "/apis/inference.networking.x-k8s.io/v1alpha1/inferencepools";
const MODELS_V1ALPHA1 = "/apis/inference.networking.x-k8s.io/v1alpha1/inferencemodels";
const POOLS_V1 = "/apis/inference.networking.k8s.io/v1/inferencepools";
const OBJECTIVES = "/apis/inference.networking.x-k8s.io/v1alpha2/inferenceobjectives";
const REWRITES = "/apis/inference.networking.x-k8s.io/v1alpha2/inferencemodelrewrites";
const PODS = "/api/v1/pods";

// The seed's resources, as the API server returns them (list items carry apiVersion and kind
// for custom resources, not for Pods).
const seedPool = {
  apiVersion: "inference.networking.x-k8s.io/v1alpha1", kind: "InferencePool",
  metadata: { name: "reasoning-pool", namespace: "default", annotations: { "inference.networking.x-k8s.io/attach-to": "name: inference-gateway\nport: 8081\n" } },
  spec: { targetPortNumber: 8000, selector: { app: "qwq-32b" } },
};
const seedModel = (weight: unknown) => ({
  apiVersion: "inference.networking.x-k8s.io/v1alpha1", kind: "InferenceModel",
  metadata: { name: "inferencemodel-sample", namespace: "default" },
  spec: { modelName: "qwq", criticality: "Critical", poolRef: { group: "inference.networking.x-k8s.io", kind: "InferencePool", name: "reasoning-pool" }, targetModels: [{ name: "qwq-32b", weight }] },
});
const pod = (name: string, ip: string, ready = "True") => ({
  metadata: { name, namespace: "default", labels: { app: "qwq-32b" } },
  spec: { containers: [{ name: "vllm", image: "vllm/vllm-openai" }] },
  status: { phase: "Running", podIP: ip, conditions: [{ type: "Ready", status: ready }] },
});

describe("Kubernetes source", () => {
  const api = new FakeKubeApi();
  let source: KubeSource;
  let kc: KubeConfig;
  const configs: RoutingConfig[] = [];

  before(async () => {
    api.serve(POOLS_V1ALPHA1, [seedPool]);
    api.serve(MODELS_V1ALPHA1, [seedModel(100)]);
    api.serve(POOLS_V1, []);
    api.serve(PODS, [pod("qwq-32b-0", "10.0.0.1"), pod("qwq-32b-1", "10.0.0.2")]);
    const url = await api.start();
    kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "test", server: url, skipTLSVerify: true }],
      users: [{ name: "test", token: "t" }],
      contexts: [{ name: "test", cluster: "test", user: "test" }],
      currentContext: "test",
    });
    source = new KubeSource(kc);
    await source.start({ onConfig: (c) => configs.push(c), onRejected: () => undefined });
  });

  after(async () => {
    await source.stop();
    await api.stop();
  });

  const latest = () => configs.at(-1)!;
  /** The body of the latest status patch to a path ending in `suffix` that satisfies `check`. */
  const waitForPatch = async (suffix: string, check: (body: any) => boolean): Promise<any> => {
    const find = () => api.patches.filter((p) => p.path.endsWith(suffix) && check(p.body)).at(-1);
    await waitFor(async () => find() !== undefined, 3000);
    return find()!.body.status;
  };
  const endpoints = () => latest().pools[0]!.endpoints.map((e) => `${e.ip}:${e.port}`);

  it("reads the seed's v1alpha1 resources and the pool's Pods (unserved versions skipped)", async () => {
    await waitFor(async () => configs.length > 0, 3000);
    assert.equal(latest().pools[0]!.name, "reasoning-pool");
    assert.deepEqual(latest().pools[0]!.attachTo, { name: "inference-gateway", port: 8081 });
    assert.deepEqual(endpoints(), ["10.0.0.1:8000", "10.0.0.2:8000"]);
    assert.deepEqual(latest().models[0]!.targets, [{ name: "qwq-32b", weight: 100 }]);
  });

  it("follows watch events: a new weight, a new Pod, a Pod that is no longer ready", async () => {
    const model = seedModel(100);
    model.spec.targetModels.push({ name: "qwq-32b-canary", weight: 10 });
    api.upsert(MODELS_V1ALPHA1, model);
    await waitFor(async () => latest().models[0]!.targets.length === 2, 3000);
    api.upsert(PODS, pod("qwq-32b-2", "10.0.0.3"));
    await waitFor(async () => endpoints().length === 3, 3000);
    api.upsert(PODS, pod("qwq-32b-0", "10.0.0.1", "False"));
    await waitFor(async () => !endpoints().includes("10.0.0.1:8000"), 3000);
    api.remove(PODS, "default", "qwq-32b-2");
    await waitFor(async () => endpoints().join() === "10.0.0.2:8000", 3000);
  });

  it("leaves an invalid InferenceModel out on its own, naming the field in its status", async () => {
    const other = { ...seedModel(100), metadata: { name: "other", namespace: "default" }, spec: { ...seedModel(100).spec, modelName: "other" } };
    api.upsert(MODELS_V1ALPHA1, other);
    await waitFor(async () => latest().models.length === 2, 3000);
    api.upsert(MODELS_V1ALPHA1, seedModel("heavy"));
    await waitFor(async () => latest().models.length === 1, 3000);
    assert.equal(latest().models[0]!.modelName, "other", "the valid model keeps being served");
    assert.equal(latest().pools.length, 1);
    assert.match(latest().problems.map((p) => p.text).join("\n"), /InferenceModel default\/inferencemodel-sample: spec\.targetModels\[0\]\.weight/);
    const status = await waitForPatch("/inferencemodels/inferencemodel-sample/status", (b) => b.status.conditions?.[0]?.status === "False");
    assert.deepEqual([status.conditions[0].type, status.conditions[0].reason], ["Accepted", "Invalid"]);
    assert.match(status.conditions[0].message, /spec\.targetModels\[0\]\.weight/);
    api.upsert(MODELS_V1ALPHA1, seedModel(100));
    api.remove(MODELS_V1ALPHA1, "default", "other");
    await waitFor(async () => latest().models.length === 1 && latest().models[0]!.modelName === "qwq", 3000);
    assert.equal((await waitForPatch("/inferencemodels/inferencemodel-sample/status", (b) => b.status.conditions?.[0]?.status === "True")).conditions[0].reason, "Accepted");
  });

  it("skips a selected Pod without an IP, counts it in the pool's status, and ignores Pods no pool selects", async () => {
    const before = endpoints();
    api.upsert(PODS, { metadata: { name: "qwq-32b-pending", namespace: "default", labels: { app: "qwq-32b" } }, spec: {}, status: { phase: "Pending" } });
    api.upsert(PODS, { metadata: { name: "unrelated", namespace: "other" }, spec: {}, status: { phase: "Pending", podIP: "not-an-ip" } });
    await waitFor(async () => latest().pools[0]!.skipped["not-ready"] === 1, 3000);
    assert.deepEqual(endpoints(), before, "the other endpoints keep being served");
    assert.deepEqual(latest().problems, [], "Pods are not problems");
    // Pending is not ready; once Running, a Pod that still has no IP is skipped for that.
    api.upsert(PODS, { metadata: { name: "qwq-32b-pending", namespace: "default", labels: { app: "qwq-32b" } }, spec: {}, status: { phase: "Running" } });
    await waitFor(async () => latest().pools[0]!.skipped["no-ip"] === 1, 3000);
    const status = await waitForPatch("/inferencepools/reasoning-pool/status", (b) => /without an IP/.test(b.status.parent?.[0]?.conditions?.[0]?.message ?? ""));
    assert.match(status.parent[0].conditions[0].message, /Pods skipped: .*1 without an IP/);
    api.remove(PODS, "default", "qwq-32b-pending");
    api.remove(PODS, "other", "unrelated");
    await waitFor(async () => latest().pools[0]!.skipped["no-ip"] === undefined, 3000);
  });

  it("reports InferencePool status conditions by merge patch", async () => {
    await waitFor(async () => api.patches.some((p) => p.body.status.parent?.[0]?.conditions?.[0]?.status === "True"), 3000);
    const patch = api.patches.filter((p) => p.body.status.parent?.[0]?.conditions?.[0]?.status === "True").at(-1)!;
    assert.equal(patch.path, "/apis/inference.networking.x-k8s.io/v1alpha1/namespaces/default/inferencepools/reasoning-pool/status");
    assert.equal(patch.contentType, "application/merge-patch+json");
    const parent = patch.body.status.parent[0];
    assert.deepEqual(parent.parentRef, { group: "gateway.networking.k8s.io", kind: "Gateway", name: "inference-gateway", namespace: "default" });
    assert.deepEqual(parent.conditions.map((c: any) => [c.type, c.status, c.reason]), [["Accepted", "True", "Accepted"], ["ResolvedRefs", "True", "ResolvedRefs"]]);
  });

  it("leaves an invalid InferencePool (and the models on it) out, with the reason in its status", async () => {
    api.upsert(POOLS_V1ALPHA1, { ...seedPool, spec: { ...seedPool.spec, targetPortNumber: 70000 } });
    await waitFor(async () => latest().pools.length === 0, 3000);
    assert.deepEqual(latest().models, []);
    assert.match(latest().problems.map((p) => p.text).join("\n"), /no valid InferencePool named reasoning-pool in namespace default/);
    const accepted = (await waitForPatch("/inferencepools/reasoning-pool/status", (b) => b.status.parent?.[0]?.conditions?.[0]?.status === "False")).parent[0].conditions[0];
    assert.equal(accepted.type, "Accepted");
    assert.match(accepted.message, /spec\.targetPortNumber/);
    api.upsert(POOLS_V1ALPHA1, seedPool);
    await waitFor(async () => latest().pools.length === 1 && latest().models.length === 1, 3000);
  });

  it("drives the extension server in Kubernetes mode (snapshot and hooks from the cluster's objects)", async () => {
    const server = new InfergateServer({ source: { kubernetes: kc }, xdsPort: 0, hooksPort: 0, log: () => undefined });
    try {
      await server.start();
      assert.ok(server.hooksPort > 0);
      assert.match(server.snapshot, /pool default\/reasoning-pool\nendpoint 10\.0\.0\.2:8000 /);
      assert.match(server.snapshot, /model qwq default\/reasoning-pool critical\ntarget qwq-32b 100/);
    } finally {
      await server.stop();
    }
  });
});

describe("Kubernetes source with no InferencePool yet", () => {
  it("starts, serving an empty configuration, instead of failing", async () => {
    const api = new FakeKubeApi();
    api.serve(POOLS_V1ALPHA1, []);
    api.serve(MODELS_V1ALPHA1, []);
    api.serve(PODS, [{ metadata: { name: "pending", namespace: "default" }, spec: {}, status: { phase: "Pending" } }]);
    const url = await api.start();
    const kc = new KubeConfig();
    kc.loadFromOptions({ clusters: [{ name: "t", server: url }], users: [{ name: "t", token: "t" }], contexts: [{ name: "t", cluster: "t", user: "t" }], currentContext: "t" });
    const configs: RoutingConfig[] = [];
    const source = new KubeSource(kc);
    try {
      await source.start({ onConfig: (c) => configs.push(c), onRejected: () => undefined });
      assert.equal(configs.length, 1);
      assert.deepEqual([configs[0]!.pools, configs[0]!.models, configs[0]!.problems], [[], [], []]);
    } finally {
      await source.stop();
      await api.stop();
    }
  });
});

describe("Kubernetes source: a v1 InferencePool's endpoint picker Service", () => {
  const SERVICES = "/api/v1/services";
  const v1Pool = (name: string, ref?: Record<string, unknown>, parent = true) => ({
    apiVersion: "inference.networking.k8s.io/v1", kind: "InferencePool",
    metadata: { name, namespace: "team", ...(parent ? { annotations: { "inference.networking.x-k8s.io/attach-to": "name: gw\n" } } : {}) },
    spec: { selector: { matchLabels: { app: "llm" } }, targetPorts: [{ number: 8000 }], ...(ref ? { endpointPickerRef: ref } : {}) },
  });
  const eppService = (clusterIP: string) => ({
    metadata: { name: "epp", namespace: "team" },
    spec: { clusterIP, ports: [{ name: "grpc-ext-proc", port: 9002, protocol: "TCP", targetPort: 9002 }] },
  });

  it("resolves the Service from the API, follows it, and reports ResolvedRefs (InvalidExtensionRef when it is missing)", async () => {
    const api = new FakeKubeApi();
    api.serve(POOLS_V1, [v1Pool("picked", { name: "epp", port: { number: 9002 }, failureMode: "FailOpen" }), v1Pool("own"), v1Pool("orphan", undefined, false)]);
    api.serve(PODS, []);
    // A Service no pool names stays out of the configuration.
    api.serve(SERVICES, [eppService("10.96.0.20"), { metadata: { name: "unrelated", namespace: "team" }, spec: { clusterIP: "None" } }]);
    const url = await api.start();
    const kc = new KubeConfig();
    kc.loadFromOptions({ clusters: [{ name: "t", server: url, skipTLSVerify: true }], users: [{ name: "t", token: "t" }], contexts: [{ name: "t", cluster: "t", user: "t" }], currentContext: "t" });
    const configs: RoutingConfig[] = [];
    const source = new KubeSource(kc);
    const resolved = (pool: string) => api.patches.filter((p) => p.path.endsWith(`/inferencepools/${pool}/status`)).at(-1)?.body.status.parents[0].conditions
      .find((c: any) => c.type === "ResolvedRefs");
    try {
      await source.start({ onConfig: (c) => configs.push(c), onRejected: () => undefined });
      const picked = () => configs.at(-1)!.pools.find((p) => p.name === "picked")!.picker;
      assert.deepEqual(picked()?.address, { ip: "10.96.0.20", port: 9002, tls: true });
      assert.deepEqual(configs.at(-1)!.problems, []);
      await waitFor(async () => resolved("picked")?.status === "True" && resolved("own")?.status === "True", 3000);
      assert.match(resolved("picked").message, /Endpoint picker Service team\/epp port 9002 picks/);
      assert.match(resolved("own").message, /No endpointPickerRef: infergate picks endpoints itself/);
      assert.equal(configs.at(-1)!.pools.find((p) => p.name === "own")!.picker, undefined);

      api.upsert(SERVICES, eppService("10.96.0.21"));
      await waitFor(async () => picked()?.address?.ip === "10.96.0.21", 3000);
      api.remove(SERVICES, "team", "epp");
      await waitFor(async () => picked()?.unresolved === "Service team/epp not found", 3000);
      await waitFor(async () => resolved("picked")?.status === "False", 3000);
      assert.equal(resolved("picked").reason, "InvalidExtensionRef");
      assert.match(resolved("picked").message, /Service team\/epp not found; requests are routed by infergate \(FailOpen\)/);
      assert.equal(configs.at(-1)!.pools.length, 3, "the pool stays");
      // The v1 CRD requires a parent Gateway's name: a pool with no known parent gets no status
      // patch (it would be refused) rather than one with an empty name.
      assert.equal(api.patches.filter((p) => p.path.endsWith("/inferencepools/orphan/status")).length, 0);
      assert.equal(resolved("picked").observedGeneration, 1);
    } finally {
      await source.stop();
      await api.stop();
    }
  });
});

describe("Kubernetes source status writes", () => {
  it("write each pool's status on its own: one the API server refuses does not hold up the others", async () => {
    const api = new FakeKubeApi();
    const pool = (name: string) => ({ ...seedPool, metadata: { ...seedPool.metadata, name } });
    api.serve(POOLS_V1ALPHA1, [pool("aaa-refused"), pool("reasoning-pool")]);
    api.serve(MODELS_V1ALPHA1, []);
    api.serve(PODS, []);
    api.refusePatch = (path) => path.includes("/aaa-refused/");
    const url = await api.start();
    const kc = new KubeConfig();
    kc.loadFromOptions({ clusters: [{ name: "t", server: url, skipTLSVerify: true }], users: [{ name: "t", token: "t" }], contexts: [{ name: "t", cluster: "t", user: "t" }], currentContext: "t" });
    const logs: string[] = [];
    const source = new KubeSource(kc);
    try {
      await source.start({ onConfig: () => undefined, onRejected: () => undefined, log: (m) => logs.push(m) });
      await waitFor(async () => api.patches.some((p) => p.path.endsWith("/inferencepools/reasoning-pool/status")), 3000);
      assert.ok(logs.some((l) => /InferencePool default\/aaa-refused: status update failed/.test(l)), logs.join("\n"));
    } finally {
      await source.stop();
      await api.stop();
    }
  });

  it("write nothing to a pool whose attach-to names no Gateway (another implementation's pool), nor to the objects on it", async () => {
    const api = new FakeKubeApi();
    const { annotations: _, ...metadata } = seedPool.metadata;
    api.serve(POOLS_V1ALPHA1, [{ ...seedPool, metadata: { ...metadata, name: "theirs" } }, seedPool]);
    api.serve(MODELS_V1ALPHA1, [seedModel(100), { ...seedModel(100), metadata: { name: "on-theirs", namespace: "default" }, spec: { ...seedModel(100).spec, modelName: "x", poolRef: { name: "theirs" } } }]);
    const objective = (name: string, pool: string) => ({ apiVersion: "inference.networking.x-k8s.io/v1alpha2", kind: "InferenceObjective", metadata: { name, namespace: "default" }, spec: { priority: -1, poolRef: { name: pool } } });
    api.serve(OBJECTIVES, [objective("ours", "reasoning-pool"), objective("theirs", "theirs")]);
    const rewrite = (name: string, pool: string, model: string) => ({
      apiVersion: "inference.networking.x-k8s.io/v1alpha2", kind: "InferenceModelRewrite", metadata: { name, namespace: "default" },
      spec: { poolRef: { name: pool }, rules: [{ matches: [{ model: { value: model } }], targets: [{ modelRewrite: "qwq-32b" }] }] },
    });
    api.serve(REWRITES, [rewrite("ours", "reasoning-pool", "a"), rewrite("theirs", "theirs", "b")]);
    api.serve(PODS, []);
    const url = await api.start();
    const kc = new KubeConfig();
    kc.loadFromOptions({ clusters: [{ name: "t", server: url, skipTLSVerify: true }], users: [{ name: "t", token: "t" }], contexts: [{ name: "t", cluster: "t", user: "t" }], currentContext: "t" });
    const source = new KubeSource(kc);
    try {
      await source.start({ onConfig: () => undefined, onRejected: () => undefined });
      await waitFor(async () => api.patches.some((p) => p.path.endsWith("/inferencemodelrewrites/ours/status")), 3000);
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(api.patches.map((p) => p.path.split("/").slice(-3, -1).join("/")).sort(), [
        "inferencemodelrewrites/ours", "inferencemodels/inferencemodel-sample", "inferenceobjectives/ours", "inferencepools/reasoning-pool",
      ]);
    } finally {
      await source.stop();
      await api.stop();
    }
  });
});
