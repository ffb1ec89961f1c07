// The compiled filter module on HTTPRoute rules (in-process host): it reads the cluster Envoy's
// route chose (`xds.cluster_name`), draws the pool by the rule's weights, sets the mirror header
// for the rule's mirror pool, and strips the routing headers a client may not set.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { WasmVm } from "../support/wasm-host.ts";

const SNAPSHOT = `infergate-snapshot 1
version 3
pool ns/a
endpoint 10.0.0.1:8000 1000
pool ns/b
endpoint 10.0.0.2:8000 1000
pool ns/shadow
endpoint 10.0.0.3:8000 1000
model qwq ns/a standard
target qwq-32b 1
route httproute/ns/llm/rule/0 ns/b 1
mirror httproute/ns/llm/rule/0 ns/shadow
`;
const CHAT = '{"model": "qwq", "messages": [{"role": "user", "content": "hi"}]}';
const CLUSTER = "xds\0cluster_name";

describe("filter stream on HTTPRoute rules (compiled module)", () => {
  it("routes to the pool the rule names and sets the mirror endpoint; strips what clients may not set", () => {
    const v = new WasmVm();
    assert.equal(v.configure(SNAPSHOT), true);
    v.properties.set(CLUSTER, "httproute/ns/llm/rule/0");
    const s = v.request("/v1/chat/completions", CHAT, { "x-infergate-mirror-endpoint": "6.6.6.6:80", "x-gateway-model-name-rewrite": "evil" });
    assert.equal(s.localReply, undefined);
    assert.equal(s.header("x-gateway-destination-endpoint"), "10.0.0.2:8000", "the rule's pool, not the model's");
    assert.equal(s.header("x-infergate-pool"), "ns/b");
    assert.equal(s.header("x-infergate-mirror-endpoint"), "10.0.0.3:8000");
    assert.equal(s.header("x-gateway-model-name-rewrite"), undefined, "never forwarded");
    assert.equal(s.json.model, "qwq-32b");
    assert.equal(v.counters.get("infergate.mirror_picked_total"), 1);
  });

  it("on a route the snapshot does not know (or no route), the model's own pool and no mirror header", () => {
    const v = new WasmVm();
    assert.equal(v.configure(SNAPSHOT), true);
    for (const cluster of ["httproute/ns/other/rule/0", undefined]) {
      if (cluster) v.properties.set(CLUSTER, cluster); else v.properties.delete(CLUSTER);
      const s = v.request("/v1/chat/completions", CHAT, { "x-infergate-mirror-endpoint": "6.6.6.6:80" });
      assert.equal(s.header("x-gateway-destination-endpoint"), "10.0.0.1:8000");
      assert.equal(s.header("x-infergate-mirror-endpoint"), undefined, "a client's mirror endpoint is stripped");
    }
    assert.equal(v.counters.get("infergate.mirror_picked_total"), undefined);
  });
});
