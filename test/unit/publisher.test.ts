// The publisher's rate limiting: a configuration change pushes at once; score changes push at most
// once per push.minIntervalMs, later ones coalescing into one trailing push of the latest scores;
// a schedule that renders the same snapshot pushes nothing. Scores go out on the load channel only;
// the filter's configuration (ECDS) changes only with the configuration.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseRoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import { Publisher } from "../../extension-server/src/publisher.ts";
import type { Schedule } from "../../extension-server/src/scheduling/scheduler.ts";
import { TYPE_EXTENSION_CONFIG, TYPE_LOAD_ASSIGNMENT, XdsServer, type EncodedResource } from "../../extension-server/src/xds/server.ts";
import { protoRoot } from "../../extension-server/src/xds/protos.ts";
import { FILTER_NAME } from "../../extension-server/src/contract.ts";
import { LoadChannel, type Load } from "../../extension-server/src/xds/load-channel.ts";

/** Publisher options with a load channel that records what it is sent. */
function options(extra: { log?: (m: string) => void } = {}) {
  const channel = new LoadChannel();
  const loads: Load[] = [];
  const publish = channel.publish.bind(channel);
  channel.publish = (load) => { loads.push(load); publish(load); };
  return { loads, opts: { wasmPath: "/m.wasm", load: { channel, via: { cluster: "infergate_xds" } }, ...extra } };
}

const MIN_INTERVAL_MS = 200;

const config = (weight: number) => parseRoutingConfig(`
apiVersion: infergate.io/v1alpha1
kind: InfergateConfig
spec: {push: {minIntervalMs: ${MIN_INTERVAL_MS}}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: p}
spec: {selector: {app: a}, targetPortNumber: 80}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: m}
spec: {modelName: m, poolRef: {name: p}, targetModels: [{name: t, weight: ${weight}}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a-0, labels: {app: a}}
status: {podIP: 10.0.0.1}
`, "test.yaml");

