// Mutual TLS on the extension server's gRPC servers (xDS and Envoy Gateway's hooks), with
// certificates generated for the test: a client with a certificate from the client CA is served;
// one without a certificate, with a certificate from another CA, or in plaintext is refused. The
// hooks tell Envoy how to reach xDS over mutual TLS (the server's CA inline, the Envoy's own
// certificate files).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { SERVICE } from "../../extension-server/src/gateway/hooks.ts";
import { InfergateServer } from "../../extension-server/src/server.ts";
import { protoRoot, typeUrl } from "../../extension-server/src/xds/protos.ts";
import { TYPE_EXTENSION_CONFIG } from "../../extension-server/src/xds/server.ts";
import { WireMessage } from "../../extension-server/src/xds/wire.ts";
import { createTestCa, type Issued, type TestCa } from "../support/certs.ts";

const root = protoRoot();
const Listener = root.lookupType("envoy.config.listener.v3.Listener");
const HCM = root.lookupType("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager");
const Request = root.lookupType("envoy.service.discovery.v3.DiscoveryRequest");
const Response = root.lookupType("envoy.service.discovery.v3.DiscoveryResponse");
const SEED = new URL("../../manifests/standalone/seed.yaml", import.meta.url).pathname;

const credentials = (ca: TestCa, client?: Issued): grpc.ChannelCredentials =>
  grpc.credentials.createSsl(readFileSync(ca.cert), client ? readFileSync(client.key) : null, client ? readFileSync(client.cert) : null);

/** Opens an ECDS stream and resolves with the first answer's resource count, or rejects with the gRPC error. */
function ecds(port: number, creds: grpc.ChannelCredentials): Promise<number> {
  const client = new grpc.Client(`localhost:${port}`, creds);
  return new Promise<number>((resolve, reject) => {
    const call = client.makeBidiStreamRequest("/envoy.service.extension.v3.ExtensionConfigDiscoveryService/StreamExtensionConfigs",
      (m: object) => Buffer.from(Request.encode(Request.fromObject(m)).finish()), (b: Buffer) => Response.decode(b) as any, new grpc.Metadata(), { deadline: Date.now() + 5000 });
    call.on("data", (r: any) => { resolve(r.resources.length); call.cancel(); });
    call.on("error", (err: grpc.ServiceError) => reject(err));
    call.write({ type_url: TYPE_EXTENSION_CONFIG, resource_names: ["infergate"], node: { id: "tls-test" } });
  }).finally(() => client.close());
}

function listenerBytes(): Uint8Array {
  const hcm = HCM.encode(HCM.fromObject({ stat_prefix: "http", http_filters: [{ name: "envoy.filters.http.router" }] })).finish();
  return Listener.encode(Listener.fromObject({
    name: "default/inference-gateway/llm-gw", address: { socket_address: { address: "0.0.0.0", port_value: 8081 } },
    filter_chains: [{ filters: [{ name: "envoy.filters.network.http_connection_manager", typed_config: { type_url: typeUrl("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"), value: hcm } }] }],
  })).finish();
}

/** Calls the Listener hook; resolves with the listener it returns. */
function listenerHook(port: number, creds: grpc.ChannelCredentials): Promise<Uint8Array> {
  const client = new grpc.Client(`localhost:${port}`, creds);
  return new Promise<Uint8Array>((resolve, reject) => {
    client.makeUnaryRequest(`/${SERVICE}/PostHTTPListenerModify`, (m: WireMessage) => Buffer.from(m.encode()), (b: Buffer) => WireMessage.decode(new Uint8Array(b)),
      new WireMessage([{ field: 1, wireType: 2, bytes: listenerBytes() }]), { deadline: Date.now() + 5000 },
      (err, res) => (err ? reject(err) : resolve(res!.first(1)!.bytes)));
  }).finally(() => client.close());
}

const refused = (err: grpc.ServiceError): boolean => err.code === grpc.status.UNAVAILABLE;

