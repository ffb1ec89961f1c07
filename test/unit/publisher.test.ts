// The publisher's rate limiting: a configuration change pushes at once; score changes push at most
// once per push.minIntervalMs, later ones coalescing into one trailing push of the latest scores;
// a schedule that renders the same snapshot pushes nothing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseRoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import { Publisher } from "../../extension-server/src/publisher.ts";
import type { Schedule } from "../../extension-server/src/scheduling/scheduler.ts";
import { TYPE_EXTENSION_CONFIG, TYPE_LOAD_ASSIGNMENT, XdsServer, type EncodedResource } from "../../extension-server/src/xds/server.ts";
import { protoRoot } from "../../extension-server/src/xds/protos.ts";
import { FILTER_NAME, LOAD_FILTER_NAME, LOAD_TEXT_KEY, LOAD_VERSION_KEY } from "../../extension-server/src/contract.ts";

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
    const publisher = new Publisher(xds, { wasmPath: "/m.wasm" });
    const pushes = () => xds.version(TYPE_EXTENSION_CONFIG);
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
      publisher.setConfig(config(2)); // a configuration change does not wait
      assert.equal(pushes(), 4);
      assert.match(publisher.snapshot, /^target t 2$/m);
      assert.equal(xds.version(TYPE_LOAD_ASSIGNMENT), 1, "same endpoints: no EDS push");
    } finally {
      publisher.stop();
      await xds.close();
    }
  });

  it("a score change changes only the load filter's resource; the Wasm filter's stays byte for byte the same", async () => {
    const xds = new XdsServer();
    const published: EncodedResource[][] = [];
    const set = xds.setResources.bind(xds);
    xds.setResources = (type, resources) => { if (type === TYPE_EXTENSION_CONFIG) published.push(resources); return set(type, resources); };
    const publisher = new Publisher(xds, { wasmPath: "/m.wasm" });
    const byName = (i: number) => new Map(published[i]!.map((r) => [r.name, Buffer.from(r.any.value)]));
    const loadOf = (i: number) => {
      const ext = protoRoot().lookupType("envoy.config.core.v3.TypedExtensionConfig");
      const decoded = ext.toObject(ext.decode(byName(i).get(LOAD_FILTER_NAME)!)) as any;
      const config = protoRoot().lookupType("envoy.extensions.filters.http.set_filter_state.v3.Config");
      const values = (config.toObject(config.decode(decoded.typed_config.value)) as any).on_request_headers;
      return Object.fromEntries(values.map((v: any) => [v.object_key, v.format_string.text_format_source.inline_string]));
    };
    try {
      publisher.setConfig(config(1), scored(1000));
      await sleep(MIN_INTERVAL_MS + 50);
      publisher.setSchedule(scored(640));
      assert.equal(published.length, 2);
      assert.deepEqual(byName(1).get(FILTER_NAME), byName(0).get(FILTER_NAME), "the Wasm filter's configuration is unchanged");
      const [before, after] = [loadOf(0), loadOf(1)];
      assert.notEqual(after[LOAD_VERSION_KEY], before[LOAD_VERSION_KEY]);
      assert.match(before[LOAD_TEXT_KEY], /^endpoint 10\.0\.0\.1:80 1000$/m);
      assert.match(after[LOAD_TEXT_KEY], /^infergate-load 1\npool default\/p\nendpoint 10\.0\.0\.1:80 640\nsaturation default\/p 0\n$/);
      publisher.setConfig(config(2), scored(640)); // a configuration change: a new Wasm configuration, the same load
      assert.notDeepEqual(byName(2).get(FILTER_NAME), byName(1).get(FILTER_NAME));
      assert.deepEqual(loadOf(2), after);
    } finally {
      publisher.stop();
      await xds.close();
    }
  });

  it("logs a record left out of the snapshot once, while it stays left out, and again when it returns to being left out", async () => {
    const xds = new XdsServer();
    const logs: string[] = [];
    const publisher = new Publisher(xds, { wasmPath: "/m.wasm", log: (m) => logs.push(m) });
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
