// Every Envoy resource infergate creates that more than one part needs: the standalone bootstrap
// (envoy/bootstrap.ts) writes them as they are, the xDS publisher and the Envoy Gateway hooks
// encode them (xds/encode.ts). Each is built once, here.
//
// They are written in Envoy's proto3 JSON form because that is the form Envoy documents and the
// bootstrap file needs verbatim, so each builder reads like Envoy's documentation. Going from JSON
// to protobuf is mechanical given the types (and the encoder refuses anything the types do not
// know); going the other way would mean decoding every nested Any back out of its bytes.
import { DESTINATION_HEADER, FILTER_NAME, LB_METADATA_NAMESPACE, SERVED_ENDPOINT_KEY } from "../contract.ts";
import type { Json } from "../xds/encode.ts";
import { typeUrl } from "../xds/protos.ts";

export const WASM_TYPE_URL = typeUrl("envoy.extensions.filters.http.wasm.v3.Wasm");

/** `{"@type": ..., ...body}`: an Any in JSON form. */
export function typed(type: string, body: Json = {}): Json {
  return { "@type": typeUrl(type), ...body };
}

/** The cluster (and EDS resource) of a pool's endpoints; `pool` is its `<namespace>/<name>`. */
export function poolClusterName(pool: string): string {
  return `infergate-pool/${pool}`;
}

/**
 * How Envoy reaches this server's xDS. `cluster`: a cluster of Envoy's bootstrap (Envoy's own gRPC
 * client; Envoy only allows bootstrap clusters there). `target`: a host:port for Envoy's Google
 * gRPC client, for Envoys whose clusters arrive over CDS (Envoy Gateway's).
 */
export type XdsTransport = { cluster: string } | { target: string };

export function xdsConfigSource(xds: XdsTransport): Json {
  const service = "cluster" in xds
    ? { envoy_grpc: { cluster_name: xds.cluster } }
    : { google_grpc: { target_uri: xds.target, stat_prefix: "infergate_xds" } };
  return {
    api_config_source: { api_type: "GRPC", transport_api_version: "V3", grpc_services: [service], set_node_on_first_message_only: true },
    resource_api_version: "V3",
  };
}

/** Cluster.eds_cluster_config of a pool's cluster: its endpoints come from this server. */
export function poolEdsConfig(pool: string, xds: XdsTransport): Json {
  return { service_name: poolClusterName(pool), eds_config: xdsConfigSource(xds) };
}

/**
 * Cluster.load_balancing_policy that connects to the endpoint the filter named in
 * DESTINATION_HEADER (trying the next listed one if a connection fails), and only if it is a
 * member of the cluster; round robin when the header is absent. An endpoint picker's answer in
 * `envoy.lb` dynamic metadata comes first (the picker sets the header to the same value; only a
 * trusted ext_proc server can write that metadata). The address connected to is written back to
 * `envoy.lb` as the protocol's served endpoint (envoy/endpoint-picker.ts sends it to the picker).
 */
export function overrideHostPolicy(): Json {
  const policy = (name: string, config: Json): Json => ({ policies: [{ typed_extension_config: { name, typed_config: config } }] });
  return policy("envoy.load_balancing_policies.override_host", typed("envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost", {
    override_host_sources: [{ metadata: { key: LB_METADATA_NAMESPACE, path: [{ key: DESTINATION_HEADER }] } }, { header: DESTINATION_HEADER }],
    selected_host_key: { key: LB_METADATA_NAMESPACE, path: [{ key: SERVED_ENDPOINT_KEY }] },
    fallback_policy: policy("envoy.load_balancing_policies.round_robin", typed("envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin")),
  }));
}

/** Requests in flight (and waiting for a connection) per pool cluster and Envoy. LLM requests
 * stream for minutes, and the filter sheds by criticality itself: Envoy's default of 1024 would
 * answer 503 to a busy pool long before the replicas are full. */
const POOL_MAX_REQUESTS = 65_536;

/**
 * Cluster.circuit_breakers of a pool cluster. When a replica dies, every request the filter had
 * sent there retries at once on the next endpoint it listed (only on connect failures, refused
 * streams and resets before the request was sent; at most twice per request). Envoy's default
 * allows 3 retries in flight per cluster, so a burst overflows and gets 503s. The retry budget lets
 * as many retries be in flight as there are requests (a request retries one attempt at a time),
 * and at least 64 when the cluster is quiet.
 */
export function poolCircuitBreakers(): Json {
  return {
    thresholds: [{
      priority: "DEFAULT",
      max_connections: POOL_MAX_REQUESTS, max_pending_requests: POOL_MAX_REQUESTS, max_requests: POOL_MAX_REQUESTS,
      retry_budget: { budget_percent: { value: 100 }, min_retry_concurrency: 64 },
    }],
  };
}

