// infergate as the gateway of the Inference Extension's real endpoint picker (EPP v1.5.0, built
// from its Go module by scripts/build-epp.sh, watching a real kube-apiserver; bench/peers/gie-epp.ts
// startEpp), in standalone mode: the YAML's v1 InferencePools name the EPP's Service in their
// endpointPickerRef, and Envoy calls it over ext_proc with TLS (the EPP's default). The EPP runs
// the conformance suite's test plugins (v1.5.0 ships them): `header-based-testing-filter` picks the
// endpoints the request header `test-epp-endpoint-selection` lists, and
// `destination-endpoint-served-verifier` echoes the served endpoint that Envoy reports in `envoy.lb`
// metadata as `x-conformance-test-served-endpoint`. Runs inside scripts/test-e2e.sh's namespace.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { InfergateServer } from "../../extension-server/src/server.ts";
import { startSimServer, type SimServer } from "../../sim/server.ts";
import { startEpp, type Epp } from "../../bench/peers/gie-epp.ts";
import { postJson, waitFor } from "../support/stack.ts";
import { scratchDir } from "../support/scratch-dir.ts";

const IPS = ["127.0.11.1", "127.0.11.2", "127.0.11.3"];
const at = (ip: string): string => `${ip}:8000`;
const OUTSIDER = "127.0.11.99";
const MODELS = ["qwen3", "qwen3-strict"];

/** The conformance suite's EPP plugins, plus a queue scorer and a picker that returns two
 * endpoints (an ordered fallback list) instead of one. */
const EPP_CONFIG = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: header-based-testing-filter
- type: queue-scorer
- type: max-score-picker
  parameters: {maxNumOfEndpoints: 2}
- type: destination-endpoint-served-verifier
- type: metrics-data-source
  parameters: {scheme: "http", path: "/metrics", insecureSkipVerify: true}
- type: core-metrics-extractor
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: header-based-testing-filter
  - pluginRef: queue-scorer
  - pluginRef: max-score-picker
`;

/** Two pools over the same Pods, both naming the EPP's Service: one fails open, one closed. */
function infergateYaml(eppPort: number): string {
  const pool = (name: string, label: string, failureMode: string): string => `---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: ${name}, namespace: gie}
spec:
  selector: {matchLabels: {${label}: "yes"}}
  targetPorts: [{number: 8000}]
  endpointPickerRef: {name: gie-pool-epp, port: {number: ${eppPort}}, failureMode: ${failureMode}}
`;
  const model = (name: string, poolName: string): string => `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: ${name}, namespace: gie}
spec: {modelName: ${name}, criticality: Critical, poolRef: {name: ${poolName}}}
`;
  const pods = IPS.map((ip, i) => `---
apiVersion: v1
kind: Pod
metadata: {name: gie-pool-${i}, namespace: gie, labels: {open: "yes", strict: "yes"}}
status: {phase: Running, podIP: ${ip}}
`).join("");
  return pool("gie-pool", "open", "FailOpen") + pool("gie-strict", "strict", "FailClose") + `---
