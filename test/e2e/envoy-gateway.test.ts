// infergate as an extension of the real Envoy Gateway (built from its Go module, standalone mode
// with the file provider and host infrastructure), the pinned Envoy, and simulated replicas. Runs
// inside a private network namespace (scripts/test-e2e.sh).
import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { envoyBinary, ENVOY_VERSION } from "../../extension-server/src/envoy/process.ts";
import { InfergateServer } from "../../extension-server/src/server.ts";
import { startSimServer, type SimServer } from "../../sim/server.ts";
import { startFakePicker, type FakePicker } from "../support/fake-picker.ts";
import { podsYaml, postJson, waitFor } from "../support/stack.ts";

const repo = new URL("../..", import.meta.url).pathname;
const IPS = ["127.0.7.11", "127.0.7.12"];
const POOL = new Set(IPS.map((ip) => `${ip}:8000`));
const PLAIN_PORT = 8080;
const INFERENCE_PORT = 18081;
const HOOKS_PORT = 5005;
const XDS_PORT = 18100;
const SEED_REQUEST = { model: "qwq", messages: [{ role: "user", content: "Who are you?" }] };
/** The v1 pool with an endpoint picker (manifests/envoy-gateway/standalone/gateway.yaml). */
const PICKED_IPS = ["127.0.7.21", "127.0.7.22"];
const PICKER_PORT = 19_202;
const PICKED_YAML = `---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: picked-pool, namespace: default, annotations: {inference.networking.x-k8s.io/attach-to: "name: inference-gateway\\nport: ${INFERENCE_PORT}\\n"}}
spec:
  targetPorts: [{number: 8000}]
  selector: {matchLabels: {app: picked}}
  endpointPickerRef: {name: picker, port: {number: ${PICKER_PORT}}, failureMode: FailOpen}
---
apiVersion: v1
kind: Service
metadata: {name: picker, namespace: default}
spec: {clusterIP: 127.0.0.1, ports: [{port: ${PICKER_PORT}, appProtocol: kubernetes.io/h2c}]}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: picked-model, namespace: default}
spec: {modelName: picked-model, criticality: Critical, poolRef: {name: picked-pool}}
${podsYaml("picked", PICKED_IPS)}`;

/** The seed's InferencePool and InferenceModel (attach-to moved to this host's port) plus Pods. */
function infergateConfig(target: string): string {
  const [pool, model] = readFileSync(join(repo, "manifests/standalone/seed.yaml"), "utf8").split(/^---$/m);
  return [pool!.replace("port: 8081", `port: ${INFERENCE_PORT}`), model!.replace("name: qwq-32b\n    weight: 100", `name: ${target}\n    weight: 100`)].join("---") + podsYaml("qwq-32b", IPS) + PICKED_YAML;
}

function fill(template: string, values: Record<string, string>): string {
  return template.replace(/@([A-Z_]+)@/g, (_, k: string) => values[k] ?? `@${k}@`);
}

