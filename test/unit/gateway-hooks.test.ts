// The Envoy Gateway extension hooks over a real gRPC connection: the filter goes where the
// seed's attach-to annotation says, an EnvoyExtensionPolicy's Wasm filter is fed over ECDS, an
// InferencePool backend's cluster becomes steerable, and every field we do not touch (including
// ones our protos do not know) comes back byte for byte.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { parseRoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import { GatewayHooks, SERVICE } from "../../extension-server/src/gateway/hooks.ts";
import { protoRoot, typeUrl } from "../../extension-server/src/xds/protos.ts";
import { WireMessage } from "../../extension-server/src/xds/wire.ts";

const seed = parseRoutingConfig(readFileSync(new URL("../../manifests/standalone/seed.yaml", import.meta.url), "utf8"), "seed.yaml");
const root = protoRoot();
const Listener = root.lookupType("envoy.config.listener.v3.Listener");
const HCM = root.lookupType("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager");
const Cluster = root.lookupType("envoy.config.cluster.v3.Cluster");
const Wasm = root.lookupType("envoy.extensions.filters.http.wasm.v3.Wasm");
const EarlyMutation = root.lookupType("envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation");

/** Appends an unknown field (number 9000+, a string) to a message's encoding. */
function withUnknown(bytes: Uint8Array, field: number, text: string): Uint8Array {
  const m = WireMessage.decode(bytes);
  m.add(field, Buffer.from(text));
  return m.encode();
}

function hcmBytes(extraFilters: object[] = []): Uint8Array {
  const router = { name: "envoy.filters.http.router", typed_config: { type_url: typeUrl("envoy.extensions.filters.http.router.v3.Router"), value: new Uint8Array() } };
  return withUnknown(HCM.encode(HCM.fromObject({ stat_prefix: "http", http_filters: [...extraFilters, router] })).finish(), 9001, "hcm-future-field");
}

function listenerBytes(name: string, port: number, hcm: Uint8Array): Uint8Array {
  const bytes = Listener.encode(Listener.fromObject({
    name,
    address: { socket_address: { address: "0.0.0.0", port_value: port } },
    filter_chains: [{ filters: [{ name: "envoy.filters.network.http_connection_manager", typed_config: { type_url: typeUrl("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"), value: hcm } }] }],
  })).finish();
  return withUnknown(bytes, 9000, "listener-future-field");
}

/** The HCM of a listener's first filter chain. */
function hcmOf(listener: Uint8Array): Uint8Array {
  const l = WireMessage.decode(listener);
  const fc = WireMessage.decode(l.first(3)!.bytes);
  const nf = WireMessage.decode(fc.first(3)!.bytes);
  const any = WireMessage.decode(nf.first(4)!.bytes);
  return any.first(2)!.bytes;
}

function httpFilterNames(listener: Uint8Array): string[] {
  const hcm = WireMessage.decode(hcmOf(listener));
  if (hcm.first(9001)) assert.equal(hcm.string(9001), "hcm-future-field", "unknown HCM field kept");
  return hcm.all(5).map((f) => WireMessage.decode(f.bytes).string(1)!);
}

/** The HCM's early header mutations: name, and the headers each removes. */
function earlyMutations(listener: Uint8Array): Array<{ name: string; remove: string[] }> {
  const hcm = HCM.toObject(HCM.decode(hcmOf(listener))) as any;
  return (hcm.early_header_mutation_extensions ?? []).map((e: any) => ({
    name: e.name,
    remove: (EarlyMutation.toObject(EarlyMutation.decode(e.typed_config.value)) as any).mutations.map((m: any) => m.remove),
  }));
}

