// The Kubernetes source against a real kube-apiserver and etcd (built from their Go modules by
// scripts/build-kube-apiserver.sh): our CRDs install, the seed's InferencePool and InferenceModel
// are created as written, Pods get IPs through the status subresource, informers follow changes,
// the InferencePool status written by infergate reads back from the API server, and an attach-to
// naming another namespace's Gateway waits for that namespace's ReferenceGrant.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CoreV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import type { RoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import { KubeSource } from "../../extension-server/src/config/kube-source.ts";
import { gatewayApiCrd, startKubeApiServer, type KubeApiServer } from "../support/kube-apiserver.ts";
import { waitFor } from "../support/stack.ts";

const repo = new URL("../..", import.meta.url).pathname;
const GROUP = "inference.networking.x-k8s.io";

describe("Kubernetes source against a real kube-apiserver", () => {
  const logs: string[] = [];
  let api: KubeApiServer | undefined;
  let kc: KubeConfig;
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
    assert.equal(crds.filter((c) => c.spec.group === GROUP).length, 2);
    // Gateway API's ReferenceGrant, as installed with Envoy Gateway.
    await api!.installCrds([gatewayApiCrd("referencegrants")]);
  });

  it("accepts infergate's install manifests (RBAC, Deployment, Service, NetworkPolicy)", async () => {
    const docs = parseAllDocuments(readFileSync(join(repo, "manifests/kubernetes/infergate.yaml"), "utf8")).map((d) => d.toJS());
    for (const doc of docs) await api!.create(doc);
    assert.deepEqual(docs.map((d) => d.kind).sort(), ["ClusterRole", "ClusterRoleBinding", "Deployment", "Namespace", "NetworkPolicy", "Service", "ServiceAccount"]);
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
    source = new KubeSource(kc);
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
});