apiVersion: v1
kind: Service
metadata: {name: gie-pool-epp, namespace: gie}
spec: {clusterIP: 127.0.0.1, ports: [{name: grpc-ext-proc, port: ${eppPort}, protocol: TCP}]}
` + model("qwen3", "gie-pool") + model("qwen3-strict", "gie-strict") + pods;
}

describe("infergate as the gateway of the real EPP v1.5.0 (endpoint picker protocol over ext_proc, TLS)", () => {
  let sims: SimServer[] = [];
  let outsider: SimServer | undefined;
  let epp: Epp | undefined;
  let server: InfergateServer | undefined;
  let url = "";
  let seq = 0;
  const body = (model = "qwen3", prompt = `request ${++seq}`): Record<string, unknown> => ({ model, prompt, max_tokens: 1 });

  before(async () => {
    sims = await Promise.all(IPS.map((host) => startSimServer({ host, port: 8000, servedModels: MODELS, ttftMs: 1, itlMs: 0 })));
    outsider = await startSimServer({ host: OUTSIDER, port: 8000, servedModels: MODELS, ttftMs: 1, itlMs: 0 });
    epp = await startEpp({ replicas: IPS.map(at), eppConfig: EPP_CONFIG, timeoutMs: 100_000 });
    const dir = scratchDir("infergate-epp-e2e");
    writeFileSync(join(dir, "pools.yaml"), infergateYaml(epp.grpcPort));
    server = new InfergateServer({
      source: { file: join(dir, "pools.yaml") }, xdsPort: 0, log: () => undefined,
      envoy: { adminPort: 0, plainPort: 0, inferencePort: 0, concurrency: 2, logLevel: "warn" },
    });
    await server.start();
    const listeners = await server.envoy!.listenerAddresses();
    url = `http://${[...listeners].find(([name]) => name.startsWith("inference-"))![1]}/v1/completions`;
    await eppAnswersBothPools(20_000);
  });

  after(async () => {
    await server?.stop();
    await epp?.stop();
    await Promise.all([...sims, ...(outsider ? [outsider] : [])].map((s) => s.close()));
  });

  /** Both pools' picker clusters have passed a health check (until then requests fail open, or
   * closed): the EPP's verifier header shows it handled a request of each. */
  const eppAnswersBothPools = (timeoutMs: number): Promise<number> => waitFor(async () => {
    for (const model of MODELS) {
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", "test-epp-endpoint-selection": IPS[0]! }, body: JSON.stringify(body(model)) });
      await res.text();
      if (res.headers.get("x-conformance-test-served-endpoint") !== at(IPS[0]!)) return false;
    }
    return true;
  }, timeoutMs, 200).catch((err) => { throw new Error(`${String(err)}\n${epp!.eppLogs().slice(-15).join("\n")}`); });

  const stat = async (name: string): Promise<number> => {
    const text = await server!.envoy!.admin(`stats?filter=${encodeURIComponent(name)}`);
    return Number(new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: (\\d+)$`, "m").exec(text)?.[1] ?? 0);
  };

  it("serves each request where the EPP says, never where the client's x-gateway-destination-endpoint says", async () => {
    for (const ip of IPS) {
      for (const forged of [IPS.find((x) => x !== ip)!, OUTSIDER]) {
        const r = await postJson(url, body(), { "test-epp-endpoint-selection": ip, "x-gateway-destination-endpoint": at(forged) });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.servedBy, at(ip));
      }
    }
    assert.equal(outsider!.stats().requests, 0);
  });

  it("reports the served endpoint: the EPP's conformance verifier reads it from envoy.lb on the response path", async () => {
    for (const ip of IPS) {
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", "test-epp-endpoint-selection": ip }, body: JSON.stringify(body()) });
      await res.text();
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-served-by"), at(ip));
      assert.equal(res.headers.get("x-conformance-test-served-endpoint"), at(ip), "what the EPP saw in envoy.lb");
      assert.equal(res.headers.get("x-gateway-destination-endpoint-served"), at(ip));
    }
  });

  it("walks the EPP's two-endpoint list when its first choice is down", async () => {
    // The queue scorer puts the idle replica 0 first and the loaded replica 1 second.
    await fetch(`http://${at(IPS[1]!)}/admin/load`, { method: "POST", body: JSON.stringify({ waiting: 50 }) });
    await waitFor(async () => [...(await epp!.eppQueueSizes()).entries()].some(([pod, q]) => pod.startsWith("gie-pool-1") && q === 50), 5000, 20);
    await sims[0]!.close();
    const retries = await stat("cluster.infergate-pool/gie/gie-pool-picked.upstream_rq_retry");
    for (let i = 0; i < 5; i++) {
      const r = await postJson(url, body(), { "test-epp-endpoint-selection": `${IPS[0]},${IPS[1]}` });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.servedBy, at(IPS[1]!));
    }
    assert.ok(await stat("cluster.infergate-pool/gie/gie-pool-picked.upstream_rq_retry") >= retries + 5, "each request was first sent to the dead replica");
    sims[0] = await startSimServer({ host: IPS[0]!, port: 8000, servedModels: MODELS, ttftMs: 1, itlMs: 0 });
    await fetch(`http://${at(IPS[1]!)}/admin/load`, { method: "POST", body: "{}" });
  });

  it("with the EPP killed: FailOpen pools are routed by infergate, bodies included; FailClose pools get 503; both use the EPP again once it is back", async () => {
    await epp!.stopEpp();
    // Until Envoy has seen the EPP go (first refused connection, or the next health check).
    await waitFor(async () => (await postJson(url, body())).status === 200, 5000, 50);
    const before = sims.map((s) => s.stats().requests);
    for (const size of [16, 4096, 200_000]) {
      for (let i = 0; i < 3; i++) {
        const open = await postJson(url, body("qwen3", "x".repeat(size)));
        assert.equal(open.status, 200, open.text);
        assert.ok(IPS.map(at).includes(open.servedBy!));
        assert.equal(open.servedBy === null, false);
        const strict = await postJson(url, body("qwen3-strict", "x".repeat(size)));
        assert.equal(strict.status, 503, strict.text);
      }
    }
    assert.equal(sims.reduce((n, s, i) => n + s.stats().requests - before[i]!, 0), 9, "only the FailOpen requests reached a replica");
    await epp!.restartEpp();
    // Each pool's picker cluster passes its own health check again.
    await eppAnswersBothPools(15_000);
    for (const model of MODELS) {
      for (const ip of IPS) assert.equal((await postJson(url, body(model), { "test-epp-endpoint-selection": ip })).servedBy, at(ip));
    }
  });
});