describe("Envoy Gateway extension hooks", () => {
  let hooks: GatewayHooks;
  let client: grpc.Client;
  const call = (method: string, request: WireMessage): Promise<WireMessage> => new Promise((resolve, reject) => {
    client.makeUnaryRequest(`/${SERVICE}/${method}`, (m: WireMessage) => Buffer.from(m.encode()), (b: Buffer) => WireMessage.decode(new Uint8Array(b)), request,
      (err, res) => (err ? reject(err) : resolve(res!)));
  });
  const listenerCall = async (bytes: Uint8Array) => (await call("PostHTTPListenerModify", new WireMessage([{ field: 1, wireType: 2, bytes }]))).first(1)!.bytes;

  before(async () => {
    hooks = new GatewayHooks({ xds: { target: "infergate.infergate-system.svc.cluster.local:18000" }, config: () => seed, log: () => undefined });
    const port = await hooks.listen("127.0.0.1", 0);
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  after(() => { client.close(); hooks.close(); });

  it("inserts the ECDS-fed filter before the router on the listener attach-to names, keeping unknown fields", async () => {
    const out = await listenerCall(listenerBytes("default/inference-gateway/llm-gw", 8081, hcmBytes()));
    assert.deepEqual(httpFilterNames(out), ["infergate", "envoy.filters.http.router"]);
    assert.equal(WireMessage.decode(out).string(9000), "listener-future-field");
    const decoded = Listener.toObject(Listener.decode(out)) as any;
    const hcm = HCM.toObject(HCM.decode(decoded.filter_chains[0].filters[0].typed_config.value)) as any;
    assert.deepEqual(hcm.http_filters[0].config_discovery.type_urls, [typeUrl("envoy.extensions.filters.http.wasm.v3.Wasm")]);
    assert.equal(hcm.http_filters[0].config_discovery.config_source.api_config_source.grpc_services[0].google_grpc.target_uri, "infergate.infergate-system.svc.cluster.local:18000");
    // No filter but ours: the live load reaches it on its own stream (the snapshot's load-channel record).
    assert.deepEqual(httpFilterNames(await listenerCall(out)), ["infergate", "envoy.filters.http.router"], "idempotent");
  });

  it("gives other listeners no filter, only the early removal of a client-sent destination header", async () => {
    for (const [name, port] of [["default/inference-gateway/http", 8080], ["default/other-gateway/llm-gw", 8081], ["prod/inference-gateway/llm-gw", 8081]] as const) {
      const input = listenerBytes(name, port, hcmBytes());
      const out = await listenerCall(input);
      assert.deepEqual(httpFilterNames(out), ["envoy.filters.http.router"], name);
      assert.deepEqual(earlyMutations(out), [{ name: "infergate.strip-client-destination", remove: ["x-gateway-destination-endpoint", "x-infergate-mirror-endpoint"] }], name);
      // Nothing else changed: the input plus that one field.
      const hcm = WireMessage.decode(hcmOf(out));
      hcm.remove(52);
      assert.deepEqual(Buffer.from(hcm.encode()), Buffer.from(hcmBytes()), name);
      assert.deepEqual(Buffer.from(await listenerCall(out)), Buffer.from(out), `${name}: idempotent`);
    }
  });

  it("removes the client's header before any filter on the attach-to listener too, after Envoy Gateway's own early mutations", async () => {
    const theirs = { name: "envoy.http.early_header_mutation.header_mutation", typed_config: { type_url: typeUrl("envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation"), value: EarlyMutation.encode(EarlyMutation.fromObject({ mutations: [{ remove: "x-debug" }] })).finish() } };
    const hcm = HCM.encode(HCM.fromObject({ stat_prefix: "http", early_header_mutation_extensions: [theirs], http_filters: [{ name: "envoy.filters.http.router" }] })).finish();
    const out = await listenerCall(listenerBytes("default/inference-gateway/llm-gw", 8081, hcm));
    assert.deepEqual(earlyMutations(out), [
      { name: "envoy.http.early_header_mutation.header_mutation", remove: ["x-debug"] },
      { name: "infergate.strip-client-destination", remove: ["x-gateway-destination-endpoint", "x-infergate-mirror-endpoint"] },
    ]);
    assert.deepEqual(httpFilterNames(out), ["infergate", "envoy.filters.http.router"], "the filter still sets the header afterwards");
  });

  it("attaches to a Gateway in another namespace only with that namespace's ReferenceGrant", async () => {
    const pool = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: InferencePool
metadata: {name: llm, namespace: team-a, annotations: {inference.networking.x-k8s.io/attach-to: "{name: shared-gw, namespace: prod}"}}
spec: {selector: {app: llm}, targetPortNumber: 8000}
`;
    const grant = `---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: team-a-pools, namespace: prod}
spec: {from: [{group: inference.networking.x-k8s.io, kind: InferencePool, namespace: team-a}], to: [{group: gateway.networking.k8s.io, kind: Gateway, name: shared-gw}]}
`;
    for (const [yaml, attached] of [[pool, false], [pool + grant, true]] as const) {
      const config = parseRoutingConfig(yaml, "team-a.yaml");
      const h = new GatewayHooks({ xds: { target: "x:1" }, config: () => config, log: () => undefined });
      const port = await h.listen("127.0.0.1", 0);
      const c = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      try {
        const request = new WireMessage([{ field: 1, wireType: 2, bytes: listenerBytes("prod/shared-gw/http", 80, hcmBytes()) }]);
        const out: WireMessage = await new Promise((resolve, reject) => c.makeUnaryRequest(`/${SERVICE}/PostHTTPListenerModify`, (m: WireMessage) => Buffer.from(m.encode()),
          (b: Buffer) => WireMessage.decode(new Uint8Array(b)), request, (err, res) => (err ? reject(err) : resolve(res!))));
        assert.deepEqual(httpFilterNames(out.first(1)!.bytes), attached ? ["infergate", "envoy.filters.http.router"] : ["envoy.filters.http.router"], attached ? "granted" : "not granted");
      } finally {
        c.close();
        h.close();
      }
    }
  });

  it("feeds a Wasm filter an EnvoyExtensionPolicy attached (root_id infergate) over ECDS, keeping its name and flags", async () => {
    const wasm = Wasm.encode(Wasm.fromObject({ config: { name: "infergate", root_id: "infergate", vm_config: { runtime: "envoy.wasm.runtime.v8", code: { remote: { http_uri: { uri: "https://eg:18002/x", cluster: "wasm_cluster", timeout: { seconds: 10 } }, sha256: "ab" } } } } })).finish();
    const eep = { name: "envoy.filters.http.wasm/default/infergate-policy/0", disabled: true, typed_config: { type_url: typeUrl("envoy.extensions.filters.http.wasm.v3.Wasm"), value: wasm } };
    const out = await listenerCall(listenerBytes("default/plain-gateway/http", 80, hcmBytes([eep])));
    assert.deepEqual(httpFilterNames(out), ["envoy.filters.http.wasm/default/infergate-policy/0", "envoy.filters.http.router"]);
    const decoded = Listener.toObject(Listener.decode(out)) as any;
    const filter = (HCM.toObject(HCM.decode(decoded.filter_chains[0].filters[0].typed_config.value)) as any).http_filters[0];
    assert.equal(filter.disabled, true, "still enabled per route by Envoy Gateway");
    assert.equal(filter.typed_config, undefined);
    assert.ok(filter.config_discovery, "now fed over ECDS");
  });

  it("turns an InferencePool backend's cluster into EDS + override_host, keeping unknown fields", async () => {
    const clusterBytes = withUnknown(Cluster.encode(Cluster.fromObject({ name: "httproute/default/llm/rule/0", type: "STATIC", connect_timeout: { seconds: 10 }, lb_policy: "LEAST_REQUEST" })).finish(), 9002, "cluster-future-field");
    const pool = { apiVersion: "inference.networking.x-k8s.io/v1alpha2", kind: "InferencePool", metadata: { name: "reasoning-pool", namespace: "default" }, spec: {} };
    const context = new WireMessage();
    context.add(1, new WireMessage([{ field: 1, wireType: 2, bytes: Buffer.from(JSON.stringify(pool)) }]).encode());
    const req = new WireMessage([{ field: 1, wireType: 2, bytes: clusterBytes }]);
    req.add(2, context.encode());
    const out = (await call("PostClusterModify", req)).first(1)!.bytes;
    const c = Cluster.toObject(Cluster.decode(out), { enums: String }) as any;
    assert.equal(c.name, "httproute/default/llm/rule/0");
    assert.equal(c.type, "EDS");
    assert.equal(c.eds_cluster_config.service_name, "infergate-pool/default/reasoning-pool");
    assert.equal(c.lb_policy, undefined);
    assert.equal(Number(c.connect_timeout.seconds), 10, "untouched known field kept");
    assert.equal(WireMessage.decode(out).string(9002), "cluster-future-field");
    const policy = c.load_balancing_policy.policies[0].typed_extension_config;
    assert.equal(policy.name, "envoy.load_balancing_policies.override_host");
    assert.equal(policy.typed_config.type_url, typeUrl("envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost"));
    assert.match(Buffer.from(policy.typed_config.value).toString("latin1"), /x-gateway-destination-endpoint[\s\S]*round_robin/);
    const budget = c.circuit_breakers.thresholds[0].retry_budget;
    assert.deepEqual([budget.budget_percent.value, budget.min_retry_concurrency.value], [100, 64], "a burst of retries after a replica dies does not overflow");
    // Circuit breakers Envoy Gateway set (its defaults, or a BackendTrafficPolicy's) are kept.
    const withBreakers = Cluster.encode(Cluster.fromObject({ name: "httproute/default/llm/rule/0", circuit_breakers: { thresholds: [{ max_retries: { value: 1024 } }] } })).finish();
    const kept = new WireMessage([{ field: 1, wireType: 2, bytes: withBreakers }]);
    kept.add(2, context.encode());
    const k = Cluster.toObject(Cluster.decode((await call("PostClusterModify", kept)).first(1)!.bytes)) as any;
    assert.deepEqual(k.circuit_breakers, { thresholds: [{ max_retries: { value: 1024 } }] });
    const plain = new WireMessage([{ field: 1, wireType: 2, bytes: clusterBytes }]);
    assert.deepEqual(Buffer.from((await call("PostClusterModify", plain)).first(1)!.bytes), Buffer.from(clusterBytes), "other clusters untouched");
  });

  it("answers INTERNAL when it cannot edit a resource, so Envoy Gateway (failOpen: false) keeps its last good configuration", async () => {
    // A listener whose first field claims 100 bytes that are not there.
    const truncated = Buffer.from([0x0a, 0x64, 0x61]);
    await assert.rejects(listenerCall(truncated), (err: grpc.ServiceError) => err.code === grpc.status.INTERNAL);
    // No configuration loaded yet: nothing to decide with, so no answer either.
    const early = new GatewayHooks({ xds: { target: "x:1" }, config: () => { throw new Error("no configuration loaded yet"); }, log: () => undefined });
    const port = await early.listen("127.0.0.1", 0);
    const c = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const request = new WireMessage([{ field: 1, wireType: 2, bytes: listenerBytes("default/inference-gateway/llm-gw", 8081, hcmBytes()) }]);
      await assert.rejects(new Promise((resolve, reject) => c.makeUnaryRequest(`/${SERVICE}/PostHTTPListenerModify`, (m: WireMessage) => Buffer.from(m.encode()),
        (b: Buffer) => b, request, (err, res) => (err ? reject(err) : resolve(res)))),
      (err: grpc.ServiceError) => err.code === grpc.status.INTERNAL && /no configuration/.test(err.details));
    } finally {
      c.close();
      early.close();
    }
  });

  it("returns every resource from PostTranslateModify, editing only attached listeners", async () => {
    const other = withUnknown(Cluster.encode(Cluster.fromObject({ name: "other" })).finish(), 9003, "x");
    const req = new WireMessage();
    req.add(2, other);
    req.add(3, Buffer.from([0x0a, 0x01, 0x73])); // a secret, opaque to us
    req.add(4, listenerBytes("default/inference-gateway/llm-gw", 8081, hcmBytes()));
    const out = await call("PostTranslateModify", req);
    assert.deepEqual(Buffer.from(out.all(1)[0]!.bytes), Buffer.from(other));
    assert.equal(out.all(1).length, 1);
    assert.equal(out.all(2).length, 1);
    assert.deepEqual(httpFilterNames(out.all(3)[0]!.bytes), ["infergate", "envoy.filters.http.router"]);
  });
});

describe("Envoy Gateway extension hooks: a v1 pool's endpoint picker", () => {
  // The seed's pool, plus a v1 pool on the same Gateway whose endpointPickerRef resolves.
  const yaml = `apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: picked
  namespace: default
  annotations: {inference.networking.x-k8s.io/attach-to: "name: inference-gateway\\nport: 8081\\n"}
spec:
  selector: {matchLabels: {app: llm}}
  targetPorts: [{number: 8000}]
  endpointPickerRef: {name: epp, port: {number: 9002}, failureMode: FailOpen}
---
apiVersion: v1
kind: Service
metadata: {name: epp, namespace: default}
spec: {clusterIP: 10.96.0.20, ports: [{port: 9002}]}
`;
  const config = parseRoutingConfig(yaml, "t.yaml");
  const Route = root.lookupType("envoy.config.route.v3.Route");
  let hooks: GatewayHooks;
  let client: grpc.Client;
  const call = (method: string, request: WireMessage): Promise<WireMessage> => new Promise((resolve, reject) => {
    client.makeUnaryRequest(`/${SERVICE}/${method}`, (m: WireMessage) => Buffer.from(m.encode()), (b: Buffer) => WireMessage.decode(new Uint8Array(b)), request,
      (err, res) => (err ? reject(err) : resolve(res!)));
  });
  /** PostRouteModify with the route and, in its context, the backendRef's InferencePool. */
  const routeCall = async (route: Uint8Array, pool?: string): Promise<Uint8Array> => {
    const req = new WireMessage([{ field: 1, wireType: 2, bytes: route }]);
    if (pool) {
      const context = new WireMessage();
      context.add(1, new WireMessage([{ field: 1, wireType: 2, bytes: Buffer.from(JSON.stringify({ apiVersion: "inference.networking.k8s.io/v1", kind: "InferencePool", metadata: { name: pool, namespace: "default" } })) }]).encode());
      req.add(2, context.encode());
    }
    return (await call("PostRouteModify", req)).first(1)!.bytes;
  };

  before(async () => {
    assert.deepEqual(config.problems, []);
    hooks = new GatewayHooks({ xds: { target: "infergate.infergate-system.svc.cluster.local:18000" }, config: () => config, log: () => undefined });
    client = new grpc.Client(`127.0.0.1:${await hooks.listen("127.0.0.1", 0)}`, grpc.credentials.createInsecure());
  });
  after(() => { client.close(); hooks.close(); });

  it("puts the picker's ext_proc filter between the infergate filter and the router, once", async () => {
    const listener = async (bytes: Uint8Array) => (await call("PostHTTPListenerModify", new WireMessage([{ field: 1, wireType: 2, bytes }]))).first(1)!.bytes;
    const out = await listener(listenerBytes("default/inference-gateway/llm-gw", 8081, hcmBytes()));
    assert.deepEqual(httpFilterNames(out), ["infergate", "infergate-endpoint-picker", "envoy.filters.http.router"]);
    assert.deepEqual(httpFilterNames(await listener(out)), ["infergate", "infergate-endpoint-picker", "envoy.filters.http.router"], "idempotent");
    // A listener without the infergate filter gets no picker either (only the early header
    // mutation every HTTP listener gets).
    const plain = listenerBytes("default/inference-gateway/http", 8080, hcmBytes());
    assert.deepEqual(httpFilterNames(await listener(plain)), ["envoy.filters.http.router"]);
  });

  it("has the route to the pool call its picker and report the served endpoint, keeping unknown fields; other routes untouched", async () => {
    const route = withUnknown(Route.encode(Route.fromObject({ name: "httproute/default/llm/rule/0", match: { prefix: "/" }, route: { cluster: "httproute/default/llm/rule/0" } })).finish(), 9004, "route-future-field");
    const out = await routeCall(route, "picked");
    assert.equal(WireMessage.decode(out).string(9004), "route-future-field");
    const r = Route.toObject(Route.decode(out)) as any;
    const perRoute = root.lookupType("envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute");
    const any = r.typed_per_filter_config["infergate-endpoint-picker"];
    assert.equal(any.type_url, typeUrl("envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute"));
    const overrides = (perRoute.toObject(perRoute.decode(any.value)) as any).overrides;
    assert.equal(overrides.grpc_service.envoy_grpc.cluster_name, "infergate-picker/default/picked");
    assert.equal(overrides.failure_mode_allow.value, true);
    assert.equal(r.response_headers_to_add[0].header.key, "x-gateway-destination-endpoint-served");
    const again = Route.toObject(Route.decode(await routeCall(out, "picked"))) as any;
    assert.equal(Object.keys(again.typed_per_filter_config).length, 1);
    assert.equal(again.response_headers_to_add.length, 1, "idempotent");
    assert.deepEqual(Buffer.from(await routeCall(route, "reasoning-pool")), Buffer.from(route), "a pool without a picker (not in this configuration)");
    assert.deepEqual(Buffer.from(await routeCall(route)), Buffer.from(route), "a route with no pool");
  });

  it("adds each picker's cluster to the translation once", async () => {
    const req = new WireMessage();
    req.add(2, Cluster.encode(Cluster.fromObject({ name: "other" })).finish());
    const out = await call("PostTranslateModify", req);
    const names = out.all(1).map((c) => (Cluster.toObject(Cluster.decode(c.bytes)) as any).name);
    assert.deepEqual(names, ["other", "infergate-picker/default/picked"]);
    const c = Cluster.toObject(Cluster.decode(out.all(1)[1]!.bytes)) as any;
    assert.equal(c.eds_cluster_config.eds_config.api_config_source.grpc_services[0].google_grpc.target_uri, "infergate.infergate-system.svc.cluster.local:18000");
    const twice = await call("PostTranslateModify", new WireMessage(out.all(1).map((f) => ({ ...f, field: 2 }))));
    assert.equal(twice.all(1).length, 2);
  });
});
