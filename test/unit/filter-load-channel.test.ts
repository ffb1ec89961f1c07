// The filter's side of the load channel (filter/src/load_channel.ts), in the compiled module
// through the in-process host: each root context opens its stream from the snapshot's
// `load-channel` record, applies each load as it arrives (no request reads anything), rejects a bad
// one and keeps the last, reopens a closed stream from a request after a back-off, and a new root
// starts from the last load. test/integration runs the same with a real Envoy and server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LOAD_METHOD, LOAD_SERVICE } from "../../extension-server/src/contract.ts";
import { protoRoot } from "../../extension-server/src/xds/protos.ts";
import { Clock, SharedData, Status, WasmVm } from "../support/wasm-host.ts";

const GrpcService = protoRoot().lookupType("envoy.config.core.v3.GrpcService");
const Load = protoRoot().lookupType("infergate.load.v1.Load");
const SERVICE = GrpcService.encode(GrpcService.fromObject({ envoy_grpc: { cluster_name: "infergate_xds" } })).finish();

const SNAPSHOT = `infergate-snapshot 1
version 3
pool team-a/llm
endpoint 10.0.0.1:8000 1000
endpoint 10.0.0.2:8000 1000
saturation team-a/llm 0
model qwq team-a/llm critical
target qwq 1
load-channel ${Buffer.from(SERVICE).toString("hex")}
`;

/** A load in which `busy` has a long queue and a full KV cache, and the other endpoint is idle. */
function loadText(busy: string): string {
  const line = (address: string) => `endpoint ${address} 1000 ${address === busy ? "waiting=60 kv=990" : "waiting=0 kv=0"}`;
  return `infergate-load 1\npool team-a/llm\n${line("10.0.0.1:8000")}\n${line("10.0.0.2:8000")}\nsaturation team-a/llm 0\n`;
}

const message = (version: string, text: string): Uint8Array => Load.encode(Load.fromObject({ version, text })).finish();

/** Where `n` requests with different prompts went, by endpoint. */
function routes(v: WasmVm, n = 8, rootId = 1): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const s = v.open({ ":method": "POST", ":path": "/v1/completions" }, rootId);
    v.headers(s, false);
    v.body(s, JSON.stringify({ model: "qwq", prompt: `prompt ${i} ${Math.random()}` }), true);
    assert.equal(s.localReply, undefined, JSON.stringify(s.localReply));
    const to = s.header("x-gateway-destination-endpoint")!.split(",")[0]!;
    out.set(to, (out.get(to) ?? 0) + 1);
    v.finish(s);
  }
  return out;
}

function setup(): { v: WasmVm; clock: Clock } {
  const clock = new Clock();
  const v = new WasmVm({ shared: new SharedData(), clock });
  assert.equal(v.configure(SNAPSHOT), true);
  return { v, clock };
}

