// infergate as an extension of the real Envoy Gateway (built from its Go module, standalone mode
// with the file provider and host infrastructure), the pinned Envoy, and simulated replicas. Runs
// inside a private network namespace (scripts/test-e2e.sh).
import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { request as httpRequest } from "node:http";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { envoyBinary, ENVOY_VERSION } from "../../extension-server/src/envoy/process.ts";
import { InfergateServer } from "../../extension-server/src/server.ts";
import { startSimServer, type SimServer } from "../../sim/server.ts";
import { createTestCa } from "../support/certs.ts";
import { startFakePicker, type FakePicker } from "../support/fake-picker.ts";
import { metricSamples, podsYaml, postJson, setReplicaLoad, waitFor } from "../support/stack.ts";
import { scratchDir } from "../support/scratch-dir.ts";

const repo = new URL("../..", import.meta.url).pathname;
const IPS = ["127.0.7.11", "127.0.7.12"];
const CANARY_IP = "127.0.7.21";
const SHADOW_IP = "127.0.7.31";
const POOL = new Set(IPS.map((ip) => `${ip}:8000`));
const PLAIN_PORT = 8080;
const INFERENCE_PORT = 18081;
const EEP_PORT = 18082;
/** A listener with an HTTPRoute to the same InferencePool, that no attach-to names (no filter). */
const OPEN_PORT = 18083;
const METRICS_PORT = 9191;

const HOOKS_PORT = 5005;
const XDS_PORT = 18100;
const SEED_REQUEST = { model: "qwq", messages: [{ role: "user", content: "Who are you?" }] };
/** The v1 pool with an endpoint picker (manifests/envoy-gateway/standalone/gateway.yaml). */
const PICKED_IPS = ["127.0.7.41", "127.0.7.42"];
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

const ref = (name: string, weight?: number) => `{group: inference.networking.x-k8s.io, kind: InferencePool, name: ${name}${weight === undefined ? "" : `, weight: ${weight}`}}`;
const onTest = (test: string) => `[{path: {type: PathPrefix, value: /v1}, headers: [{name: x-test, value: ${test}}]}]`;

/** HTTPRoutes Envoy Gateway serves and infergate reads the same way (in a cluster, both watch
 * them): a 90/10 split across two pools; a 50% mirror to a shadow Backend (Envoy Gateway's
 * standalone stand-in for a Service); a mirror to a shadow InferencePool, which Envoy Gateway
 * v1.9.0 refuses (its RequestMirror accepts only core, multicluster and gateway.envoyproxy.io
 * backends); and a plain route on the listener only an EnvoyExtensionPolicy gives the filter. */
const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split-route, namespace: default}
spec:
  parentRefs: [{name: inference-gateway, sectionName: llm-gw}]
  rules: [{matches: ${onTest("split")}, backendRefs: [${ref("reasoning-pool", 90)}, ${ref("canary-pool", 10)}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mirror-route, namespace: default}
spec:
  parentRefs: [{name: inference-gateway, sectionName: llm-gw}]
  rules:
  - matches: ${onTest("mirror")}
    backendRefs: [${ref("reasoning-pool")}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {group: gateway.envoyproxy.io, kind: Backend, name: shadow-backend}, percent: 50}}]
  - matches: ${onTest("pool-mirror")}
    backendRefs: [${ref("reasoning-pool")}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: ${ref("shadow-pool")}, percent: 50}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: eep-route, namespace: default}
spec:
  parentRefs: [{name: inference-gateway, sectionName: eep}]
  rules: [{backendRefs: [${ref("reasoning-pool")}]}]
