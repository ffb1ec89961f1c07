// A v1 InferencePool's endpointPickerRef: how it resolves against Services (the YAML file's, or the
// API's), and the Envoy resources that wire a pool to its picker (envoy/endpoint-picker.ts, the
// standalone bootstrap). test/integration/endpoint-picker.test.ts runs them through real Envoy.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import protobuf from "protobufjs";
import { parseRoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import { buildBootstrap } from "../../extension-server/src/envoy/bootstrap.ts";
import { pickerCluster, pickerHttpFilter, pickerLoadAssignment, pickerRouteConfig, PICKER_FILTER_NAME } from "../../extension-server/src/envoy/endpoint-picker.ts";
import { encodeAny, encodeJson } from "../../extension-server/src/xds/encode.ts";
import { protoRoot } from "../../extension-server/src/xds/protos.ts";

const pool = (ref: string, name = "llm"): string => `---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: ${name}, namespace: team}
spec:
  selector: {matchLabels: {app: llm}}
  targetPorts: [{number: 8000}]
${ref ? `  endpointPickerRef: ${ref}\n` : ""}`;

const service = (spec: string, name = "epp", namespace = "team"): string => `---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${namespace}}
spec: ${spec}
`;

const EPP_SERVICE = service("{clusterIP: 10.96.0.20, ports: [{name: grpc-ext-proc, port: 9002, protocol: TCP}]}");

function pickerOf(yaml: string) {
  const config = parseRoutingConfig(yaml, "test.yaml");
  assert.deepEqual(config.problems.map((p) => p.text), []);
  return config.pools[0]!.picker;
}

describe("endpointPickerRef", () => {
  it("resolves to the Service's cluster IP and port, TLS by default, FailClose by default", () => {
    assert.deepEqual(pickerOf(pool("{name: epp, port: {number: 9002}}") + EPP_SERVICE), {
      service: "team/epp", port: 9002, failureMode: "FailClose", address: { ip: "10.96.0.20", port: 9002, tls: true },
    });
    const open = pickerOf(pool("{group: '', kind: Service, name: epp, port: {number: 9002}, failureMode: FailOpen}") + EPP_SERVICE);
    assert.equal(open?.failureMode, "FailOpen");
    assert.equal(open?.address?.ip, "10.96.0.20");
  });

  it("speaks plaintext HTTP/2 to a port whose appProtocol is kubernetes.io/h2c", () => {
    const h2c = service("{clusterIP: 127.0.0.1, ports: [{port: 9002, appProtocol: kubernetes.io/h2c}]}");
    assert.equal(pickerOf(pool("{name: epp, port: {number: 9002}}") + h2c)?.address?.tls, false);
  });

  it("keeps the pool when the reference does not resolve, and says why", () => {
    const why = (yaml: string): string | undefined => {
      const picker = pickerOf(yaml);
      assert.equal(picker?.address, undefined);
      return picker?.unresolved;
    };
    assert.equal(why(pool("{name: epp, port: {number: 9002}}")), "Service team/epp not found");
    assert.equal(why(pool("{name: epp, port: {number: 9002}}") + service("{clusterIP: 10.96.0.20, ports: [{port: 9002}]}", "epp", "other")), "Service team/epp not found");
    assert.equal(why(pool("{name: epp, port: {number: 9003}}") + EPP_SERVICE), "Service team/epp has no port 9003");
    assert.match(why(pool("{name: epp, port: {number: 9002}}") + service("{clusterIP: None, ports: [{port: 9002}]}"))!, /no cluster IP/);
    assert.match(why(pool("{name: epp}") + EPP_SERVICE)!, /port\.number is required/);
    assert.match(why(pool("{kind: Backend, group: gateway.envoyproxy.io, name: epp, port: {number: 9002}}") + EPP_SERVICE)!, /only a core Service/);
    assert.match(why(pool("{name: epp, port: {number: 9002}}") + service("{clusterIP: 10.96.0.20, ports: [{port: 9002, protocol: UDP}]}"))!, /not TCP/);
  });

  it("has no picker when the pool names none (optional since v1.6 of the API)", () => {
    assert.equal(pickerOf(pool("") + EPP_SERVICE), undefined);
  });

  it("refuses an invalid failureMode with the pool, naming the field", () => {
    const config = parseRoutingConfig(pool("{name: epp, port: {number: 9002}, failureMode: Sometimes}") + EPP_SERVICE, "t.yaml");
    assert.equal(config.pools.length, 0);
    assert.match(config.problems.map((p) => p.text).join("\n"), /spec\.endpointPickerRef\.failureMode/);
  });
});

/** Field number → raw values, for a message's top level. */
function fields(bytes: Uint8Array): Map<number, Array<number | Uint8Array>> {
  const reader = protobuf.Reader.create(bytes);
  const out = new Map<number, Array<number | Uint8Array>>();
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const wire = tag & 7;
    const value = wire === 0 ? reader.uint32() : wire === 2 ? reader.bytes() : (reader.skipType(wire), NaN);
    out.set(tag >>> 3, [...(out.get(tag >>> 3) ?? []), value]);
  }
  return out;
}
const one = (m: Map<number, Array<number | Uint8Array>>, n: number): any => m.get(n)?.[0];
const decode = (type: string, bytes: Uint8Array): any => {
  const t = protoRoot().lookupType(type);
  return t.toObject(t.decode(bytes), { enums: String, defaults: false });
};
const EXT_PROC = "envoy.extensions.filters.http.ext_proc.v3";