describe("mutual TLS on xDS and the hooks", () => {
  // The server's CA signs its certificate; the clients' CA (Envoy Gateway's, in a cluster) signs
  // the Envoys' and Envoy Gateway's certificates; another CA signs a stranger's.
  const serverCa = createTestCa("server-ca");
  const clientCa = createTestCa("client-ca");
  const otherCa = createTestCa("other-ca");
  const serverCert = serverCa.issue("infergate", { dns: ["localhost", "infergate.infergate-system.svc.cluster.local"] });
  const envoy = clientCa.issue("envoy");
  const stranger = otherCa.issue("stranger");
  let server: InfergateServer;

  before(async () => {
    server = new InfergateServer({
      source: { file: SEED }, xdsPort: 0, hooksPort: 0, log: () => undefined,
      xdsAdvertise: { host: "infergate.infergate-system.svc.cluster.local", port: 18000 },
      tls: { files: { cert: serverCert.cert, key: serverCert.key, ca: clientCa.cert }, serverCa: serverCa.cert, envoyCertDir: "/certs" },
    });
    await server.start();
  });
  after(async () => { await server.stop(); });

  it("serves xDS to a client with a certificate from the client CA, and refuses every other client", async () => {
    assert.equal(await ecds(server.xdsPort, credentials(serverCa, envoy)), 1);
    await assert.rejects(ecds(server.xdsPort, credentials(serverCa)), refused, "no client certificate");
    await assert.rejects(ecds(server.xdsPort, credentials(serverCa, stranger)), refused, "a certificate from another CA");
    await assert.rejects(ecds(server.xdsPort, grpc.credentials.createInsecure()), refused, "plaintext");
  });

  it("serves the hooks the same way", async () => {
    assert.ok((await listenerHook(server.hooksPort, credentials(serverCa, envoy))).length > 0);
    await assert.rejects(listenerHook(server.hooksPort, credentials(serverCa)), refused, "no client certificate");
    await assert.rejects(listenerHook(server.hooksPort, credentials(serverCa, stranger)), refused, "a certificate from another CA");
    await assert.rejects(listenerHook(server.hooksPort, grpc.credentials.createInsecure()), refused, "plaintext");
  });

  it("has Envoy reach xDS over mutual TLS: the server's CA inline, the Envoy's certificate from its own files", async () => {
    const out = Listener.toObject(Listener.decode(await listenerHook(server.hooksPort, credentials(serverCa, envoy)))) as any;
    const hcm = HCM.toObject(HCM.decode(out.filter_chains[0].filters[0].typed_config.value)) as any;
    const google = hcm.http_filters[0].config_discovery.config_source.api_config_source.grpc_services[0].google_grpc;
    assert.equal(google.target_uri, "infergate.infergate-system.svc.cluster.local:18000");
    const ssl = google.channel_credentials.ssl_credentials;
    assert.equal(ssl.root_certs.inline_string, readFileSync(serverCa.cert, "utf8"));
    assert.deepEqual([ssl.cert_chain.filename, ssl.private_key.filename], ["/certs/tls.crt", "/certs/tls.key"]);
  });

  it("can leave the hooks in plaintext (Envoy Gateway's standalone mode) while xDS keeps requiring a client certificate", async () => {
    const mixed = new InfergateServer({
      source: { file: SEED }, xdsPort: 0, hooksPort: 0, log: () => undefined,
      tls: { files: { cert: serverCert.cert, key: serverCert.key, ca: clientCa.cert }, envoyCertDir: "/certs", plaintextHooks: true },
    });
    try {
      await mixed.start();
      assert.ok((await listenerHook(mixed.hooksPort, grpc.credentials.createInsecure())).length > 0);
      await assert.rejects(ecds(mixed.xdsPort, credentials(serverCa)), refused);
      assert.equal(await ecds(mixed.xdsPort, credentials(serverCa, envoy)), 1);
    } finally {
      await mixed.stop();
    }
  });

  it("refuses to start when a TLS file is missing or not PEM", async () => {
    const broken = new InfergateServer({
      source: { file: SEED }, xdsPort: 0, log: () => undefined,
      tls: { files: { cert: serverCert.cert, key: SEED, ca: clientCa.cert }, envoyCertDir: "/certs" },
    });
    await assert.rejects(broken.start(), /TLS key .*seed\.yaml: not a PEM file/);
    await broken.stop();
  });
});