/** An EDS cluster over a pool's endpoints, balanced by `lb` (override_host: steered by the filter). */
export function poolCluster(name: string, pool: string, xds: XdsTransport, lb: "ROUND_ROBIN" | "LEAST_REQUEST" | "override_host"): Json {
  return {
    name, type: "EDS", connect_timeout: "5s",
    eds_cluster_config: poolEdsConfig(pool, xds),
    ...(lb === "override_host" ? { load_balancing_policy: overrideHostPolicy() } : { lb_policy: lb }),
    circuit_breakers: poolCircuitBreakers(),
    // Requests, errors and connections per endpoint in Envoy's own stats (with the endpoint's
    // address as a label in /stats/prometheus); they go away with the endpoint.
    track_cluster_stats: { per_endpoint_stats: true },
  };
}

/**
 * HttpConnectionManager path handling for every listener infergate generates: the path is
 * normalized (RFC 3986, which decodes percent-encoded unreserved characters and resolves dot
 * segments), repeated slashes are merged, and escaped slashes are decoded, before any filter or
 * route sees it and on its way upstream. So a request cannot reach a model server under a
 * spelling the routes and the filter do not recognise (uvicorn decodes paths itself).
 */
export function pathNormalization(): Json {
  return { normalize_path: true, merge_slashes: true, path_with_escaped_slashes_action: "UNESCAPE_AND_FORWARD" };
}

/** A pool's endpoints (EDS). */
export function loadAssignment(clusterName: string, endpoints: Array<{ ip: string; port: number }>): Json {
  return {
    cluster_name: clusterName,
    endpoints: [{ lb_endpoints: endpoints.map(({ ip, port }) => ({ endpoint: { address: { socket_address: { address: ip, port_value: port } } } })) }],
  };
}

/** A cluster of one host:port, by DNS name or IP (Envoy fetches the filter module through it). */
export function hostCluster(c: { name: string; host: string; port: number }): Json {
  return {
    name: c.name, type: "STRICT_DNS", connect_timeout: "2s",
    load_assignment: { cluster_name: c.name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: c.host, port_value: c.port } } } }] }] },
  };
}

export interface WasmFilterOptions {
  /** Path of the compiled filter module on the Envoy host. */
  wasmPath: string;
  /** Or: fetch the module over HTTP (Envoy Gateway's Envoys run elsewhere) through `cluster`. */
  remote?: { uri: string; cluster: string; sha256: string } | undefined;
  /** The routing snapshot text (filter/src/core/snapshot.ts documents the format). */
  snapshot: string;
}

/** The infergate Wasm filter's configuration (an Any of envoy.extensions.filters.http.wasm.v3.Wasm). */
export function wasmFilter(opts: WasmFilterOptions): Json {
  const code = opts.remote
    ? { remote: { http_uri: { uri: opts.remote.uri, cluster: opts.remote.cluster, timeout: "10s" }, sha256: opts.remote.sha256 } }
    : { local: { filename: opts.wasmPath } };
  return typed("envoy.extensions.filters.http.wasm.v3.Wasm", {
    config: {
      name: FILTER_NAME,
      root_id: FILTER_NAME,
      // The VM is reused across configuration pushes as long as vm_config is unchanged: only the
      // snapshot (plugin configuration) changes on each push, so no module is recompiled.
      vm_config: { vm_id: FILTER_NAME, runtime: "envoy.wasm.runtime.v8", code },
      configuration: typed("google.protobuf.StringValue", { value: opts.snapshot }),
      // A VM that traps is replaced for the next request rather than failing every later one.
      failure_policy: "FAIL_RELOAD",
      allow_on_headers_stop_iteration: true,
    },
  });
}

/**
 * The HTTP filter whose configuration (the Wasm filter above, with the snapshot) arrives over ECDS
 * under the filter's name. `defaultConfig` is used until the first ECDS answer.
 */
export function ecdsHttpFilter(name: string, xds: XdsTransport, defaultConfig?: Json): Json {
  return { name, config_discovery: filterConfigDiscovery(xds, defaultConfig) };
}

/** HttpFilter.config_discovery of the filter above. */
export function filterConfigDiscovery(xds: XdsTransport, defaultConfig?: Json): Json {
  return {
    config_source: xdsConfigSource(xds),
    ...(defaultConfig ? { default_config: defaultConfig, apply_default_config_without_warming: true } : {}),
    type_urls: [WASM_TYPE_URL],
  };
}

/** The ECDS resource: a named filter configuration. */
export function typedExtensionConfig(name: string, config: Json): Json {
  return { name, typed_config: config };
}