describe("Envoy resources for a picker", () => {
  const picker = { service: "team/epp", port: 9002, failureMode: "FailOpen" as const, address: { ip: "10.96.0.20", port: 9002, tls: true } };

  it("the ext_proc filter sends nothing unless a route overrides it, answers 503 on errors, and passes envoy.lb both ways", () => {
    const filter = pickerHttpFilter("c");
    assert.equal(filter.name, PICKER_FILTER_NAME);
    assert.equal(filter.disabled, undefined, "enabled: Envoy decides a disabled filter before the infergate filter has named the pool");
    const any = encodeAny(filter.typed_config as Record<string, unknown>);
    const config = decode(`${EXT_PROC}.ExternalProcessor`, any.value);
    assert.deepEqual(config.processing_mode, { request_header_mode: "SKIP", response_header_mode: "SKIP", request_trailer_mode: "SKIP", response_trailer_mode: "SKIP" });
    assert.equal(config.failure_mode_allow, undefined);
    assert.deepEqual(config.metadata_options, { forwarding_namespaces: { untyped: ["envoy.lb"] }, receiving_namespaces: { untyped: ["envoy.lb"] } });
    // status_on_error is field 24 upstream (newer than the vendored protos), code 503.
    assert.equal(one(fields(one(fields(any.value), 24)), 1), 503);
  });

  it("a picker route sends headers, the body FULL_DUPLEX_STREAMED and the response headers to its pool's picker, with its failure mode", () => {
    const any = encodeAny(pickerRouteConfig("team/llm", picker));
    const route = decode(`${EXT_PROC}.ExtProcPerRoute`, any.value);
    assert.deepEqual(route.overrides.processing_mode, {
      request_header_mode: "SEND", request_body_mode: "FULL_DUPLEX_STREAMED", request_trailer_mode: "SEND",
      response_header_mode: "SEND", response_trailer_mode: "SKIP",
    });
    assert.deepEqual(route.overrides.grpc_service.envoy_grpc, { cluster_name: "infergate-picker/team/llm", authority: "epp.team.svc:9002" });
    // Upstream's numbers: ExtProcOverrides.failure_mode_allow = 8 (a BoolValue), and
    // ProcessingMode.request_body_mode (3) = FULL_DUPLEX_STREAMED (4).
    const overrides = fields(one(fields(any.value), 2));
    assert.equal(one(fields(one(overrides, 8)), 1), 1);
    assert.equal(one(fields(one(overrides, 1)), 3), 4);
    const closed = decode(`${EXT_PROC}.ExtProcPerRoute`, encodeAny(pickerRouteConfig("team/llm", { ...picker, failureMode: "FailClose" })).value);
    assert.ok(closed.overrides.failure_mode_allow, "FailClose is written, not left to the filter's default");
    assert.equal(closed.overrides.failure_mode_allow.value ?? false, false);
  });

  it("the picker cluster is health checked, ejects on the first refused connection and never routes to an unhealthy host", () => {
    const c = decode("envoy.config.cluster.v3.Cluster", encodeJson("envoy.config.cluster.v3.Cluster", pickerCluster("team/llm", { target: "xds:18000" }, true)));
    assert.equal(c.eds_cluster_config.service_name, "infergate-picker/team/llm");
    assert.ok(c.common_lb_config.healthy_panic_threshold, "a panic threshold is set");
    assert.equal(c.common_lb_config.healthy_panic_threshold.value ?? 0, 0);
    assert.ok(c.common_lb_config.update_merge_window, "a merge window is set (Envoy's default is 1 s)");
    assert.equal(Number(c.common_lb_config.update_merge_window.seconds ?? 0) + Number(c.common_lb_config.update_merge_window.nanos ?? 0), 0, "health changes are not held back");
    assert.ok(c.health_checks[0].tcp_health_check);
    assert.deepEqual([c.outlier_detection.consecutive_local_origin_failure.value, c.outlier_detection.split_external_local_origin_errors], [1, true]);
    assert.equal(c.transport_socket.name, "envoy.transport_sockets.tls");
    const plain = decode("envoy.config.cluster.v3.Cluster", encodeJson("envoy.config.cluster.v3.Cluster", pickerCluster("team/llm", { target: "xds:18000" }, false)));
    assert.equal(plain.transport_socket, undefined);
  });

  it("the picker's EDS: its address, or no endpoint when the reference does not resolve", () => {
    const la = (p: typeof picker | { service: string; port: number; failureMode: "FailClose"; unresolved: string }) =>
      decode("envoy.config.endpoint.v3.ClusterLoadAssignment", encodeJson("envoy.config.endpoint.v3.ClusterLoadAssignment", pickerLoadAssignment("team/llm", p)));
    assert.deepEqual(la(picker).endpoints[0].lb_endpoints[0].endpoint.address.socket_address, { address: "10.96.0.20", port_value: 9002 });
    assert.equal(la({ service: "team/epp", port: 9002, failureMode: "FailClose", unresolved: "gone" }).endpoints, undefined);
  });

  it("the standalone bootstrap: wasm filter, then the picker filter, then the router; only picker pools' routes call it", () => {
    const yaml = pool("{name: epp, port: {number: 9002}, failureMode: FailOpen}") + EPP_SERVICE + pool("", "other");
    const config = parseRoutingConfig(yaml, "t.yaml");
    const bootstrap = buildBootstrap({ listenAddress: "127.0.0.1", adminPort: 0, plainPort: 0, inferencePort: 0, xdsAddress: "127.0.0.1", xdsPort: 1, wasmPath: "/m.wasm", snapshot: "s", config }) as any;
    const inference = bootstrap.static_resources.listeners.find((l: any) => l.name.startsWith("inference-"));
    const hcm = inference.filter_chains[0].filters[0].typed_config;
    assert.deepEqual(hcm.http_filters.map((f: any) => f.name), ["infergate", PICKER_FILTER_NAME, "envoy.filters.http.router"]);
    const routes = hcm.route_config.virtual_hosts[0].routes;
    const picked = (id: string) => routes.find((r: any) => r.route.cluster === `infergate-pool/${id}-picked`);
    assert.ok(picked("team/llm").typed_per_filter_config[PICKER_FILTER_NAME]);
    assert.equal(picked("team/llm").response_headers_to_add[0].header.key, "x-gateway-destination-endpoint-served");
    assert.equal(picked("team/other").typed_per_filter_config, undefined);
    assert.deepEqual(bootstrap.static_resources.clusters.filter((c: any) => c.name.startsWith("infergate-picker/")).map((c: any) => c.name), ["infergate-picker/team/llm"]);
    // No picker anywhere: no ext_proc filter at all.
    const none = buildBootstrap({ listenAddress: "127.0.0.1", adminPort: 0, plainPort: 0, inferencePort: 0, xdsAddress: "127.0.0.1", xdsPort: 1, wasmPath: "/m.wasm", snapshot: "s", config: parseRoutingConfig(pool(""), "t.yaml") }) as any;
    assert.deepEqual(none.static_resources.listeners[1].filter_chains[0].filters[0].typed_config.http_filters.map((f: any) => f.name), ["infergate", "envoy.filters.http.router"]);
  });
});