`;

const extraPool = (name: string, app: string) => `---
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: InferencePool
metadata: {name: ${name}}
spec: {targetPortNumber: 8000, selector: {app: ${app}}}
`;

/** The seed's InferencePool and InferenceModel (attach-to moved to this host's port) plus Pods,
 * the canary and shadow pools, and the HTTPRoutes. */
function infergateConfig(target: string): string {
  const [pool, model] = readFileSync(join(repo, "manifests/standalone/seed.yaml"), "utf8").split(/^---$/m);
  return [pool!.replace("port: 8081", `port: ${INFERENCE_PORT}`), model!.replace("name: qwq-32b\n    weight: 100", `name: ${target}\n    weight: 100`)].join("---") + podsYaml("qwq-32b", IPS) + PICKED_YAML
    + extraPool("canary-pool", "qwq-canary") + podsYaml("qwq-canary", [CANARY_IP]) + extraPool("shadow-pool", "qwq-shadow") + podsYaml("qwq-shadow", [SHADOW_IP])
    + "---\n" + ROUTES;
}

/** An EnvoyExtensionPolicy that attaches infergate's module, downloaded by Envoy Gateway from
 * infergate's own module endpoint and checked by its sha256, to the eep-route. */
function extensionPolicy(sha256: string, modulePort: number): string {
  return `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyExtensionPolicy
metadata: {name: infergate-eep, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: eep-route}]
  wasm:
  - name: infergate
    rootID: infergate
    code:
      type: HTTP
      http: {url: "http://127.0.0.1:${modulePort}/filter/infergate.wasm", sha256: "${sha256}"}
`;
}

/** A POST on a new connection: after a listener update, Envoy serves connections opened before it
 * with the old filter chain until they drain, so checks of a new listener must not reuse one. */
function freshPost(url: string, body: unknown): Promise<{ status: number; model?: string; servedBy?: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: "POST", agent: false, headers: { "content-type": "application/json", "x-gateway-destination-endpoint": "10.255.0.1:80" } }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => { text += c.toString(); });
      res.on("end", () => {
        let model: string | undefined;
        try { model = (JSON.parse(text) as { model?: string }).model; } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, model, servedBy: res.headers["x-served-by"] as string | undefined });
      });
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

/** Envoy's admin address: Envoy Gateway's host mode starts Envoy with an ephemeral admin port, and
 * func-e writes the bound address to admin-address.txt in the run's directory. */
function envoyAdmin(home: string): string {
  const found = execFileSync("find", [home, "-name", "admin-address.txt"], { encoding: "utf8" }).trim().split("\n").filter(Boolean);
  assert.ok(found.length > 0, "func-e wrote Envoy's admin address");
  return `http://${readFileSync(found[found.length - 1]!, "utf8").trim()}`;
}

function fill(template: string, values: Record<string, string>): string {
  return template.replace(/@([A-Z_]+)@/g, (_, k: string) => values[k] ?? `@${k}@`);
}

