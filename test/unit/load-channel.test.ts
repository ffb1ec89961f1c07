// The load channel's server side over a real gRPC connection (the filter's side runs in Envoy in
// test/integration): a new stream is answered with the current load, every stream gets each new
// one, a slow reader gets only the newest when it drains, and the number of streams is bounded.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { LOAD_METHOD, LOAD_SERVICE } from "../../extension-server/src/contract.ts";
import { LoadChannel, type Load } from "../../extension-server/src/xds/load-channel.ts";
import { protoRoot } from "../../extension-server/src/xds/protos.ts";
import { XdsServer } from "../../extension-server/src/xds/server.ts";

const LoadType = protoRoot().lookupType("infergate.load.v1.Load");
const WatchRequest = protoRoot().lookupType("infergate.load.v1.WatchRequest");

/** A Watch stream as the filter opens it: one WatchRequest, then Load messages. */
function watch(client: grpc.Client): { messages: Load[]; call: grpc.ClientReadableStream<Load>; ended: Promise<grpc.StatusObject> } {
  const call = client.makeServerStreamRequest<Uint8Array, Load>(`/${LOAD_SERVICE}/${LOAD_METHOD}`,
    (m) => Buffer.from(m), (b) => LoadType.toObject(LoadType.decode(b)) as Load, WatchRequest.encode({ snapshot_version: "1" }).finish());
  const messages: Load[] = [];
  call.on("data", (m: Load) => messages.push(m));
  const ended = new Promise<grpc.StatusObject>((resolve) => { call.on("status", resolve); call.on("error", () => undefined); });
  return { messages, call, ended };
}

async function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function serve(channel: LoadChannel): Promise<{ client: grpc.Client; close: () => Promise<void> }> {
  const xds = new XdsServer({}, { services: [channel.service()] });
  const port = await xds.listen("127.0.0.1", 0);
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return { client, close: async () => { client.close(); await xds.close(); } };
}

describe("load channel (server side)", () => {
  it("answers a new stream with the current load, then sends every stream each new one", async () => {
    const channel = new LoadChannel();
    const { client, close } = await serve(channel);
    try {
      const before = watch(client);
      await until(() => channel.streams === 1, "the first stream");
      assert.equal(before.messages.length, 0, "nothing published yet: nothing sent");
      channel.publish({ version: "e-1", text: "infergate-load 1\npool p\n" });
      await until(() => before.messages.length === 1, "the first load");
      const later = watch(client);
      await until(() => later.messages.length === 1, "the current load on a new stream");
      assert.deepEqual(later.messages[0], { version: "e-1", text: "infergate-load 1\npool p\n" });
      channel.publish({ version: "e-2", text: "infergate-load 1\n" });
      await until(() => before.messages.length === 2 && later.messages.length === 2, "the next load on both");
      assert.deepEqual(before.messages.map((m) => m.version), ["e-1", "e-2"]);
      later.call.cancel();
      await until(() => channel.streams === 1, "the cancelled stream dropped");
      before.call.cancel();
      await until(() => channel.streams === 0, "every stream dropped");
    } finally {
      await close();
    }
  });

  it("a reader that cannot keep up gets the newest load when it drains, not every one in between", async () => {
    const channel = new LoadChannel();
    const { client, close } = await serve(channel);
    try {
      const slow = watch(client);
      slow.call.pause();
      await until(() => channel.streams === 1, "the stream");
      const big = "x".repeat(256 * 1024);
      for (let i = 1; i <= 200; i++) channel.publish({ version: `e-${i}`, text: `infergate-load 1\n# ${i} ${big}\n` });
      slow.call.resume();
      await until(() => slow.messages.at(-1)?.version === "e-200", "the newest load");
      assert.ok(slow.messages.length < 200, `${slow.messages.length} of 200 loads written: the rest were skipped while it was full`);
      slow.call.cancel();
    } finally {
      await close();
    }
  });

  it("refuses streams beyond its bound, and serves again once one closes", async () => {
    const channel = new LoadChannel(2);
    channel.publish({ version: "e-1", text: "infergate-load 1\n" });
    const { client, close } = await serve(channel);
    try {
      const a = watch(client);
      const b = watch(client);
      await until(() => a.messages.length === 1 && b.messages.length === 1, "two streams served");
      const refused = watch(client);
      assert.equal((await refused.ended).code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(channel.streams, 2);
      a.call.cancel();
      await until(() => channel.streams === 1, "one closed");
      const c = watch(client);
      await until(() => c.messages.length === 1, "served again");
      b.call.cancel();
      c.call.cancel();
    } finally {
      await close();
    }
  });
});
