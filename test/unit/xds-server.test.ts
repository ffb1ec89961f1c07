// The xDS server over a real gRPC stream on loopback: a subscription is answered with the current
// version; an ACK or a NACK is recorded and answered with nothing (a NACKed version is never
// re-sent in a loop); a response superseded by a newer one is ignored when Envoy answers it late;
// a change of resource names is answered at once; every change reaches every stream. Each open
// stream's node and last answer, and the time Envoy took to answer, are what the metrics read.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { protoRoot, typeUrl } from "../../extension-server/src/xds/protos.ts";
import { TYPE_EXTENSION_CONFIG, XdsServer, type EncodedResource } from "../../extension-server/src/xds/server.ts";

const Request = protoRoot().lookupType("envoy.service.discovery.v3.DiscoveryRequest");
const Response = protoRoot().lookupType("envoy.service.discovery.v3.DiscoveryResponse");
const PATH = "/envoy.service.extension.v3.ExtensionConfigDiscoveryService/StreamExtensionConfigs";

interface Answer { version_info: string; nonce: string; resources: Array<{ type_url: string; value: Uint8Array }> }

const resource = (name: string, text: string): EncodedResource => ({ name, any: { type_url: typeUrl("google.protobuf.StringValue"), value: Buffer.from(text) } });

/** One Envoy-like ECDS stream: sends requests, collects responses. */
class Stream {
  readonly answers: Answer[] = [];
  private waiters: Array<() => void> = [];
  private readonly call: grpc.ClientDuplexStream<object, Answer>;

  constructor(client: grpc.Client) {
    this.call = client.makeBidiStreamRequest(PATH, (m: object) => Buffer.from(Request.encode(Request.fromObject(m)).finish()),
      (b: Buffer) => Response.toObject(Response.decode(b), { defaults: true }) as Answer);
    this.call.on("data", (a: Answer) => { this.answers.push(a); for (const w of this.waiters.splice(0)) w(); });
    this.call.on("error", () => undefined);
  }

  send(m: { names?: string[]; nonce?: string; version?: string; error?: string; node?: string }): void {
    this.call.write({
      type_url: TYPE_EXTENSION_CONFIG, resource_names: m.names ?? ["infergate"], response_nonce: m.nonce ?? "", version_info: m.version ?? "",
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
  const xds = new XdsServer({ onAck: (_type, version, node, error, seconds) => { acks.push({ version, node, error }); ackSeconds.push(seconds); } });
  const state = (node: string): boolean | undefined => xds.streamStates().find((s) => s.nodeId === node)?.rejected;
  let client: grpc.Client;
  /** Holds "infergate", and builds any other name asked for (as the publisher does). */
  const publish = (text: string): number => xds.setResources(TYPE_EXTENSION_CONFIG, [resource("infergate", text)], (name) => resource(name, `as ${name}`));

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

  it("answers a change of resource names at once, building names it does not hold", async () => {
    const envoy = new Stream(client);
    try {
      const first = envoy.next();
      envoy.send({ node: "envoy-2" });
      const a1 = (await first)!;
      const renamed = envoy.next();
      envoy.send({ nonce: a1.nonce, version: a1.version_info, names: ["infergate", "envoy.filters.http.wasm/default/policy/0"] });
      const a2 = (await renamed)!;
      assert.equal(a2.version_info, a1.version_info, "same version, new names");
      assert.deepEqual(a2.resources.map((r) => Buffer.from(r.value).toString()).sort(), ["as envoy.filters.http.wasm/default/policy/0", "two"].sort());
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
