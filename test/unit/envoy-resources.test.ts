// The Envoy resources infergate builds (envoy/resources.ts), as Envoy receives them over xDS and
// from the hooks: proto3 JSON encoded by xds/encode.ts, including fields newer than the vendored
// protos, which must reach the wire under upstream's field numbers.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import protobuf from "protobufjs";
import { hostCluster, loadAssignment, loadChannelService, overrideHostPolicy, poolCluster, wasmFilter, type XdsTransport } from "../../extension-server/src/envoy/resources.ts";
import { encodeAny, encodeJson } from "../../extension-server/src/xds/encode.ts";
import { protoRoot, typeUrl } from "../../extension-server/src/xds/protos.ts";

/** Field number → last raw value, for a message's top level (varints as numbers, the rest as bytes). */
function fields(bytes: Uint8Array): Map<number, number | Uint8Array> {
  const reader = protobuf.Reader.create(bytes);
  const out = new Map<number, number | Uint8Array>();
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const wire = tag & 7;
    if (wire === 0) out.set(tag >>> 3, reader.uint32());
    else if (wire === 2) out.set(tag >>> 3, reader.bytes());
    else reader.skipType(wire);
  }
  return out;
}

const decode = (type: string, bytes: Uint8Array): any => {
  const t = protoRoot().lookupType(type);
  return t.toObject(t.decode(bytes), { enums: String, defaults: false });
};