describe("Envoy Gateway extension, end to end", () => {
  const home = scratchDir("infergate-eg");
  const configPath = join(home, "infergate.yaml");
  let sims: SimServer[] = [];
  let picker: FakePicker | undefined;
  let server: InfergateServer;
  let eg: ChildProcess | undefined;
  let egLog = "";
  /** Envoy Gateway's log lines about RequestMirror (egLog keeps only the tail). */
  const egMirrorErrors: string[] = [];
  let resourcesDir = "";

  before(async () => {
    const egBin = process.env.EG_BIN;
    assert.ok(egBin, "EG_BIN is set by scripts/test-e2e.sh");
    sims = await Promise.all([
      ...[...IPS, CANARY_IP, SHADOW_IP].map((host) => startSimServer({ host, port: 8000, servedModels: ["qwq-32b", "qwq", "qwq-32b-canary"] })),
      ...PICKED_IPS.map((host) => startSimServer({ host, port: 8000, servedModels: ["picked-model"], ttftMs: 1, itlMs: 0 })),
    ]);
    picker = await startFakePicker({ port: PICKER_PORT, pick: () => ({ endpoints: [`${PICKED_IPS[1]}:8000`] }) });
    writeFileSync(configPath, infergateConfig("qwq-32b"));
    // As in a cluster: Envoy downloads the module from this server (a cluster the Translation hook
    // adds), not from a local file, and reaches xDS over mutual TLS with a certificate of its own.
    // (Envoy Gateway in standalone mode cannot use TLS to its extension: the hooks stay plaintext.)
    const serverCa = createTestCa("server-ca");
    const clientCa = createTestCa("client-ca");
    const serverCert = serverCa.issue("infergate", { ips: ["127.0.0.1"] });
    const envoyCert = clientCa.issue("envoy");
    const envoyCertDir = join(home, "envoy-certs");
    mkdirSync(envoyCertDir);
    copyFileSync(envoyCert.cert, join(envoyCertDir, "tls.crt"));
    copyFileSync(envoyCert.key, join(envoyCertDir, "tls.key"));
    server = new InfergateServer({
      source: { file: configPath }, xdsPort: XDS_PORT, hooksPort: HOOKS_PORT, metricsPort: METRICS_PORT, moduleAdvertise: { host: "127.0.0.1" }, log: () => undefined,
      tls: { files: { cert: serverCert.cert, key: serverCert.key, ca: clientCa.cert }, serverCa: serverCa.cert, envoyCertDir, plaintextHooks: true },
    });
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
      INFERENCE_PORT: String(INFERENCE_PORT), EEP_PORT: String(EEP_PORT), OPEN_PORT: String(OPEN_PORT), PICKER_PORT: String(PICKER_PORT),
      ENDPOINTS: JSON.stringify(IPS.map((address) => ({ ip: { address, port: 8000 } }))),
    };
    const manifests = join(repo, "manifests/envoy-gateway/standalone");
    writeFileSync(join(home, "envoy-gateway.yaml"), fill(readFileSync(join(manifests, "envoy-gateway.yaml"), "utf8"), values));
    writeFileSync(join(resources, "gateway.yaml"), fill(readFileSync(join(manifests, "gateway.yaml"), "utf8"), values));
    // Envoy Gateway resolves the routes' InferencePool backendRefs among its own resources.
    writeFileSync(join(resources, "routes.yaml"), `${ROUTES}${extraPool("canary-pool", "qwq-canary")}${extraPool("shadow-pool", "qwq-shadow")}`.replace(/metadata: \{name: (\S+)-pool\}/g, "metadata: {name: $1-pool, namespace: default}")
      + `---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {name: shadow-backend, namespace: default}\nspec: {endpoints: [{ip: {address: ${SHADOW_IP}, port: 8000}}]}\n`);
    resourcesDir = resources;
    eg = spawn(egBin, ["server", "--config-path", join(home, "envoy-gateway.yaml")], { env: { ...process.env, HOME: home }, stdio: ["ignore", "pipe", "pipe"], detached: true });
    eg.stdout!.on("data", (c: Buffer) => { egLog = (egLog + c.toString()).slice(-20_000); });
    eg.stderr!.on("data", (c: Buffer) => { egLog = (egLog + c.toString()).slice(-20_000); });
    for (const stream of [eg.stdout!, eg.stderr!]) stream.on("data", (c: Buffer) => egMirrorErrors.push(...c.toString().split("\n").filter((l) => l.includes("RequestMirror"))));
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

  it("checks percent-encoded spellings of the inference routes: Envoy Gateway's listener normalizes the path, and so does the filter", async () => {
    // Envoy Gateway's HCM always sets normalize_path and merge_slashes, and by default redirects
    // escaped slashes (UnescapeAndRedirect; a ClientTrafficPolicy's `path` settings change only those two).
    for (const path of ["/v1/chat/%63ompletions", "/v1//chat/%63ompletions", "/v1%2Fchat%2Fcompletions"]) {
      const unknown = await postJson(`http://127.0.0.1:${INFERENCE_PORT}${path}`, { model: "nope", messages: [] });
      assert.equal(unknown.status, 404, `${path} -> ${unknown.text}`);
      assert.equal(unknown.body.error.code, "model_not_found", path);
      const seed = await postJson(`http://127.0.0.1:${INFERENCE_PORT}${path}`, SEED_REQUEST);
      assert.equal(seed.status, 200, `${path} -> ${seed.text}`);
      assert.equal(seed.body.model, "qwq-32b", `${path}: routed by the filter and rewritten`);
      assert.ok(POOL.has(seed.servedBy!), `${path}: served by ${seed.servedBy}`);
    }
  });

  it("has Envoy fetch the filter module from the extension server, and ACK its pushes", async () => {
    const metrics = await server.metricsText();
    assert.match(metrics, /infergate_module_downloads_total [1-9]/, "Envoy downloaded the module through the cluster PostTranslateModify added");
    assert.match(metrics, /infergate_xds_responses_total\{type="ecds",result="ack"\} [1-9]/);
    assert.match(metrics, /infergate_xds_responses_total\{type="eds",result="ack"\} [1-9]/);
    assert.doesNotMatch(metrics, /result="nack"\} [1-9]/);
    assert.match(metrics, /^infergate_xds_connected_envoys\{type="ecds"\} [1-9]/m, "Envoy Gateway's Envoy holds an ECDS stream");
    assert.match(metrics, /^infergate_xds_nacking_envoys\{type="ecds"\} 0$/m);
    assert.match(metrics, /^infergate_load_streams [1-9]/m, "its filters hold load channel streams, over the same mutual TLS");
  });

  it("serves xDS only over mutual TLS: Envoy Gateway's Envoys connect with their certificate, a plaintext client is refused", async () => {
    // The ACKs above came over TLS; a client without a certificate gets no stream.
    const client = new grpc.Client(`127.0.0.1:${XDS_PORT}`, grpc.credentials.createInsecure());
    try {
      await assert.rejects(new Promise((resolve, reject) => {
        const call = client.makeBidiStreamRequest("/envoy.service.extension.v3.ExtensionConfigDiscoveryService/StreamExtensionConfigs",
          (m: Buffer) => m, (b: Buffer) => b, new grpc.Metadata(), { deadline: Date.now() + 3000 });
        call.on("data", resolve);
        call.on("error", reject);
        call.write(Buffer.alloc(0));
      }), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
    } finally {
      client.close();
    }
  });

  it("leaves the plain listener a plain route", async () => {
    const r = await postJson(`http://127.0.0.1:${PLAIN_PORT}/v1/chat/completions`, SEED_REQUEST);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.model, "qwq", "no rewrite without the filter");
  });

  it("splits 90/10 across two InferencePools through Envoy Gateway's route and the filter", async () => {
    let canary = 0;
    for (let i = 0; i < 400; i++) {
      const r = await postJson(`http://127.0.0.1:${INFERENCE_PORT}/v1/chat/completions`, SEED_REQUEST, { "x-test": "split" });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.model, "qwq-32b", "the filter routed it");
      if (r.servedBy === `${CANARY_IP}:8000`) canary++;
      else assert.ok(POOL.has(r.servedBy!), `served by ${r.servedBy}`);
    }
    // Binomial(400, 0.1): mean 40, standard deviation 6; [13, 67] is ±4.5 sigma.
    assert.ok(canary >= 13 && canary <= 67, `canary served ${canary} of 400`);
  });

  it("mirrors 50% of a filtered route's requests through Envoy Gateway's RequestMirror; the primary is unaffected", async () => {
    const shadow = sims.find((s) => s.host === SHADOW_IP)!;
    const before = shadow.stats().requests;
    for (let i = 0; i < 400; i++) {
      const r = await postJson(`http://127.0.0.1:${INFERENCE_PORT}/v1/chat/completions`, SEED_REQUEST, { "x-test": "mirror" });
      if (r.status !== 200) {
        const clusters = await (await fetch(`${envoyAdmin(home)}/clusters`)).text();
        assert.fail(`${r.status} ${r.text}\n--- mirror clusters ---\n${clusters.split("\n").filter((l) => l.includes("mirror")).slice(0, 20).join("\n")}\n--- Envoy Gateway log ---\n${egLog.split("\n").filter((l) => /error|mirror/i.test(l)).slice(-20).join("\n")}`);
      }
      assert.ok(POOL.has(r.servedBy!), `the primary is served by its own pool, not ${r.servedBy}`);
    }
    let last = -1;
    await waitFor(async () => { const now = shadow.stats().requests; const settled = now === last; last = now; return settled; }, 5000, 300);
    const copies = shadow.stats().requests - before;
    // Binomial(400, 0.5): mean 200, standard deviation 10; [155, 245] is ±4.5 sigma.
    assert.ok(copies >= 155 && copies <= 245, `mirrored ${copies} of 400`);
    const stats = await (await fetch(`${envoyAdmin(home)}/stats?filter=mirror-route.*mirror-0.upstream_rq_total`)).text();
    assert.match(stats, new RegExp(`upstream_rq_total: ${copies}\\b`), `Envoy counts the copies in the mirror cluster's stats: ${stats}`);
  });

  it("documents what Envoy Gateway v1.9.0 lacks: a RequestMirror to an InferencePool is refused (the route answers 500)", async () => {
    const r = await postJson(`http://127.0.0.1:${INFERENCE_PORT}/v1/chat/completions`, SEED_REQUEST, { "x-test": "pool-mirror" });
    assert.equal(r.status, 500, "Envoy Gateway turned the rule into a 500 direct response");
    assert.ok(egMirrorErrors.some((l) => /failed to validate the RequestMirror filter: Group is invalid, only the core API group/.test(l)), egMirrorErrors.join("\n"));
    // If a later Envoy Gateway accepts it, this test fails: the Translation hook already turns the
    // mirror's cluster into EDS of the pool steered by the filter (test/unit/gateway-hooks.test.ts).
  });

  it("attaches the filter through an EnvoyExtensionPolicy (module from infergate's endpoint, upgraded to ECDS) and takes it away when the policy goes", async () => {
    const url = `http://127.0.0.1:${EEP_PORT}/v1/chat/completions`;
    // Without a policy, nothing on this listener reads the model.
    await waitFor(async () => (await freshPost(url, SEED_REQUEST).catch(() => undefined))?.status === 200, 30_000, 250);
    assert.equal((await freshPost(url, SEED_REQUEST)).model, "qwq", "no filter on the eep listener yet");
    const downloads = async () => metricSamples(await server.metricsText(), "infergate_module_downloads_total")[0]?.value ?? 0;
    const before = await downloads();
    const sha256 = createHash("sha256").update(readFileSync(join(repo, "build/infergate.wasm"))).digest("hex");
    writeFileSync(join(resourcesDir, "eep.yaml"), extensionPolicy(sha256, server.modulePort));
    await waitFor(async () => (await freshPost(url, SEED_REQUEST).catch(() => undefined))?.model === "qwq-32b", 60_000, 250)
      .catch((err) => { throw new Error(`${String(err)}\n--- Envoy Gateway log ---\n${egLog.slice(-4000)}`); });
    assert.ok(await downloads() > before, "Envoy Gateway downloaded the module from infergate's module endpoint");
    for (let i = 0; i < 5; i++) {
      const r = await freshPost(url, SEED_REQUEST);
      assert.equal(r.status, 200);
      assert.equal(r.model, "qwq-32b");
      assert.ok(POOL.has(r.servedBy!));
    }
    assert.equal((await freshPost(url, { model: "nope", messages: [] })).status, 404, "the filter answers unknown models");
    // The policy's filter, under its own name and still disabled on the listener (enabled only on
    // the policy's route), takes its configuration from infergate over ECDS.
    const filters: Array<Record<string, unknown>> = [];
    const modules: Array<{ http_uri: { uri: string; cluster: string }; sha256: string }> = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) { v.forEach(walk); return; }
      if (typeof v !== "object" || v === null) return;
      const o = v as Record<string, unknown>;
      if (typeof o.name === "string" && o.name.includes("infergate-eep") && "config_discovery" in o) filters.push(o);
      if ("http_uri" in o && "sha256" in o) modules.push(o as (typeof modules)[number]);
      Object.values(o).forEach(walk);
    };
    walk(await (await fetch(`${envoyAdmin(home)}/config_dump`)).json());
    assert.ok(filters.length > 0, "the policy's Wasm filter is fed over ECDS");
    assert.ok(filters.every((f) => f.disabled === true && !("typed_config" in f)), `kept disabled on the listener: ${JSON.stringify(filters)}`);
    // Over ECDS the policy's filter keeps the policy's module: Envoy Gateway's Wasm cache (its
    // wasm_cluster, an in-cluster name this host cannot resolve) and the policy's sha256. That
    // sha256 is the module the attach-to filter already fetched from infergate, so Envoy's own
    // cache of remote modules, keyed by sha256, serves it.
    assert.ok(modules.some((m) => m.http_uri.cluster === "wasm_cluster" && m.sha256 === sha256), `the policy's module: ${JSON.stringify(modules)}`);
    const wasmStats = await (await fetch(`${envoyAdmin(home)}/stats?filter=remote_load_cache_hits`)).text();
    assert.match(wasmStats, /remote_load_cache_hits: [1-9]/, wasmStats);
    // The seed's listener is unaffected by the policy (it has the attach-to filter).
    assert.equal((await postJson(`http://127.0.0.1:${INFERENCE_PORT}/v1/chat/completions`, SEED_REQUEST)).body.model, "qwq-32b");
    rmSync(join(resourcesDir, "eep.yaml"));
    await waitFor(async () => (await freshPost(url, SEED_REQUEST).catch(() => undefined))?.model === "qwq", 60_000, 250);
    for (let i = 0; i < 5; i++) assert.equal((await freshPost(url, SEED_REQUEST)).model, "qwq", "the filter is gone with the policy");
  });

  it("never lets a client pick the pool member on a listener without the filter", async () => {
    const picked = `${IPS[0]}:8000`;
    await waitFor(async () => { try { return (await postJson(`http://127.0.0.1:${OPEN_PORT}/v1/chat/completions`, SEED_REQUEST)).status === 200; } catch { return false; } }, 30_000, 250);
    const served = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const r = await postJson(`http://127.0.0.1:${OPEN_PORT}/v1/chat/completions`, SEED_REQUEST, { "x-gateway-destination-endpoint": picked });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.model, "qwq", "no filter on this listener: no rewrite");
      served.add(r.servedBy!);
    }
    assert.deepEqual([...served].sort(), [...POOL].sort(), "the pool's own balancing, not the client's header");
  });

  it("still honours the filter's pick on the attach-to listener (the header is removed before the filter sets it)", async () => {
    const [busy, idle] = IPS.map((ip) => `${ip}:8000`) as [string, string];
    await setReplicaLoad(busy, { waiting: 30, kvUsage: 0.9 });
    try {
      // Once the loaded replica's score is pushed, every request avoids it: the header the filter set
      // reaches the cluster's override_host policy (without it, round robin would alternate).
      await waitFor(async () => {
        for (let i = 0; i < 10; i++) {
          const r = await postJson(`http://127.0.0.1:${INFERENCE_PORT}/v1/chat/completions`, SEED_REQUEST, { "x-gateway-destination-endpoint": busy });
          if (r.status !== 200 || r.servedBy !== idle) return false;
        }
        return true;
      }, 10_000, 100);
    } finally {
      await setReplicaLoad(busy, {});
    }
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