describe("Envoy Gateway extension, end to end", () => {
  const home = mkdtempSync(join(tmpdir(), "infergate-eg-"));
  const configPath = join(home, "infergate.yaml");
  let sims: SimServer[] = [];
  let picker: FakePicker | undefined;
  let server: InfergateServer;
  let eg: ChildProcess | undefined;
  let egLog = "";

  before(async () => {
    const egBin = process.env.EG_BIN;
    assert.ok(egBin, "EG_BIN is set by scripts/test-e2e.sh");
    sims = await Promise.all([
      ...IPS.map((host) => startSimServer({ host, port: 8000, servedModels: ["qwq-32b", "qwq", "qwq-32b-canary"] })),
      ...PICKED_IPS.map((host) => startSimServer({ host, port: 8000, servedModels: ["picked-model"], ttftMs: 1, itlMs: 0 })),
    ]);
    picker = await startFakePicker({ port: PICKER_PORT, pick: () => ({ endpoints: [`${PICKED_IPS[1]}:8000`] }) });
    writeFileSync(configPath, infergateConfig("qwq-32b"));
    // As in a cluster: Envoy downloads the module from this server (a cluster the Translation hook
    // adds), not from a local file.
    server = new InfergateServer({ source: { file: configPath }, xdsPort: XDS_PORT, hooksPort: HOOKS_PORT, metricsPort: 9191, moduleAdvertise: { host: "127.0.0.1" }, log: () => undefined });
    await server.start();
    // Envoy Gateway's host infrastructure runs Envoy through func-e, which uses a binary already
    // at <dataHome>/envoy-versions/<version>/bin/envoy instead of downloading one.
    const envoyDir = join(home, "data", "envoy-versions", ENVOY_VERSION, "bin");
    mkdirSync(envoyDir, { recursive: true });
    copyFileSync(envoyBinary(), join(envoyDir, "envoy"));
    execFileSync(egBin, ["certgen", "--local", "--config-home", join(home, "config")], { stdio: "ignore" });
    const resources = join(home, "resources");
    mkdirSync(resources);
    const values = {
      RESOURCES: resources, HOME: home, HOOKS_PORT: String(HOOKS_PORT), ENVOY_VERSION, PLAIN_PORT: String(PLAIN_PORT),
      INFERENCE_PORT: String(INFERENCE_PORT), ENDPOINTS: JSON.stringify(IPS.map((address) => ({ ip: { address, port: 8000 } }))), PICKER_PORT: String(PICKER_PORT),
    };
    const manifests = join(repo, "manifests/envoy-gateway/standalone");
    writeFileSync(join(home, "envoy-gateway.yaml"), fill(readFileSync(join(manifests, "envoy-gateway.yaml"), "utf8"), values));
    writeFileSync(join(resources, "gateway.yaml"), fill(readFileSync(join(manifests, "gateway.yaml"), "utf8"), values));
    eg = spawn(egBin, ["server", "--config-path", join(home, "envoy-gateway.yaml")], { env: { ...process.env, HOME: home }, stdio: ["ignore", "pipe", "pipe"], detached: true });
    eg.stdout!.on("data", (c: Buffer) => { egLog = (egLog + c.toString()).slice(-20_000); });
    eg.stderr!.on("data", (c: Buffer) => { egLog = (egLog + c.toString()).slice(-20_000); });
    await waitFor(async () => {
      try { return (await postJson(`http://127.0.0.1:${INFERENCE_PORT}/v1/chat/completions`, SEED_REQUEST)).status === 200; } catch { return false; }
    }, 90_000, 250).catch((err) => { throw new Error(`${String(err)}\n--- Envoy Gateway log ---\n${egLog.slice(-4000)}`); });
  });

  after(async () => {
    if (eg?.pid) { try { process.kill(-eg.pid, "SIGTERM"); } catch { /* gone */ } }
    await new Promise((r) => setTimeout(r, 500));
    if (eg?.pid) { try { process.kill(-eg.pid, "SIGKILL"); } catch { /* gone */ } }
    await server?.stop();
    await picker?.stop();
    await Promise.all(sims.map((s) => s.close()));
  });

  it("routes the seed's curl on the attach-to listener through the infergate filter", async () => {
    for (let i = 0; i < 10; i++) {
      const r = await postJson(`http://127.0.0.1:${INFERENCE_PORT}/v1/chat/completions`, SEED_REQUEST, { "x-gateway-destination-endpoint": "10.255.0.1:80" });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.model, "qwq-32b", "the filter rewrote qwq to its target model");
      assert.ok(POOL.has(r.servedBy!), `served by ${r.servedBy}`);
    }
    const unknown = await postJson(`http://127.0.0.1:${INFERENCE_PORT}/v1/chat/completions`, { model: "nope", messages: [] });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, "model_not_found");
  });

  it("has Envoy fetch the filter module from the extension server, and ACK its pushes", async () => {
    const metrics = await server.metricsText();
    assert.match(metrics, /infergate_module_downloads_total [1-9]/, "Envoy downloaded the module through the cluster PostTranslateModify added");
    assert.match(metrics, /infergate_xds_responses_total\{type="ecds",result="ack"\} [1-9]/);
    assert.doesNotMatch(metrics, /result="nack"/);
  });

  it("leaves the plain listener a plain route", async () => {
    const r = await postJson(`http://127.0.0.1:${PLAIN_PORT}/v1/chat/completions`, SEED_REQUEST);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.model, "qwq", "no rewrite without the filter");
  });

  it("applies a changed InferenceModel weight without touching Envoy Gateway", async () => {
    writeFileSync(configPath, infergateConfig("qwq-32b-canary"));
    await waitFor(async () => (await postJson(`http://127.0.0.1:${INFERENCE_PORT}/v1/chat/completions`, SEED_REQUEST)).body?.model === "qwq-32b-canary", 5000);
    for (let i = 0; i < 10; i++) assert.equal((await postJson(`http://127.0.0.1:${INFERENCE_PORT}/v1/chat/completions`, SEED_REQUEST)).body.model, "qwq-32b-canary");
  });

  it("has the route to a v1 pool with an endpointPickerRef call its picker (Route hook), reporting the served endpoint, failing open without it", async () => {
    const url = `http://127.0.0.1:${INFERENCE_PORT}/v1/completions`;
    const picked = { model: "picked-model", prompt: "hi", max_tokens: 1 };
    const headers = { "x-pool": "picked", "x-gateway-destination-endpoint": `${PICKED_IPS[0]}:8000` };
    // Envoy's first health check of the picker (until then requests fail open).
    await waitFor(async () => (await postJson(url, picked, headers)).servedBy === `${PICKED_IPS[1]}:8000` && picker!.requests.length > 0, 15_000, 100);
    for (let i = 0; i < 5; i++) {
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(picked) });
      await res.text();
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-served-by"), `${PICKED_IPS[1]}:8000`, "the picker's choice, not the client's header");
      assert.equal(res.headers.get("x-gateway-destination-endpoint-served"), `${PICKED_IPS[1]}:8000`);
      assert.equal(res.headers.get("x-picker-saw-served"), `${PICKED_IPS[1]}:8000`, "the served endpoint reached the picker");
    }
    // The seed's route on the same listener never calls the picker.
    const seen = picker!.requests.length;
    assert.equal((await postJson(`http://127.0.0.1:${INFERENCE_PORT}/v1/chat/completions`, SEED_REQUEST)).status, 200);
    assert.equal(picker!.requests.length, seen);
    await picker!.stop();
    await waitFor(async () => (await postJson(url, picked, headers)).status === 200, 5000, 50);
    const served = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const r = await postJson(url, { ...picked, prompt: "x".repeat(4096 + i) }, headers);
      assert.equal(r.status, 200, r.text);
      served.add(r.servedBy!);
    }
    assert.ok([...served].every((s) => PICKED_IPS.map((ip) => `${ip}:8000`).includes(s)), [...served].join(", "));
  });
});