describe("Envoy resources", () => {
  it("encodes the Wasm filter with the snapshot, the local module, FAIL_RELOAD and allow_on_headers_stop_iteration", () => {
    const any = encodeAny(wasmFilter({ wasmPath: "/opt/infergate.wasm", snapshot: "infergate-snapshot 1\nversion 3\n" }));
    assert.equal(any.type_url, typeUrl("envoy.extensions.filters.http.wasm.v3.Wasm"));
    const decoded = decode("envoy.extensions.filters.http.wasm.v3.Wasm", any.value);
    assert.equal(decoded.config.root_id, "infergate");
    assert.equal(decoded.config.vm_config.runtime, "envoy.wasm.runtime.v8");
    assert.equal(decoded.config.vm_config.code.local.filename, "/opt/infergate.wasm");
    assert.equal(decode("google.protobuf.StringValue", decoded.config.configuration.value).value, "infergate-snapshot 1\nversion 3\n");
    // Upstream's numbers on the wire: PluginConfig.failure_policy = 7 (FAIL_RELOAD = 1) and
    // allow_on_headers_stop_iteration = 9 (a BoolValue whose field 1 is 1).
    const plugin = fields(any.value).get(1) as Uint8Array;
    assert.equal(fields(plugin).get(7), 1);
    assert.equal(fields(fields(plugin).get(9) as Uint8Array).get(1), 1);
    assert.equal(fields(plugin).get(5), undefined, "the deprecated fail_open is not set");
  });

  it("fetches the module over HTTP with its sha256 when it is remote", () => {
    const any = encodeAny(wasmFilter({ wasmPath: "", remote: { uri: "http://x:9090/m.wasm", cluster: "mod", sha256: "ab" }, snapshot: "s" }));
    const remote = decode("envoy.extensions.filters.http.wasm.v3.Wasm", any.value).config.vm_config.code.remote;
    assert.deepEqual({ uri: remote.http_uri.uri, cluster: remote.http_uri.cluster, timeout: Number(remote.http_uri.timeout.seconds), sha256: remote.sha256 },
      { uri: "http://x:9090/m.wasm", cluster: "mod", timeout: 10, sha256: "ab" });
  });

  it("encodes the steered pool cluster: EDS from this server, override_host on the destination header", () => {
    const c = decode("envoy.config.cluster.v3.Cluster", encodeJson("envoy.config.cluster.v3.Cluster", poolCluster("c", "ns/p", { target: "xds:18000" }, "override_host")));
    assert.equal(c.type, "EDS");
    assert.equal(Number(c.connect_timeout.seconds), 5);
    const t = c.circuit_breakers.thresholds[0];
    assert.deepEqual([t.retry_budget.budget_percent.value, t.retry_budget.min_retry_concurrency.value, t.max_requests.value], [100, 64, 65536]);
    assert.equal(c.eds_cluster_config.service_name, "infergate-pool/ns/p");
    assert.equal(c.eds_cluster_config.eds_config.api_config_source.grpc_services[0].google_grpc.target_uri, "xds:18000");
    const policy = c.load_balancing_policy.policies[0].typed_extension_config;
    assert.equal(policy.name, "envoy.load_balancing_policies.override_host");
    const host = decode("envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost", policy.typed_config.value);
    // An endpoint picker's envoy.lb answer first, then the filter's header; the address connected
    // to is written back to envoy.lb as the served endpoint.
    assert.deepEqual(host.override_host_sources, [
      { metadata: { key: "envoy.lb", path: [{ key: "x-gateway-destination-endpoint" }] } },
      { header: "x-gateway-destination-endpoint" },
    ]);
    assert.deepEqual(host.selected_host_key, { key: "envoy.lb", path: [{ key: "x-gateway-destination-endpoint-served" }] });
    // Upstream's numbers: OverrideHostSource.metadata = 2, OverrideHost.selected_host_key = 2.
    const raw = encodeJson("envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost", { override_host_sources: [{ metadata: { key: "k" } }], selected_host_key: { key: "s" } });
    assert.ok(fields(fields(raw).get(1) as Uint8Array).get(2) instanceof Uint8Array);
    assert.ok(fields(raw).get(2) instanceof Uint8Array);
    assert.equal(host.fallback_policy.policies[0].typed_extension_config.name, "envoy.load_balancing_policies.round_robin");
    assert.deepEqual(decode("envoy.config.cluster.v3.LoadBalancingPolicy", encodeJson("envoy.config.cluster.v3.LoadBalancingPolicy", overrideHostPolicy())), c.load_balancing_policy);
  });

  it("reconnects to a restarted server within 2 s over Envoy's own gRPC client; the load channel is reached as xDS is", () => {
    const c = decode("envoy.config.cluster.v3.Cluster", encodeJson("envoy.config.cluster.v3.Cluster", poolCluster("c", "ns/p", { cluster: "infergate_xds" }, "override_host")));
    const backoff = c.eds_cluster_config.eds_config.api_config_source.grpc_services[0].envoy_grpc.retry_policy.retry_back_off;
    assert.deepEqual([Number(backoff.base_interval.nanos) / 1e6, Number(backoff.max_interval.seconds)], [250, 2]);
    const service = (xds: XdsTransport) => decode("envoy.config.core.v3.GrpcService", encodeJson("envoy.config.core.v3.GrpcService", loadChannelService(xds)));
    assert.deepEqual(service({ cluster: "infergate_xds" }), { envoy_grpc: { cluster_name: "infergate_xds" } }, "the filter retries itself: no retry policy");
    const tls = { serverCa: "-----BEGIN CERTIFICATE-----\n", certFile: "/certs/tls.crt", keyFile: "/certs/tls.key" };
    const google = service({ target: "infergate.infergate-system:18000", tls }).google_grpc;
    assert.equal(google.target_uri, "infergate.infergate-system:18000");
    assert.equal(google.stat_prefix, "infergate_load");
    assert.deepEqual(google.channel_credentials.ssl_credentials.cert_chain, { filename: "/certs/tls.crt" });
    assert.deepEqual(google.channel_credentials.ssl_credentials.private_key, { filename: "/certs/tls.key" });
    assert.equal(google.channel_credentials.ssl_credentials.root_certs.inline_string, tls.serverCa);
  });

  it("encodes the endpoints and the module cluster", () => {
    const la = decode("envoy.config.endpoint.v3.ClusterLoadAssignment", encodeJson("envoy.config.endpoint.v3.ClusterLoadAssignment", loadAssignment("c", [{ ip: "10.0.0.1", port: 8000 }])));
    assert.deepEqual(la.endpoints[0].lb_endpoints[0].endpoint.address.socket_address, { address: "10.0.0.1", port_value: 8000 });
    const m = decode("envoy.config.cluster.v3.Cluster", encodeJson("envoy.config.cluster.v3.Cluster", hostCluster({ name: "mod", host: "svc", port: 9090 })));
    assert.equal(m.type, "STRICT_DNS");
  });

  it("refuses what the protos do not know instead of dropping it", () => {
    assert.throws(() => encodeJson("envoy.config.cluster.v3.Cluster", { name: "c", no_such_field: 1 }), /Cluster\.no_such_field: envoy\.config\.cluster\.v3\.Cluster has no such field/);
    assert.throws(() => encodeJson("envoy.config.cluster.v3.Cluster", { type: "EDSS" }), /has no value EDSS/);
    assert.throws(() => encodeJson("envoy.config.cluster.v3.Cluster", { connect_timeout: 5 }), /Duration is written like "1\.5s"/);
    assert.throws(() => encodeJson("envoy.config.cluster.v3.Cluster", { connect_timeout: "5m" }), /Duration/);
  });
});
