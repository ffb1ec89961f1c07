// The Kubernetes source resolving v1 InferencePools' endpointPickerRef against a real
// kube-apiserver (scripts/build-kube-apiserver.sh) with the Inference Extension's own v1
// InferencePool CRD (from the v1.5.0 module scripts/build-epp.sh fetches): the Service is read
// from the API, and the ResolvedRefs condition infergate writes (ResolvedRefs, or
// InvalidExtensionRef while the Service is missing) is accepted by the CRD's status schema and reads
// back, and so does the status of a pool that names no picker. Runs inside scripts/test-e2e.sh's
// network namespace.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import type { RoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import { KubeSource } from "../../extension-server/src/config/kube-source.ts";
import { eppBinaries } from "../../bench/peers/gie-epp.ts";
import { startKubeApiServer, type KubeApiServer } from "../support/kube-apiserver.ts";
import { waitFor } from "../support/stack.ts";

const POOLS = "/apis/inference.networking.k8s.io/v1/namespaces/team/inferencepools";

describe("endpoint picker references against a real kube-apiserver and the Inference Extension's v1 CRD", () => {
  let api: KubeApiServer | undefined;
  let source: KubeSource | undefined;
  const configs: RoutingConfig[] = [];
  const logs: string[] = [];

  before(async () => {
    api = await startKubeApiServer();
    const crd = join(eppBinaries().moduleDir, "config", "crd", "bases", "inference.networking.k8s.io_inferencepools.yaml");
    // As the v1.6 CRD has it (#2898): endpointPickerRef optional; v1.5.0's CRD requires it.
    const crds = parseAllDocuments(readFileSync(crd, "utf8")).map((d) => d.toJS());
    for (const v of crds[0].spec.versions) {
      const spec = v.schema.openAPIV3Schema.properties.spec;
      spec.required = spec.required.filter((f: string) => f !== "endpointPickerRef");
    }
    await api.installCrds(crds);
    const ok = async (r: Promise<{ status: number; text: string }>): Promise<void> => {
      const { status, text } = await r;
      assert.ok(status >= 200 && status < 300, `HTTP ${status}: ${text}`);
    };
    await ok(api.raw("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "team" } }));
    const pool = (name: string, ref?: Record<string, unknown>) => ({
      apiVersion: "inference.networking.k8s.io/v1", kind: "InferencePool",
      metadata: { name, namespace: "team", annotations: { "inference.networking.x-k8s.io/attach-to": "name: inference-gateway\n" } },
      spec: { selector: { matchLabels: { app: "llm" } }, targetPorts: [{ number: 8000 }], ...(ref ? { endpointPickerRef: ref } : {}) },
    });
    await ok(api.raw("POST", POOLS, pool("picked", { name: "epp", port: { number: 9002 }, failureMode: "FailClose" })));
    source = new KubeSource(api.kc);
    await source.start({ onConfig: (c) => configs.push(c), onRejected: () => undefined, log: (m) => logs.push(m) });
  });

  after(async () => {
    await source?.stop();
    await api?.stop();
  });

  const resolvedRefs = async (name: string): Promise<any> => {
    const { text } = await api!.raw("GET", `${POOLS}/${name}`);
    return JSON.parse(text).status?.parents?.[0]?.conditions?.find((c: any) => c.type === "ResolvedRefs");
  };

  it("reports ResolvedRefs=False, InvalidExtensionRef, while the Service does not exist; the pool stays", async () => {
    await waitFor(async () => (await resolvedRefs("picked"))?.status === "False", 10_000, 100)
      .catch((err) => { throw new Error(`${String(err)}\n${logs.join("\n")}`); });
    const c = await resolvedRefs("picked");
    assert.equal(c.reason, "InvalidExtensionRef");
    assert.match(c.message, /Service team\/epp not found; requests get 503 \(FailClose\)/);
    assert.equal(configs.at(-1)!.pools[0]!.name, "picked");
  });

  it("resolves once the Service is created: its cluster IP and port, ResolvedRefs=True", async () => {
    const { status, text } = await api!.raw("POST", "/api/v1/namespaces/team/services", {
      apiVersion: "v1", kind: "Service", metadata: { name: "epp", namespace: "team" },
      spec: { clusterIP: "10.0.0.42", ports: [{ name: "grpc-ext-proc", port: 9002, protocol: "TCP", targetPort: 9002 }], selector: { app: "epp" } },
    });
    assert.equal(status, 201, text);
    await waitFor(async () => configs.at(-1)!.pools[0]!.picker?.address?.ip === "10.0.0.42", 10_000, 100);
    assert.deepEqual(configs.at(-1)!.pools[0]!.picker?.address, { ip: "10.0.0.42", port: 9002, tls: true });
    await waitFor(async () => (await resolvedRefs("picked"))?.status === "True", 10_000, 100);
    assert.match((await resolvedRefs("picked")).message, /Endpoint picker Service team\/epp port 9002 picks/);
  });

  it("says a v1 pool that names no picker is routed by infergate (the field is optional since v1.6 of the API)", async () => {
    const { status, text } = await api!.raw("POST", POOLS, {
      apiVersion: "inference.networking.k8s.io/v1", kind: "InferencePool",
      metadata: { name: "own", namespace: "team", annotations: { "inference.networking.x-k8s.io/attach-to": "name: inference-gateway\n" } },
      spec: { selector: { matchLabels: { app: "llm" } }, targetPorts: [{ number: 8000 }] },
    });
    assert.equal(status, 201, text);
    await waitFor(async () => (await resolvedRefs("own"))?.status === "True", 10_000, 100);
    const c = await resolvedRefs("own");
    assert.equal(c.reason, "ResolvedRefs");
    assert.match(c.message, /No endpointPickerRef: infergate picks endpoints itself/);
    assert.equal(configs.at(-1)!.pools.find((p) => p.name === "own")!.picker, undefined);
  });
});
