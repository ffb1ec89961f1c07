// The extension server's HTTP listeners keep apart what different clients need: /metrics and
// /healthz on the listen address (Prometheus, the kubelet); /snapshot, which names every pool,
// endpoint and model, on 127.0.0.1 only; the filter module on a port of its own (Envoys).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { InfergateServer } from "../../extension-server/src/server.ts";

const SEED = new URL("../../manifests/standalone/seed.yaml", import.meta.url).pathname;
const WASM = new URL("../../build/infergate.wasm", import.meta.url).pathname;
/** A loopback address other than 127.0.0.1, standing in for the pod's address. */
const POD_ADDRESS = "127.0.0.5";

async function get(url: string): Promise<{ status: number; body: Buffer } | "refused"> {
  try {
    const res = await fetch(url);
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  } catch {
    return "refused";
  }
}

describe("HTTP listeners", () => {
  let server: InfergateServer;

  before(async () => {
    server = new InfergateServer({
      source: { file: SEED }, wasmPath: WASM, listenAddress: POD_ADDRESS, xdsPort: 0, metricsPort: 0, debugPort: 0, modulePort: 0,
      moduleAdvertise: { host: "infergate.infergate-system.svc.cluster.local" }, log: () => undefined,
    });
    await server.start();
  });
  after(async () => { await server.stop(); });

  it("serves /metrics and /healthz on the listen address, and neither the snapshot nor the module there", async () => {
    const base = `http://${POD_ADDRESS}:${server.metricsPort}`;
    assert.equal((await get(`${base}/healthz`) as { status: number }).status, 200);
    const metrics = await get(`${base}/metrics`) as { status: number; body: Buffer };
    assert.match(metrics.body.toString(), /infergate_snapshot_version [1-9]/);
    assert.equal((await get(`${base}/snapshot`) as { status: number }).status, 404);
    assert.equal((await get(`${base}/filter/infergate.wasm`) as { status: number }).status, 404);
  });

  it("serves /snapshot on 127.0.0.1 only", async () => {
    const snapshot = await get(`http://127.0.0.1:${server.debugPort}/snapshot`) as { status: number; body: Buffer };
    assert.equal(snapshot.status, 200);
    assert.match(snapshot.body.toString(), /^infergate-snapshot /);
    assert.equal(await get(`http://${POD_ADDRESS}:${server.debugPort}/snapshot`), "refused");
    assert.equal((await get(`http://127.0.0.1:${server.debugPort}/metrics`) as { status: number }).status, 404);
  });

  it("serves the module on its own listener, at the port the Envoys are told", async () => {
    const module = await get(`http://${POD_ADDRESS}:${server.modulePort}/filter/infergate.wasm`) as { status: number; body: Buffer };
    assert.equal(module.status, 200);
    assert.deepEqual(module.body, readFileSync(WASM));
    assert.equal((await get(`http://${POD_ADDRESS}:${server.modulePort}/snapshot`) as { status: number }).status, 404);
    assert.equal((await get(`http://${POD_ADDRESS}:${server.modulePort}/metrics`) as { status: number }).status, 404);
    assert.match(server.snapshot, /^infergate-snapshot /);
  });
});
