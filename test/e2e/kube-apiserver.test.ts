// The Kubernetes source against a real kube-apiserver and etcd (built from their Go modules by
// scripts/build-kube-apiserver.sh): our CRDs install, the seed's InferencePool and InferenceModel
// are created as written, Pods get IPs through the status subresource, informers follow changes,
// the status infergate writes (InferencePool, InferenceModel, InferenceObjective,
// InferenceModelRewrite) reads back from the API server, and an attach-to naming another
// namespace's Gateway waits for that namespace's ReferenceGrant. The source runs as infergate's
// ServiceAccount, so the manifests' RBAC is what authorizes it: the cluster-wide install's
// ClusterRole, then the namespaced install's Roles with --watch-namespaces. Another controller's
// entry in a pool's status survives infergate's writes, and objects on a pool infergate does not
// serve (no attach-to) get no status from it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CoreV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import type { RoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import { KubeSource } from "../../extension-server/src/config/kube-source.ts";
import { gatewayApiCrd, inferenceExtensionCrd, startKubeApiServer, type KubeApiServer } from "../support/kube-apiserver.ts";
import { waitFor } from "../support/stack.ts";

const repo = new URL("../..", import.meta.url).pathname;
const GROUP = "inference.networking.x-k8s.io";

describe("Kubernetes source against a real kube-apiserver", () => {
  const logs: string[] = [];
  let api: KubeApiServer | undefined;
  let kc: KubeConfig;
  /** infergate's ServiceAccount (its RBAC only). */
  let infergateKc: KubeConfig;
  let source: KubeSource | undefined;
  const configs: RoutingConfig[] = [];

  // scripts/test-e2e.sh builds the binaries before entering its network namespace (no network inside).
  before(async () => {
    api = await startKubeApiServer();
    kc = api.kc;
  });

  after(async () => {
    await source?.stop();
    await api?.stop();
  });

  it("installs infergate's CRDs", async () => {
    const crds = parseAllDocuments(readFileSync(join(repo, "manifests/kubernetes/crds.yaml"), "utf8")).map((d) => d.toJS());
    await api!.installCrds(crds);
    assert.deepEqual(crds.filter((c) => c.spec.group === GROUP).map((c) => c.spec.names.kind), ["InferencePool", "InferenceModel", "InferenceObjective", "InferenceModelRewrite"]);
    // Gateway API's HTTPRoute and ReferenceGrant, as installed with Envoy Gateway, and the Inference Extension's v1 InferencePool.
    await api!.installCrds([gatewayApiCrd("httproutes"), gatewayApiCrd("referencegrants"), inferenceExtensionCrd("inference.networking.k8s.io_inferencepools")]);
  });

  it("accepts infergate's install manifests (RBAC, Deployment, Service, NetworkPolicy)", async () => {
    const docs = parseAllDocuments(readFileSync(join(repo, "manifests/kubernetes/infergate.yaml"), "utf8")).map((d) => d.toJS());
    for (const doc of docs) await api!.create(doc);
    assert.deepEqual(docs.map((d) => d.kind).sort(), ["ClusterRole", "ClusterRoleBinding", "Deployment", "Namespace", "NetworkPolicy", "Service", "ServiceAccount"]);
    infergateKc = await api!.serviceAccountConfig("infergate-system", "infergate");
  });

  it("reads the seed's resources and Pods created through the API, and follows changes", async () => {
    const custom = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    const seed = parseAllDocuments(readFileSync(join(repo, "manifests/kubernetes/seed.yaml"), "utf8")).map((d) => d.toJS());
    for (const obj of seed.filter((o) => o.apiVersion.startsWith(GROUP))) {
      await custom.createNamespacedCustomObject({ group: GROUP, version: "v1alpha1", namespace: "default", plural: `${obj.kind.toLowerCase()}s`, body: obj });
    }
    for (const [i, ip] of ["10.1.0.11", "10.1.0.12"].entries()) {
      const name = `qwq-32b-${i}`;
      await core.createNamespacedPod({ namespace: "default", body: { metadata: { name, labels: { app: "qwq-32b" } }, spec: { containers: [{ name: "vllm", image: "vllm/vllm-openai" }] } } });
      await core.patchNamespacedPodStatus({ name, namespace: "default", body: { status: { phase: "Running", podIP: ip, podIPs: [{ ip }], conditions: [{ type: "Ready", status: "True" }] } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    }
    source = new KubeSource(infergateKc);
    await source.start({ onConfig: (c) => configs.push(c), onRejected: () => undefined, log: (m) => logs.push(`[infergate] ${m}\n`) });
    await waitFor(async () => configs.at(-1)?.pools[0]?.endpoints.length === 2, 10_000);
    const config = configs.at(-1)!;
    assert.deepEqual(config.pools[0]!.endpoints.map((e) => `${e.ip}:${e.port}`), ["10.1.0.11:8000", "10.1.0.12:8000"]);
    assert.deepEqual(config.pools[0]!.attachTo, { name: "inference-gateway", port: 8081 });
    assert.deepEqual(config.models[0]!.targets, [{ name: "qwq-32b", weight: 100 }]);

    await custom.patchNamespacedCustomObject({ group: GROUP, version: "v1alpha1", namespace: "default", plural: "inferencemodels", name: "inferencemodel-sample",
      body: { spec: { targetModels: [{ name: "qwq-32b", weight: 90 }, { name: "qwq-32b-canary", weight: 10 }] } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    await waitFor(async () => configs.at(-1)!.models[0]!.targets.length === 2, 10_000);
    await core.deleteNamespacedPod({ name: "qwq-32b-1", namespace: "default", gracePeriodSeconds: 0 });
    await waitFor(async () => configs.at(-1)!.pools[0]!.endpoints.length === 1, 10_000);
  });

  it("writes InferencePool status conditions the API server accepts", async () => {
    const custom = kc.makeApiClient(CustomObjectsApi);
    await waitFor(async () => {
      const pool = await custom.getNamespacedCustomObject({ group: GROUP, version: "v1alpha1", namespace: "default", plural: "inferencepools", name: "reasoning-pool" }) as any;
      const conditions = pool.status?.parent?.[0]?.conditions ?? [];
      return conditions.some((c: any) => c.type === "Accepted" && c.status === "True");
    }, 10_000, 200).catch(async (err) => {
      const pool = await custom.getNamespacedCustomObject({ group: GROUP, version: "v1alpha1", namespace: "default", plural: "inferencepools", name: "reasoning-pool" });
      throw new Error(`${String(err)}\n${JSON.stringify(pool)}\n${logs.filter((l) => l.startsWith("[infergate]")).join("")}`);
    });
  });

  it("reads InferenceObjectives and InferenceModelRewrites, and writes their status (a rewrite losing a model name to an InferenceModel says so)", async () => {
    const custom = kc.makeApiClient(CustomObjectsApi);
    const create = (plural: string, body: object) => custom.createNamespacedCustomObject({ group: GROUP, version: "v1alpha2", namespace: "default", plural, body });
    await create("inferenceobjectives", { apiVersion: `${GROUP}/v1alpha2`, kind: "InferenceObjective", metadata: { name: "batch" }, spec: { priority: -2, poolRef: { name: "reasoning-pool" } } });
    await create("inferencemodelrewrites", { apiVersion: `${GROUP}/v1alpha2`, kind: "InferenceModelRewrite", metadata: { name: "assistant" },
      spec: { poolRef: { name: "reasoning-pool" }, rules: [{ matches: [{ model: { value: "assistant" } }, { model: { value: "qwq" } }], targets: [{ modelRewrite: "qwq-32b", weight: 1 }] }] } });
    await waitFor(async () => configs.at(-1)!.objectives.length === 1 && configs.at(-1)!.models.some((m) => m.modelName === "assistant"), 10_000)
      .catch((err) => { throw new Error(`${String(err)}\n${JSON.stringify(configs.at(-1)!.problems)}\n${logs.join("")}`); });
    const config = configs.at(-1)!;
    assert.deepEqual(config.objectives, [{ resourceName: "batch", namespace: "default", pool: "default/reasoning-pool", priority: -2 }]);
    assert.equal(config.models.find((m) => m.modelName === "qwq")!.source, undefined, "the InferenceModel keeps qwq");
    const status = async (plural: string, name: string) => ((await custom.getNamespacedCustomObject({ group: GROUP, version: "v1alpha2", namespace: "default", plural, name })) as any).status?.conditions?.[0];
    await waitFor(async () => (await status("inferencemodelrewrites", "assistant"))?.status === "True" && (await status("inferenceobjectives", "batch"))?.status === "True", 10_000, 200);
    assert.match((await status("inferencemodelrewrites", "assistant")).message, /Routed by infergate: assistant; left out: .*qwq is already served by InferenceModel default\/inferencemodel-sample/);
  });

  it("attaches to another namespace's Gateway only once that namespace grants it, reporting the refusal in the pool's status", async () => {
    const custom = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    for (const name of ["team-a", "prod"]) await core.createNamespace({ body: { metadata: { name } } });
    await custom.createNamespacedCustomObject({ group: GROUP, version: "v1alpha1", namespace: "team-a", plural: "inferencepools", body: {
      apiVersion: `${GROUP}/v1alpha1`, kind: "InferencePool",
      metadata: { name: "llm", annotations: { "inference.networking.x-k8s.io/attach-to": "name: shared-gw\nnamespace: prod\n" } },
      spec: { targetPortNumber: 8000, selector: { app: "llm" } },
    } });
    const pool = () => configs.at(-1)!.pools.find((p) => p.id === "team-a/llm");
    const status = async () => ((await custom.getNamespacedCustomObject({ group: GROUP, version: "v1alpha1", namespace: "team-a", plural: "inferencepools", name: "llm" })) as any).status;
    await waitFor(async () => pool()?.refusedAttachTo !== undefined, 10_000);
    assert.equal(pool()!.attachTo, undefined);
    await waitFor(async () => (await status())?.parent?.[0]?.conditions?.[0]?.reason === "RefNotPermitted", 10_000, 200);
    const refused = (await status()).parent[0];
    assert.deepEqual(refused.parentRef, { group: "gateway.networking.k8s.io", kind: "Gateway", name: "shared-gw", namespace: "prod" });
    assert.equal(refused.conditions[0].type, "Accepted");
    assert.equal(refused.conditions[0].status, "False");
    assert.match(refused.conditions[0].message, /no ReferenceGrant in namespace prod lets InferencePool .* from namespace team-a refer to it/);

    await custom.createNamespacedCustomObject({ group: "gateway.networking.k8s.io", version: "v1beta1", namespace: "prod", plural: "referencegrants", body: {
      apiVersion: "gateway.networking.k8s.io/v1beta1", kind: "ReferenceGrant", metadata: { name: "team-a-pools" },
      spec: { from: [{ group: GROUP, kind: "InferencePool", namespace: "team-a" }], to: [{ group: "gateway.networking.k8s.io", kind: "Gateway", name: "shared-gw" }] },
    } });
    await waitFor(async () => pool()?.attachTo !== undefined, 10_000);
    assert.deepEqual(pool()!.attachTo, { name: "shared-gw", namespace: "prod" });
    await waitFor(async () => (await status())?.parent?.[0]?.conditions?.[0]?.status === "True", 10_000, 200);
  });

  it("keeps another controller's entry in a pool's status, and reports only on pools whose attach-to names a Gateway (and on the objects referring to them)", async () => {
    const custom = kc.makeApiClient(CustomObjectsApi);
    const V1 = { group: "inference.networking.k8s.io", version: "v1", namespace: "default", plural: "inferencepools", name: "shared" };
    await custom.createNamespacedCustomObject({ ...V1, body: {
      apiVersion: "inference.networking.k8s.io/v1", kind: "InferencePool", metadata: { name: "shared" },
      spec: { selector: { matchLabels: { app: "shared" } }, targetPorts: [{ number: 8000 }], endpointPickerRef: { name: "their-epp", port: { number: 9002 } } },
    } });
    // Another Gateway implementation reports on this pool for its own Gateway.
    const theirs = { parentRef: { group: "gateway.networking.k8s.io", kind: "Gateway", name: "istio-gw", namespace: "default" }, controllerName: "istio.io/gateway-controller",
      conditions: [{ type: "Accepted", status: "True", reason: "Accepted", message: "theirs", lastTransitionTime: "2026-01-01T00:00:00Z", observedGeneration: 1 }] };
    await custom.patchNamespacedCustomObjectStatus({ ...V1, body: { status: { parents: [theirs] } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    const parents = async (): Promise<any[]> => ((await custom.getNamespacedCustomObject(V1)) as any).status?.parents ?? [];
    // An InferenceObjective on that pool: its status follows the pool's.
    const OBJECTIVE = { group: GROUP, version: "v1alpha2", namespace: "default", plural: "inferenceobjectives", name: "shared-batch" };
    await custom.createNamespacedCustomObject({ ...OBJECTIVE, body: {
      apiVersion: `${GROUP}/v1alpha2`, kind: "InferenceObjective", metadata: { name: "shared-batch" },
      spec: { priority: -1, poolRef: { group: "inference.networking.k8s.io", name: "shared" } },
    } });
    const objectiveStatus = async () => ((await custom.getNamespacedCustomObject(OBJECTIVE)) as any).status;
    // No attach-to: not infergate's pool. It is served (it is valid), and its status is left alone,
    // and so is the status of the objective on it.
    await waitFor(async () => configs.at(-1)!.pools.some((p) => p.id === "default/shared") && configs.at(-1)!.objectives.some((o) => o.resourceName === "shared-batch"), 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(await parents(), [theirs]);
    assert.equal(await objectiveStatus(), undefined, "no status on an objective of a pool infergate does not serve");

    await custom.patchNamespacedCustomObject({ ...V1, body: { metadata: { annotations: { "inference.networking.x-k8s.io/attach-to": "name: inference-gateway\n" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    await waitFor(async () => (await parents()).length === 2, 10_000, 200);
    const [first, ours] = await parents();
    assert.deepEqual(first, theirs, "the other controller's entry is untouched");
    assert.equal(ours.controllerName, "infergate.io/extension-server");
    assert.deepEqual(ours.parentRef, { group: "gateway.networking.k8s.io", kind: "Gateway", name: "inference-gateway", namespace: "default" });
    // The pool names an endpoint picker Service that does not exist (the v1 CRD requires the
    // field): infergate would route through it, so the reference is reported unresolved.
    assert.deepEqual(ours.conditions.map((c: any) => [c.type, c.status, c.reason]), [["Accepted", "True", "Accepted"], ["ResolvedRefs", "False", "InvalidExtensionRef"]]);
    await waitFor(async () => (await objectiveStatus())?.conditions?.[0]?.status === "True", 10_000, 200);

    // The annotation goes away: infergate removes its own entry, and only its own.
    await custom.patchNamespacedCustomObject({ ...V1, body: { metadata: { annotations: { "inference.networking.x-k8s.io/attach-to": null } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    await waitFor(async () => (await parents()).length === 1, 10_000, 200);
    assert.deepEqual(await parents(), [theirs]);
  });

  it("runs as the namespaced install: Roles in the watched namespaces are enough, and nothing else is seen", async () => {
    await source!.stop();
    source = undefined;
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    await core.createNamespace({ body: { metadata: { name: "team-b" } } });
    // Without the cluster-wide binding, only the namespaced install's Roles authorize infergate.
    const rbac = await api!.raw("DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/infergate");
    assert.equal(rbac.status, 200, rbac.text);
    const docs = parseAllDocuments(readFileSync(join(repo, "manifests/kubernetes/infergate-namespaced.yaml"), "utf8")).map((d) => d.toJS());
    for (const doc of docs) await api!.create(doc, { ifMissing: true });
    const args: string[] = docs.find((d) => d.kind === "Deployment").spec.template.spec.containers[0].args;
    const namespaces = args.find((a) => a.startsWith("--watch-namespaces="))!.split("=")[1]!.split(",");
    assert.deepEqual(namespaces, ["team-a", "team-b"]);
    await waitFor(async () => {
      try { await infergateKc.makeApiClient(CustomObjectsApi).listClusterCustomObject({ group: GROUP, version: "v1alpha1", plural: "inferencepools" }); return false; } catch (err) { return (err as { code?: number }).code === 403; }
    }, 10_000, 200);

    await custom.createNamespacedCustomObject({ group: GROUP, version: "v1alpha1", namespace: "team-b", plural: "inferencepools", body: {
      apiVersion: `${GROUP}/v1alpha1`, kind: "InferencePool",
      metadata: { name: "pool-b", annotations: { "inference.networking.x-k8s.io/attach-to": "name: gw-b\n" } },
      spec: { targetPortNumber: 8000, selector: { app: "b" } },
    } });
    // The kinds traffic management reads, in a watched namespace: an objective, a rewrite and an
    // HTTPRoute splitting between two pools.
    await custom.createNamespacedCustomObject({ group: GROUP, version: "v1alpha1", namespace: "team-b", plural: "inferencepools", body: {
      apiVersion: `${GROUP}/v1alpha1`, kind: "InferencePool", metadata: { name: "pool-b2" }, spec: { targetPortNumber: 8000, selector: { app: "b2" } },
    } });
    await custom.createNamespacedCustomObject({ group: GROUP, version: "v1alpha2", namespace: "team-b", plural: "inferenceobjectives", body: {
      apiVersion: `${GROUP}/v1alpha2`, kind: "InferenceObjective", metadata: { name: "batch-b" }, spec: { priority: -1, poolRef: { name: "pool-b" } },
    } });
    await custom.createNamespacedCustomObject({ group: GROUP, version: "v1alpha2", namespace: "team-b", plural: "inferencemodelrewrites", body: {
      apiVersion: `${GROUP}/v1alpha2`, kind: "InferenceModelRewrite", metadata: { name: "rewrite-b" },
      spec: { poolRef: { name: "pool-b" }, rules: [{ matches: [{ model: { value: "model-b" } }], targets: [{ modelRewrite: "model-b-v2" }] }] },
    } });
    await custom.createNamespacedCustomObject({ group: "gateway.networking.k8s.io", version: "v1", namespace: "team-b", plural: "httproutes", body: {
      apiVersion: "gateway.networking.k8s.io/v1", kind: "HTTPRoute", metadata: { name: "split-b" },
      spec: { parentRefs: [{ name: "gw-b" }], rules: [{ backendRefs: [
        { group: GROUP, kind: "InferencePool", name: "pool-b", weight: 90 }, { group: GROUP, kind: "InferencePool", name: "pool-b2", weight: 10 },
      ] }] },
    } });
    const namespaced: RoutingConfig[] = [];
    const logs: string[] = [];
    const scoped = new KubeSource(infergateKc, { namespaces });
    try {
      await scoped.start({ onConfig: (c) => namespaced.push(c), onRejected: () => undefined, log: (m) => logs.push(m) });
      assert.deepEqual(logs.filter((l) => /not watching/.test(l)), [], "every version is watched in both namespaces");
      await waitFor(async () => namespaced.at(-1)?.pools.length === 3 && namespaced.at(-1)!.routes.length === 1, 10_000);
      const config = namespaced.at(-1)!;
      assert.deepEqual(config.pools.map((p) => p.id).sort(), ["team-a/llm", "team-b/pool-b", "team-b/pool-b2"], "only the watched namespaces");
      assert.deepEqual(config.objectives.map((o) => `${o.namespace}/${o.resourceName}`), ["team-b/batch-b"]);
      assert.deepEqual(config.models.map((m) => `${m.namespace}/${m.modelName}`), ["team-b/model-b"]);
      assert.deepEqual(config.routes.map((r) => [r.cluster, r.backends]), [["httproute/team-b/split-b/rule/0", [{ pool: "team-b/pool-b", weight: 90 }, { pool: "team-b/pool-b2", weight: 10 }]]]);
      // The ReferenceGrant in prod (not watched) cannot be read: team-a's cross-namespace attach-to is refused.
      assert.equal(namespaced.at(-1)!.pools.find((p) => p.id === "team-a/llm")!.attachTo, undefined);
      // Status writes are authorized by the Role.
      await waitFor(async () => {
        const pool = await custom.getNamespacedCustomObject({ group: GROUP, version: "v1alpha1", namespace: "team-b", plural: "inferencepools", name: "pool-b" }) as any;
        return pool.status?.parent?.[0]?.conditions?.[0]?.status === "True";
      }, 10_000, 200).catch((err) => { throw new Error(`${String(err)}\n${logs.join("\n")}`); });
      // ... and so are those of the objective and the rewrite on that pool.
      const conditionOf = async (plural: string, name: string) =>
        ((await custom.getNamespacedCustomObject({ group: GROUP, version: "v1alpha2", namespace: "team-b", plural, name })) as any).status?.conditions?.[0];
      await waitFor(async () => (await conditionOf("inferenceobjectives", "batch-b"))?.status === "True" && (await conditionOf("inferencemodelrewrites", "rewrite-b"))?.status === "True", 10_000, 200)
        .catch((err) => { throw new Error(`${String(err)}\n${logs.join("\n")}`); });
    } finally {
      await scoped.stop();
    }
  });
});
