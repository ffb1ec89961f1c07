// infergate as an extension of the real Envoy Gateway (built from its Go module, standalone mode
// with the file provider and host infrastructure), the pinned Envoy, and simulated replicas. Runs
// inside a private network namespace (scripts/test-e2e.sh).
import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { envoyBinary, ENVOY_VERSION } from "../../extension-server/src/envoy/process.ts";
import { InfergateServer } from "../../extension-server/src/server.ts";
import { startSimServer, type SimServer } from "../../sim/server.ts";
import { createTestCa } from "../support/certs.ts";
import { podsYaml, postJson, setReplicaLoad, waitFor } from "../support/stack.ts";

const repo = new URL("../..", import.meta.url).pathname;
const IPS = ["127.0.7.11", "127.0.7.12"];
const POOL = new Set(IPS.map((ip) => `${ip}:8000`));
const PLAIN_PORT = 8080;
const INFERENCE_PORT = 18081;
/** A listener with an HTTPRoute to the same InferencePool, that no attach-to names (no filter). */
const OPEN_PORT = 18082;
const HOOKS_PORT = 5005;
const XDS_PORT = 18100;
const SEED_REQUEST = { model: "qwq", messages: [{ role: "user", content: "Who are you?" }] };

/** The seed's InferencePool and InferenceModel (attach-to moved to this host's port) plus Pods. */
function infergateConfig(target: string): string {
  const [pool, model] = readFileSync(join(repo, "manifests/standalone/seed.yaml"), "utf8").split(/^---$/m);
  return [pool!.replace("port: 8081", `port: ${INFERENCE_PORT}`), model!.replace("name: qwq-32b\n    weight: 100", `name: ${target}\n    weight: 100`)].join("---") + podsYaml("qwq-32b", IPS);
}

function fill(template: string, values: Record<string, string>): string {
  return template.replace(/@([A-Z_]+)@/g, (_, k: string) => values[k] ?? `@${k}@`);
}

describe("Envoy Gateway extension, end to end", () => {
  const home = mkdtempSync(join(tmpdir(), "infergate-eg-"));
  const configPath = join(home, "infergate.yaml");
  let sims: SimServer[] = [];
  let server: InfergateServer;
  let eg: ChildProcess | undefined;
  let egLog = "";

  before(async () => {
    const egBin = process.env.EG_BIN;
    assert.ok(egBin, "EG_BIN is set by scripts/test-e2e.sh");
    sims = await Promise.all(IPS.map((host) => startSimServer({ host, port: 8000, servedModels: ["qwq-32b", "qwq", "qwq-32b-canary"] })));
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
      source: { file: configPath }, xdsPort: XDS_PORT, hooksPort: HOOKS_PORT, metricsPort: 9191, moduleAdvertise: { host: "127.0.0.1" }, log: () => undefined,
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
      INFERENCE_PORT: String(INFERENCE_PORT), OPEN_PORT: String(OPEN_PORT), ENDPOINTS: JSON.stringify(IPS.map((address) => ({ ip: { address, port: 8000 } }))),
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
    assert.doesNotMatch(metrics, /result="nack"/);
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
});