describe("load channel (compiled filter, in-process host)", () => {
  it("the root context opens one stream, as the snapshot names it, and asks once", () => {
    const { v } = setup();
    const [g, ...others] = v.openGrpcStreams();
    assert.equal(others.length, 0);
    assert.deepEqual([g!.rootId, g!.serviceName, g!.method], [1, LOAD_SERVICE, LOAD_METHOD]);
    assert.deepEqual(Buffer.from(g!.service), Buffer.from(SERVICE), "the GrpcService from the record, byte for byte");
    const WatchRequest = protoRoot().lookupType("infergate.load.v1.WatchRequest");
    assert.equal(g!.sent.length, 1);
    assert.deepEqual(WatchRequest.toObject(WatchRequest.decode(g!.sent[0]!)), { snapshot_version: "3" }, "one WatchRequest, naming the snapshot");
    assert.equal(g!.halfClosed, true);
    const plain = new WasmVm();
    assert.equal(plain.configure(SNAPSHOT.replace(/^load-channel .*\n/m, "")), true);
    assert.equal(plain.openGrpcStreams().length, 0, "no record: no stream");
    assert.equal(new WasmVm().configure(SNAPSHOT.replace(/^load-channel .*$/m, "load-channel 0g")), false, "a record that is not hex rejects the snapshot");
  });

  it("applies each load as it arrives; requests read nothing of it", () => {
    const { v } = setup();
    const token = v.openGrpcStreams()[0]!.token;
    v.grpcReceive(token, message("e-1", loadText("10.0.0.1:8000")));
    const before = v.calls.get("proxy_get_property") ?? 0;
    assert.deepEqual([...routes(v).keys()], ["10.0.0.2:8000"], "away from the busy endpoint");
    assert.equal(v.calls.get("proxy_get_property") ?? 0, before, "no property read per request");
    v.grpcReceive(token, message("e-2", loadText("10.0.0.2:8000")));
    assert.deepEqual([...routes(v).keys()], ["10.0.0.1:8000"], "the next load turns it around");
    v.grpcReceive(token, message("e-2", loadText("10.0.0.1:8000")));
    assert.deepEqual([...routes(v).keys()], ["10.0.0.1:8000"], "a version already applied is skipped");
    assert.equal(v.counters.get("infergate.load_applied_total"), 2);
    assert.equal(v.counters.get("infergate.load_rejected_total") ?? 0, 0);
  });

  it("a message that does not decode, or a load that does not parse, is rejected and the last load stays", () => {
    const { v } = setup();
    const token = v.openGrpcStreams()[0]!.token;
    v.grpcReceive(token, message("e-1", loadText("10.0.0.1:8000")));
    v.grpcReceive(token, Uint8Array.from([0x0a, 0x10, 0x41])); // a version field cut short
    v.grpcReceive(token, message("e-2", "infergate-load 1\nendpoint 10.0.0.1:8000 5\n")); // an endpoint before any pool
    v.grpcReceive(token, message("", loadText("10.0.0.2:8000"))); // no version
    assert.equal(v.counters.get("infergate.load_rejected_total"), 3);
    assert.equal(v.counters.get("infergate.load_applied_total"), 1);
    assert.deepEqual([...routes(v).keys()], ["10.0.0.2:8000"], "still routing on e-1");
    assert.ok(v.logs.some(([level, text]) => level === 4 && /rejected load e-2: .*endpoint before any pool/.test(text)), JSON.stringify(v.logs));
  });

  it("a closed stream keeps the last load; a request reopens it after 250 ms, then 500, 1000 ... up to 4 s while it fails", () => {
    const { v, clock } = setup();
    const first = v.openGrpcStreams()[0]!.token;
    v.grpcReceive(first, message("e-1", loadText("10.0.0.1:8000")));
    v.grpcClose(first, 14);
    assert.deepEqual([...routes(v, 2).keys()], ["10.0.0.2:8000"], "routing on the last load");
    assert.equal(v.openGrpcStreams().length, 0, "not before the back-off");
    clock.nowMs += 250;
    routes(v, 1);
    const [second] = v.openGrpcStreams();
    assert.ok(second && second.token !== first, "reopened by a request");
    // The server is away: each attempt fails at once, and the wait doubles up to 4 s.
    v.grpcClose(second.token, 14);
    const waits: number[] = [];
    let waited = 0;
    while (waits.length < 6) {
      clock.nowMs += 50;
      waited += 50;
      routes(v, 1);
      const open = v.openGrpcStreams();
      if (open.length === 0) continue;
      waits.push(waited);
      waited = 0;
      v.grpcClose(open[0]!.token, 14);
    }
    assert.deepEqual(waits, [500, 1000, 2000, 4000, 4000, 4000]);
    // A stream that delivers resets the back-off.
    clock.nowMs += 4000;
    routes(v, 1);
    const back = v.openGrpcStreams()[0]!;
    v.grpcReceive(back.token, message("e-2", loadText("10.0.0.2:8000")));
    v.grpcClose(back.token, 0);
    clock.nowMs += 250;
    routes(v, 1);
    assert.equal(v.openGrpcStreams().length, 1, "250 ms again after a stream that worked");
    assert.deepEqual([...routes(v, 2).keys()], ["10.0.0.1:8000"]);
  });

  it("a stream that cannot be opened is retried after the back-off, and its failure logged", () => {
    const { v, clock } = setup();
    v.grpcClose(v.openGrpcStreams()[0]!.token, 14);
    v.failures.set("proxy_grpc_stream", Status.BadArgument);
    clock.nowMs += 250;
    routes(v, 1);
    assert.ok(v.logs.some(([, text]) => /cannot open the load channel: status 2/.test(text)));
    v.failures.delete("proxy_grpc_stream");
    clock.nowMs += 499;
    routes(v, 1);
    assert.equal(v.openGrpcStreams().length, 0);
    clock.nowMs += 1;
    routes(v, 1);
    assert.equal(v.openGrpcStreams().length, 1);
  });

  it("a new root context starts from the VM's last load and opens its own stream; the old root's goes with it", () => {
    const { v } = setup();
    v.grpcReceive(v.openGrpcStreams()[0]!.token, message("e-1", loadText("10.0.0.1:8000")));
    assert.equal(v.configure(SNAPSHOT.replace("version 3", "version 4"), 2), true);
    assert.deepEqual([...routes(v, 4, 2).keys()], ["10.0.0.2:8000"], "before its own stream said anything");
    v.deleteRoot(1);
    const open = v.openGrpcStreams();
    assert.deepEqual(open.map((g) => g.rootId), [2]);
    v.grpcReceive(open[0]!.token, message("e-1", loadText("10.0.0.1:8000")));
    assert.equal(v.counters.get("infergate.load_applied_total"), 1, "the same version, once per VM");
    v.grpcReceive(open[0]!.token, message("e-2", loadText("10.0.0.2:8000")));
    assert.deepEqual([...routes(v, 4, 2).keys()], ["10.0.0.1:8000"]);
  });
});
