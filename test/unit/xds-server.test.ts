// The xDS server over a real gRPC stream on loopback: a subscription is answered with the current
// version; an ACK or a NACK is recorded and answered with nothing (a NACKed version is never
// re-sent in a loop); a response superseded by a newer one is ignored when Envoy answers it late;
// a change of resource names is answered at once; every change reaches every stream; names nobody
// published, and names beyond the bound per request, are not answered (and are reported), so a
// request listing 20,000 names gets one filter configuration back, not 20,000. Each open stream's
// node and last answer, and the time Envoy took to answer, are what the metrics read.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { protoRoot, typeUrl } from "../../extension-server/src/xds/protos.ts";
import { readFileSync } from "node:fs";
import { parseRoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import { LoadChannel } from "../../extension-server/src/xds/load-channel.ts";
import { Publisher } from "../../extension-server/src/publisher.ts";
import { InfergateServer } from "../../extension-server/src/server.ts";
import { TYPE_EXTENSION_CONFIG, TYPE_LOAD_ASSIGNMENT, XdsServer, type EncodedResource, type IgnoredReason } from "../../extension-server/src/xds/server.ts";

const Request = protoRoot().lookupType("envoy.service.discovery.v3.DiscoveryRequest");
const Response = protoRoot().lookupType("envoy.service.discovery.v3.DiscoveryResponse");
const PATH = "/envoy.service.extension.v3.ExtensionConfigDiscoveryService/StreamExtensionConfigs";
const EDS_PATH = "/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints";

interface Answer { version_info: string; nonce: string; resources: Array<{ type_url: string; value: Uint8Array }> }

const resource = (name: string, text: string): EncodedResource => ({ name, any: { type_url: typeUrl("google.protobuf.StringValue"), value: Buffer.from(text) } });

/** One Envoy-like ECDS stream: sends requests, collects responses. */
class Stream {
  readonly answers: Answer[] = [];
  private waiters: Array<() => void> = [];
  private readonly call: grpc.ClientDuplexStream<object, Answer>;

  /** Bytes of each answer as it came off the wire. */
  readonly sizes: number[] = [];

  constructor(client: grpc.Client, private readonly type = TYPE_EXTENSION_CONFIG) {
    this.call = client.makeBidiStreamRequest(type === TYPE_EXTENSION_CONFIG ? PATH : EDS_PATH, (m: object) => Buffer.from(Request.encode(Request.fromObject(m)).finish()),
      (b: Buffer) => { this.sizes.push(b.length); return Response.toObject(Response.decode(b), { defaults: true }) as Answer; });
    this.call.on("data", (a: Answer) => { this.answers.push(a); for (const w of this.waiters.splice(0)) w(); });
    this.call.on("error", () => undefined);
  }

  send(m: { names?: string[]; nonce?: string; version?: string; error?: string; node?: string }): void {
    this.call.write({
      type_url: this.type, resource_names: m.names ?? ["infergate"], response_nonce: m.nonce ?? "", version_info: m.version ?? "",
      ...(m.node ? { node: { id: m.node } } : {}), ...(m.error ? { error_detail: { code: 3, message: m.error } } : {}),
    });
  }

  /** The next answer, or undefined if none comes within `ms`. */
  async next(ms = 300): Promise<Answer | undefined> {
    const seen = this.answers.length;
    if (this.answers.length > seen) return this.answers[seen];
    await new Promise<void>((resolve) => { this.waiters.push(resolve); setTimeout(resolve, ms); });
    return this.answers[seen];
  }

  end(): void { this.call.end(); }
}

describe("xDS server", () => {
  const acks: Array<{ version: string; node: string; error?: string | undefined }> = [];
  const ackSeconds: number[] = [];
  const ignored: Array<{ node: string; reason: IgnoredReason; names: string[] }> = [];
  const xds = new XdsServer({
    onAck: (_type, version, node, error, seconds) => { acks.push({ version, node, error }); ackSeconds.push(seconds); },
    onIgnoredNames: (_type, node, reason, names) => ignored.push({ node, reason, names }),
  });
  const state = (node: string): boolean | undefined => xds.streamStates().find((s) => s.nodeId === node)?.rejected;
  let client: grpc.Client;
  /** Holds "infergate" and one policy filter's name. */
  const publish = (text: string): number => xds.setResources(TYPE_EXTENSION_CONFIG, [resource("infergate", text), resource("envoy.filters.http.wasm/envoyextensionpolicy/default/p/wasm/0", "policy")]);

  before(async () => {
    publish("one");
    const port = await xds.listen("127.0.0.1", 0);
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  after(async () => { client.close(); await xds.close(); });

  it("answers a subscription, records ACKs and NACKs without answering them, and ignores superseded nonces", async () => {
    const envoy = new Stream(client);
    try {
      const first = envoy.next();
      envoy.send({ node: "envoy-1" });
      const a1 = (await first)!;
      assert.equal(a1.version_info, "1");
      assert.equal(Buffer.from(a1.resources[0]!.value).toString(), "one");

      const ack = envoy.next();
      await new Promise((r) => setTimeout(r, 50));
      envoy.send({ nonce: a1.nonce, version: "1" });
      assert.equal(await ack, undefined, "an ACK is not answered");
      assert.deepEqual(acks.at(-1), { version: "1", node: "envoy-1", error: undefined }, "the node id of the stream's first request");
      assert.ok(ackSeconds.at(-1)! >= 0.05 && ackSeconds.at(-1)! < 5, `the time from the response to its ACK: ${ackSeconds.at(-1)} s`);
      assert.equal(state("envoy-1"), false);

      const pushed = envoy.next();
      publish("two");
      const a2 = (await pushed)!;
      assert.equal(a2.version_info, "2");
      assert.notEqual(a2.nonce, a1.nonce);

      const count = acks.length;
      const late = envoy.next();
      envoy.send({ nonce: a1.nonce, version: "1" }); // answers a response superseded since
      assert.equal(await late, undefined);
      assert.equal(acks.length, count, "a superseded nonce is not recorded");

      const nack = envoy.next();
      envoy.send({ nonce: a2.nonce, version: "1", error: "snapshot line 3: bad" });
      assert.equal(await nack, undefined, "a NACK is not answered with the same version again");
      assert.deepEqual(acks.at(-1), { version: "1", node: "envoy-1", error: "snapshot line 3: bad" });
      assert.equal(state("envoy-1"), true, "the stream's last answer was a NACK");

      const fixed = envoy.next();
      publish("two"); // a new version (the next test expects this content)
      const a3 = (await fixed)!;
      envoy.send({ nonce: a3.nonce, version: a3.version_info });
      await envoy.next(100);
      assert.equal(state("envoy-1"), false, "an ACK of a later version clears it");
    } finally {
      envoy.end();
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(state("envoy-1"), undefined, "a closed stream is forgotten");
  });

  it("answers a change of resource names at once, with only the resources it holds", async () => {
    const envoy = new Stream(client);
    try {
      const first = envoy.next();
      envoy.send({ node: "envoy-2" });
      const a1 = (await first)!;
      const renamed = envoy.next();
      envoy.send({ nonce: a1.nonce, version: a1.version_info, names: ["infergate", "envoy.filters.http.wasm/envoyextensionpolicy/default/p/wasm/0", "envoy.filters.http.wasm/made-up"] });
      const a2 = (await renamed)!;
      assert.equal(a2.version_info, a1.version_info, "same version, new names");
      assert.deepEqual(a2.resources.map((r) => Buffer.from(r.value).toString()).sort(), ["policy", "two"]);
      assert.deepEqual(ignored.at(-1), { node: "envoy-2", reason: "unknown", names: ["envoy.filters.http.wasm/made-up"] });
    } finally {
      envoy.end();
    }
  });

  it("always answers published names, remembers a bounded number of others, and reports the rest", async () => {
    const small = new XdsServer({ onIgnoredNames: (_type, node, reason, names) => ignored.push({ node, reason, names }) }, { maxNames: { [TYPE_EXTENSION_CONFIG]: 2 } });
    const publishNames = (...names: string[]): number => small.setResources(TYPE_EXTENSION_CONFIG, names.map((n) => resource(n, n)));
    publishNames("infergate");
    const port = await small.listen("127.0.0.1", 0);
    const c = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const envoy = new Stream(c);
    try {
      const first = envoy.next();
      envoy.send({ node: "envoy-many", names: ["x3", "infergate", "x2", "x1", "x2"] });
      const a1 = (await first)!;
      assert.deepEqual(a1.resources.map((r) => Buffer.from(r.value).toString()), ["infergate"]);
      assert.deepEqual(ignored.slice(-2), [
        { node: "envoy-many", reason: "unknown", names: ["x1", "x2"] },
        { node: "envoy-many", reason: "over-limit", names: ["x3"] },
      ]);
      envoy.send({ nonce: a1.nonce, version: a1.version_info });
      // A remembered name published later is pushed; one beyond the bound is not.
      const pushed = envoy.next();
      publishNames("infergate", "x1", "x3");
      assert.deepEqual((await pushed)!.resources.map((r) => Buffer.from(r.value).toString()), ["infergate", "x1"]);
    } finally {
      envoy.end();
      c.close();
      await small.close();
    }
  });

  it("answers a stream only once it has asked: a push before its first request does not reach it", async () => {
    const envoy = new Stream(client);
    try {
      await new Promise((r) => setTimeout(r, 100)); // the stream is open on the server
      const early = envoy.next();
      publish("before-asking");
      assert.equal(await early, undefined, "not answered as a wildcard subscription");
      const first = envoy.next();
      envoy.send({ node: "envoy-late" });
      assert.equal(Buffer.from((await first)!.resources[0]!.value).toString(), "before-asking");
    } finally {
      envoy.end();
    }
  });

  it("pushes every change to every open stream", async () => {
    const streams = [new Stream(client), new Stream(client)];
    try {
      const firsts = streams.map((s) => s.next());
      streams.forEach((s, i) => s.send({ node: `envoy-${i}` }));
      const answers = (await Promise.all(firsts)).map((a) => a!);
      streams.forEach((s, i) => s.send({ nonce: answers[i]!.nonce, version: answers[i]!.version_info }));
      const pushes = streams.map((s) => s.next(1000));
      const version = publish("three");
      for (const a of await Promise.all(pushes)) assert.equal(a?.version_info, String(version));
    } finally {
      streams.forEach((s) => s.end());
    }
  });
});

describe("xDS server with the publisher's resources", () => {
  it("answers a request for 20,000 filter names with the one configuration it serves (measured)", async (t) => {
    const seed = parseRoutingConfig(readFileSync(new URL("../../manifests/standalone/seed.yaml", import.meta.url), "utf8") + `---
apiVersion: v1
kind: Pod
metadata: {name: qwq-0, labels: {app: qwq-32b}}
status: {podIP: 10.0.0.1}
`, "seed.yaml");
    const xds = new XdsServer();
    const publisher = new Publisher(xds, { wasmPath: "/m.wasm", load: { channel: new LoadChannel(), via: { cluster: "infergate_xds" } }, wasmRemote: { uri: "http://infergate:18001/filter/infergate.wasm", cluster: "infergate_module", sha256: "ab".repeat(32) } });
    publisher.setConfig(seed);
    const port = await xds.listen("127.0.0.1", 0);
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": 64 * 1024 * 1024 });
    const names = ["infergate", ...Array.from({ length: 19_999 }, (_, i) => `envoy.filters.http.wasm/envoyextensionpolicy/ns${i}/p/wasm/0`)];
    const envoy = new Stream(client);
    const eds = new Stream(client, TYPE_LOAD_ASSIGNMENT);
    try {
      const first = envoy.next(5000);
      envoy.send({ node: "envoy-big", names });
      const answer = (await first)!;
      t.diagnostic(`ECDS reply to 20,000 names: ${answer.resources.length} resources, ${envoy.sizes[0]} bytes`);
      assert.equal(answer.resources.length, 1);
      assert.ok(envoy.sizes[0]! < 16 * 1024, `${envoy.sizes[0]} bytes`);
      const edsFirst = eds.next(5000);
      eds.send({ node: "envoy-big", names: ["infergate-pool/default/reasoning-pool", ...Array.from({ length: 19_999 }, (_, i) => `infergate-pool/ns${i}/p`)] });
      const edsAnswer = (await edsFirst)!;
      t.diagnostic(`EDS reply to 20,000 names: ${edsAnswer.resources.length} resources, ${eds.sizes[0]} bytes`);
      assert.equal(edsAnswer.resources.length, 1);
    } finally {
      envoy.end();
      eds.end();
      client.close();
      publisher.stop();
      await xds.close();
    }
  });
});

describe("EDS names of HTTPRoute rules", () => {
  const Assignment = protoRoot().lookupType("envoy.config.endpoint.v3.ClusterLoadAssignment");
  const pool = (name: string, ip: string) => `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: ${name}}
spec: {selector: {app: ${name}}, targetPortNumber: 8000}
---
apiVersion: v1
kind: Pod
metadata: {name: ${name}-0, labels: {app: ${name}}}
status: {podIP: ${ip}}
`;
  const ref = (name: string, weight = 1) => `{group: inference.networking.x-k8s.io, kind: InferencePool, name: ${name}, weight: ${weight}}`;
  const config = parseRoutingConfig(pool("a", "10.0.0.1") + pool("b", "10.0.0.2") + pool("shadow", "10.0.0.3") + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: llm}
spec:
  rules:
  - backendRefs: [${ref("a", 90)}, ${ref("b", 10)}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: ${ref("shadow")}, percent: 10}}]
`, "routes.yaml");

  it("serves the names a rule's clusters use (standalone, Cluster and Translation hooks), a union the Cluster hook handed out, and no other", async () => {
    assert.deepEqual(config.problems, []);
    const xds = new XdsServer();
    const publisher = new Publisher(xds, { wasmPath: "/m.wasm", load: { channel: new LoadChannel(), via: { cluster: "infergate_xds" } } });
    publisher.setConfig(config);
    const port = await xds.listen("127.0.0.1", 0);
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const served = async (names: string[]): Promise<Record<string, string[]>> => {
      const eds = new Stream(client, TYPE_LOAD_ASSIGNMENT);
      try {
        const answer = eds.next(3000);
        eds.send({ node: "envoy-eds", names });
        return Object.fromEntries((await answer)!.resources.map((r) => Assignment.toObject(Assignment.decode(r.value)) as any)
          .map((a) => [a.cluster_name, a.endpoints.flatMap((e: any) => e.lb_endpoints.map((l: any) => l.endpoint.address.socket_address.address))]));
      } finally {
        eds.end();
      }
    };
    try {
      assert.deepEqual(await served([
        "infergate-pool/default/a", "infergate-route/httproute/default/llm/rule/0", "infergate-pools/default/a,default/b",
        "infergate-route/httproute/default/llm/rule/0-mirror-0", "infergate-pools/default/a,default/shadow", "infergate-route/nope",
      ]), {
        "infergate-pool/default/a": ["10.0.0.1"],
        "infergate-route/httproute/default/llm/rule/0": ["10.0.0.1", "10.0.0.2"],
        "infergate-pools/default/a,default/b": ["10.0.0.1", "10.0.0.2"],
        "infergate-route/httproute/default/llm/rule/0-mirror-0": ["10.0.0.3"],
      });
      // A split infergate does not serve itself (say, a route in a namespace it does not watch):
      // served once the Cluster hook has given that name to a cluster.
      publisher.setPoolUnion("infergate-pools/default/a,default/shadow");
      assert.deepEqual(await served(["infergate-pools/default/a,default/shadow"]), { "infergate-pools/default/a,default/shadow": ["10.0.0.1", "10.0.0.3"] });
    } finally {
      client.close();
      publisher.stop();
      await xds.close();
    }
  });
});

describe("the extension server's report of names it does not serve", () => {
  it("counts every ignored name, and logs once per Envoy", async () => {
    const logs: string[] = [];
    const server = new InfergateServer({ source: { file: new URL("../../manifests/standalone/seed.yaml", import.meta.url).pathname }, xdsPort: 0, log: (m) => logs.push(m) });
    await server.start();
    const client = new grpc.Client(`127.0.0.1:${server.xdsPort}`, grpc.credentials.createInsecure());
    const streams = [new Stream(client), new Stream(client)];
    try {
      for (const [i, s] of streams.entries()) {
        const answer = s.next(3000);
        s.send({ node: "envoy-x", names: ["infergate", `bogus-${i}-a`, `bogus-${i}-b`] });
        assert.equal((await answer)!.resources.length, 1);
      }
      assert.match(await server.metricsText(), /infergate_xds_names_ignored_total\{type="ecds",reason="unknown"\} 4/);
      const lines = logs.filter((l) => /asked for .* names that infergate does not serve/.test(l));
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0]!, /^envoy envoy-x asked for 2 ecds names that infergate does not serve, e\.g\. bogus-0-a, bogus-0-b/);
    } finally {
      streams.forEach((s) => s.end());
      client.close();
      await server.stop();
    }
  });
});
