// The Envoy Gateway hooks for HTTPRoute splits and mirrors: a rule's cluster that Envoy Gateway
// builds for several InferencePools gets the union of their endpoints (an EDS name the hook hands
// to the publisher, since xDS serves only names it publishes), and the cluster of a
// RequestMirror to an InferencePool becomes EDS of that pool steered by the filter's mirror header.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { parseRoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import { GatewayHooks, SERVICE } from "../../extension-server/src/gateway/hooks.ts";
import { protoRoot } from "../../extension-server/src/xds/protos.ts";
import { WireMessage } from "../../extension-server/src/xds/wire.ts";

const Cluster = protoRoot().lookupType("envoy.config.cluster.v3.Cluster");

const CONFIG = parseRoutingConfig(["a", "b", "shadow"].map((name) => `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: ${name}}
spec: {targetPortNumber: 8000, selector: {app: ${name}}}
`).join("") + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: llm}
spec:
  rules:
  - backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool, name: a}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {group: inference.networking.x-k8s.io, kind: InferencePool, name: shadow}, percent: 5}}]
`, "hooks.yaml");

describe("Envoy Gateway hooks for splits and mirrors", () => {
  let hooks: GatewayHooks;
  let client: grpc.Client;
  const unions: string[] = [];
  const call = (method: string, request: WireMessage): Promise<WireMessage> => new Promise((resolve, reject) => {
    client.makeUnaryRequest(`/${SERVICE}/${method}`, (m: WireMessage) => Buffer.from(m.encode()), (b: Buffer) => WireMessage.decode(new Uint8Array(b)), request,
      (err, res) => (err ? reject(err) : resolve(res!)));
  });

  before(async () => {
    assert.deepEqual(CONFIG.problems, []);
    hooks = new GatewayHooks({ xds: { target: "infergate:18000" }, config: () => CONFIG, log: () => undefined, onPoolUnion: (name) => unions.push(name) });
    client = new grpc.Client(`127.0.0.1:${await hooks.listen("127.0.0.1", 0)}`, grpc.credentials.createInsecure());
  });
  after(() => { client.close(); hooks.close(); });

  it("gives a rule split between pools one EDS cluster of their union", async () => {
    const context = new WireMessage();
    for (const name of ["b", "a", "b"]) {
      const pool = { apiVersion: "inference.networking.x-k8s.io/v1alpha2", kind: "InferencePool", metadata: { name, namespace: "default" } };
      context.add(1, new WireMessage([{ field: 1, wireType: 2, bytes: Buffer.from(JSON.stringify(pool)) }]).encode());
    }
    const req = new WireMessage([{ field: 1, wireType: 2, bytes: Cluster.encode(Cluster.fromObject({ name: "httproute/default/split/rule/0", type: "STATIC" })).finish() }]);
    req.add(2, context.encode());
    const c = Cluster.toObject(Cluster.decode((await call("PostClusterModify", req)).first(1)!.bytes), { enums: String }) as any;
    assert.equal(c.type, "EDS");
    assert.equal(c.eds_cluster_config.service_name, "infergate-pools/default/a,default/b");
    assert.deepEqual(unions, ["infergate-pools/default/a,default/b"], "the union's name goes to the publisher");
  });

  it("turns the cluster Envoy Gateway builds for a RequestMirror to an InferencePool into EDS of the pool, steered by the mirror header", async () => {
    const mirror = Cluster.encode(Cluster.fromObject({ name: "httproute/default/llm/rule/0-mirror-0", type: "STATIC", connect_timeout: { seconds: 10 }, load_assignment: { cluster_name: "x" } })).finish();
    const other = Cluster.encode(Cluster.fromObject({ name: "httproute/default/llm/rule/0", type: "EDS" })).finish();
    const req = new WireMessage();
    req.add(2, mirror);
    req.add(2, other);
    const out = await call("PostTranslateModify", req);
    const [m, o] = out.all(1).map((f) => f.bytes);
    assert.deepEqual(Buffer.from(o!), Buffer.from(other), "other clusters untouched");
    const c = Cluster.toObject(Cluster.decode(m!), { enums: String }) as any;
    assert.equal(c.type, "EDS");
    assert.equal(c.load_assignment, undefined);
    assert.equal(c.eds_cluster_config.service_name, "infergate-route/httproute/default/llm/rule/0-mirror-0");
    assert.equal(c.eds_cluster_config.eds_config.api_config_source.grpc_services[0].google_grpc.target_uri, "infergate:18000");
    assert.equal(Number(c.connect_timeout.seconds), 10, "Envoy Gateway's other fields kept");
    const policy = c.load_balancing_policy.policies[0].typed_extension_config;
    assert.match(Buffer.from(policy.typed_config.value).toString("latin1"), /x-infergate-mirror-endpoint/);
    assert.equal(c.circuit_breakers.thresholds[0].max_requests.value, 1024, "a slow mirror holds a bounded share of Envoy");
  });
});