const scored = (score: number): Schedule => new Map([["default/p", { saturation: 0, endpoints: new Map([["10.0.0.1:80", { ready: true, score }]]) }]]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("publisher", () => {
  it("pushes a configuration at once, and score changes at most once per minIntervalMs, coalesced", async () => {
    const xds = new XdsServer();
    const { loads, opts } = options();
    const publisher = new Publisher(xds, opts);
    const pushes = () => loads.length;
    try {
      const started = performance.now();
      publisher.setConfig(config(1), scored(1000));
      assert.equal(pushes(), 1, "configuration pushed at once");
      assert.equal(xds.version(TYPE_LOAD_ASSIGNMENT), 1, "endpoints pushed with it");
      publisher.setSchedule(scored(900));
      publisher.setSchedule(scored(800));
      publisher.setSchedule(scored(700));
      assert.equal(pushes(), 1, "inside the interval: nothing yet");
      while (pushes() === 1 && performance.now() - started < 2000) await sleep(5);
      const waited = performance.now() - started;
      assert.ok(waited >= MIN_INTERVAL_MS - 5 && waited < MIN_INTERVAL_MS + 150, `trailing push ${waited} ms after the last`);
      assert.equal(pushes(), 2, "one push for three changes");
      assert.match(publisher.snapshot, /^endpoint 10\.0\.0\.1:80 700$/m, "the latest scores");
      await sleep(MIN_INTERVAL_MS * 1.5);
      assert.equal(pushes(), 2, "no further push without a change");

      publisher.setSchedule(scored(700));
      await sleep(MIN_INTERVAL_MS * 1.5);
      assert.equal(pushes(), 2, "the same snapshot is not pushed again");

      publisher.setSchedule(scored(600)); // the interval has passed: at once
      assert.equal(pushes(), 3);
      publisher.setSchedule(scored(500)); // inside the next interval: waits
      assert.equal(pushes(), 3);
      assert.equal(xds.version(TYPE_EXTENSION_CONFIG), 1, "scores never change the filter's configuration");
      publisher.setConfig(config(2)); // a configuration change does not wait
      assert.equal(xds.version(TYPE_EXTENSION_CONFIG), 2);
      assert.equal(pushes(), 4, "and its load (no schedule yet: every endpoint neutral) goes with it");
      assert.match(publisher.snapshot, /^target t 2$/m);
      assert.equal(xds.version(TYPE_LOAD_ASSIGNMENT), 1, "same endpoints: no EDS push");
    } finally {
      publisher.stop();
      await xds.close();
    }
  });

  it("a score change goes out on the load channel only; the snapshot names the channel", async () => {
    const xds = new XdsServer();
    const published: EncodedResource[][] = [];
    const set = xds.setResources.bind(xds);
    xds.setResources = (type, resources) => { if (type === TYPE_EXTENSION_CONFIG) published.push(resources); return set(type, resources); };
    const { loads, opts } = options();
    const publisher = new Publisher(xds, opts);
    const snapshotOf = (i: number): string => {
      const ext = protoRoot().lookupType("envoy.config.core.v3.TypedExtensionConfig");
      const wasm = protoRoot().lookupType("envoy.extensions.filters.http.wasm.v3.Wasm");
      const resource = ext.toObject(ext.decode(published[i]!.find((r) => r.name === FILTER_NAME)!.any.value)) as any;
      const config = (wasm.toObject(wasm.decode(resource.typed_config.value)) as any).config;
      const text = protoRoot().lookupType("google.protobuf.StringValue");
      return (text.toObject(text.decode(config.configuration.value)) as any).value;
    };
    try {
      publisher.setConfig(config(1), scored(1000));
      await sleep(MIN_INTERVAL_MS + 50);
      publisher.setSchedule(scored(640));
      assert.equal(published.length, 1, "no ECDS push for a score change");
      assert.equal(loads.length, 2);
      assert.notEqual(loads[1]!.version, loads[0]!.version);
      assert.match(loads[0]!.text, /^endpoint 10\.0\.0\.1:80 1000$/m);
      assert.match(loads[1]!.text, /^infergate-load 1\npool default\/p\nendpoint 10\.0\.0\.1:80 640\nsaturation default\/p 0\n$/);
      assert.deepEqual(opts.load.channel.current, loads[1], "what a new stream is sent first");
      // The filter's snapshot names the channel: this server's GrpcService, as Envoy reaches its xDS.
      const record = /^load-channel ([0-9a-f]+)$/m.exec(snapshotOf(0));
      assert.ok(record, "a load-channel record");
      const service = protoRoot().lookupType("envoy.config.core.v3.GrpcService");
      assert.deepEqual(service.toObject(service.decode(Buffer.from(record[1]!, "hex"))), { envoy_grpc: { cluster_name: "infergate_xds" } });
      publisher.setConfig(config(2), scored(640)); // a configuration change: a new Wasm configuration, the same load
      assert.equal(published.length, 2);
      assert.notEqual(snapshotOf(1), snapshotOf(0));
      assert.equal(loads.length, 2, "the same load is not sent again");
    } finally {
      publisher.stop();
      await xds.close();
    }
  });

  it("logs a record left out of the snapshot once, while it stays left out, and again when it returns to being left out", async () => {
    const xds = new XdsServer();
    const logs: string[] = [];
    const publisher = new Publisher(xds, options({ log: (m) => logs.push(m) }).opts);
    const broken = (score: number): Schedule => new Map([["default/p", { saturation: Number.NaN, endpoints: new Map([["10.0.0.1:80", { ready: true, score }]]) }]]);
    const leftOut = () => logs.filter((l) => l.startsWith("left out of the snapshot: saturation default/p")).length;
    try {
      publisher.setConfig(config(1), broken(1000));
      assert.equal(leftOut(), 1);
      assert.doesNotMatch(publisher.snapshot, /^saturation /m, "the bad record is left out, the rest is published");
      assert.match(publisher.snapshot, /^endpoint 10\.0\.0\.1:80 1000$/m);
      for (const score of [900, 800]) { publisher.setSchedule(broken(score)); await sleep(MIN_INTERVAL_MS + 20); }
      publisher.setConfig(config(2), broken(700)); // a configuration change renders the routing part again
      assert.equal(leftOut(), 1, "still the same record: not logged again");
      publisher.setSchedule(scored(600));
      await sleep(MIN_INTERVAL_MS + 20);
      publisher.setSchedule(broken(500));
      await sleep(MIN_INTERVAL_MS + 20);
      assert.equal(leftOut(), 2, "left out again after it was published");
    } finally {
      publisher.stop();
      await xds.close();
    }
  });
});
