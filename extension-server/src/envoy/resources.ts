// Every Envoy resource infergate creates that more than one part needs: the standalone bootstrap
// (envoy/bootstrap.ts) writes them as they are, the xDS publisher and the Envoy Gateway hooks
// encode them (xds/encode.ts). Each is built once, here.
//
// They are written in Envoy's proto3 JSON form because that is the form Envoy documents and the
// bootstrap file needs verbatim, so each builder reads like Envoy's documentation. Going from JSON
// to protobuf is mechanical given the types (and the encoder refuses anything the types do not
// know); going the other way would mean decoding every nested Any back out of its bytes.
import {
  DESTINATION_HEADER, FILTER_NAME, LB_METADATA_NAMESPACE, MIRROR_HEADER, SERVED_ENDPOINT_KEY,
} from "../contract.ts";
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

/** The EDS resource of several pools' endpoints together (a cluster Envoy Gateway built for an
 * HTTPRoute rule that splits between pools); `pools` are `<namespace>/<name>` ids. */
export function poolsEdsName(pools: readonly string[]): string {
  return pools.length === 1 ? poolClusterName(pools[0]!) : `infergate-pools/${[...pools].sort().join(",")}`;
}

/** The EDS resource of an HTTPRoute rule's cluster (the endpoints of every pool it names), or of
 * a mirror's cluster (the endpoints of the pool it mirrors to), by the cluster's name. The server
 * resolves it against the current routes, so a rule's pools change without touching the cluster. */
export function routeEdsName(cluster: string): string {
  return `infergate-route/${cluster}`;
}

/**
 * How Envoy reaches this server's xDS. `cluster`: a cluster of Envoy's bootstrap (Envoy's own gRPC
 * client; Envoy only allows bootstrap clusters there). `target`: a host:port for Envoy's Google
 * gRPC client, for Envoys whose clusters arrive over CDS (Envoy Gateway's), with mutual TLS when
 * the server requires it.
 */
export type XdsTransport = { cluster: string } | { target: string; tls?: XdsClientTls | undefined };

/** Envoy's side of mutual TLS to this server's xDS. */
export interface XdsClientTls {
  /** The CA certificate (PEM text) that signed this server's certificate; written inline, it is public. */
  serverCa: string;
  /** The Envoy's own certificate and key, as files on the Envoy's host (Envoy Gateway mounts its
   * `envoy` Secret at /certs in every Envoy pod). */
  certFile: string;
  keyFile: string;
}

function googleGrpc(target: string, tls: XdsClientTls | undefined, statPrefix: string): Json {
  return {
    target_uri: target, stat_prefix: statPrefix,
    ...(tls ? {
      channel_credentials: { ssl_credentials: { root_certs: { inline_string: tls.serverCa }, cert_chain: { filename: tls.certFile }, private_key: { filename: tls.keyFile } } },
    } : {}),
  };
}

export function xdsConfigSource(xds: XdsTransport): Json {
  const service = "cluster" in xds
    // A restarted server is reached within 2 s: Envoy's default xDS backoff grows to 30 s while the
    // server is down, so a configuration edit made after it returns could wait that long.
    ? { envoy_grpc: { cluster_name: xds.cluster, retry_policy: { retry_back_off: { base_interval: "0.25s", max_interval: "2s" } } } }
    : { google_grpc: googleGrpc(xds.target, xds.tls, "infergate_xds") };
  return {
    api_config_source: { api_type: "GRPC", transport_api_version: "V3", grpc_services: [service], set_node_on_first_message_only: true },
    resource_api_version: "V3",
  };
}

/**
 * The GrpcService the filter's root contexts open the load channel with (the snapshot's
 * `load-channel` record; filter/src/load_channel.ts): this server, reached as its xDS is. The
 * filter reopens a closed stream itself, so no retry policy.
 */
export function loadChannelService(xds: XdsTransport): Json {
  return "cluster" in xds ? { envoy_grpc: { cluster_name: xds.cluster } } : { google_grpc: googleGrpc(xds.target, xds.tls, "infergate_load") };
}

/** Cluster.eds_cluster_config of a pool's cluster: its endpoints come from this server. */
export function poolEdsConfig(pool: string, xds: XdsTransport): Json {
  return edsClusterConfig(poolClusterName(pool), xds);
}

/** Cluster.eds_cluster_config for the EDS resource `edsName` of this server. */
export function edsClusterConfig(edsName: string, xds: XdsTransport): Json {
  return { service_name: edsName, eds_config: xdsConfigSource(xds) };
}

/**
 * Cluster.load_balancing_policy that connects to the endpoint the filter named in
 * DESTINATION_HEADER (trying the next listed one if a connection fails), and only if it is a
 * member of the cluster; round robin when the header is absent. An endpoint picker's answer in
 * `envoy.lb` dynamic metadata comes first (the picker sets the header to the same value; only a
 * trusted ext_proc server can write that metadata). The address connected to is written back to
 * `envoy.lb` as the protocol's served endpoint (envoy/endpoint-picker.ts sends it to the picker).
 */
export function overrideHostPolicy(header: string = DESTINATION_HEADER): Json {
  const policy = (name: string, config: Json): Json => ({ policies: [{ typed_extension_config: { name, typed_config: config } }] });
  return policy("envoy.load_balancing_policies.override_host", typed("envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost", {
    // Only the filter's destination has an endpoint picker behind it; a mirror's pick is the filter's alone.
    ...(header === DESTINATION_HEADER ? {
      override_host_sources: [{ metadata: { key: LB_METADATA_NAMESPACE, path: [{ key: DESTINATION_HEADER }] } }, { header }],
      selected_host_key: { key: LB_METADATA_NAMESPACE, path: [{ key: SERVED_ENDPOINT_KEY }] },
    } : { override_host_sources: [{ header }] }),
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

/** Copies to a mirror may queue or fail, never grow without bound: past this many in flight per
 * mirror cluster and Envoy, a copy is dropped (and counted in the cluster's overflow stats). */
const MIRROR_MAX_REQUESTS = 1024;

export function mirrorCircuitBreakers(): Json {
  return { thresholds: [{ priority: "DEFAULT", max_connections: MIRROR_MAX_REQUESTS, max_pending_requests: MIRROR_MAX_REQUESTS, max_requests: MIRROR_MAX_REQUESTS, max_retries: 0 }] };
}

/**
 * The cluster of a RequestMirror to an InferencePool: EDS of the mirror pool's endpoints (by
 * `edsName`), steered by the endpoint the filter picked there (MIRROR_HEADER), bounded so a slow
 * or saturated mirror pool holds a fixed amount of Envoy's resources at most.
 */
export function mirrorCluster(name: string, edsName: string, xds: XdsTransport): Json {
  return {
    name, type: "EDS", connect_timeout: "1s",
    eds_cluster_config: edsClusterConfig(edsName, xds),
    load_balancing_policy: overrideHostPolicy(MIRROR_HEADER),
    circuit_breakers: mirrorCircuitBreakers(),
  };
}

/** An EDS cluster over a pool's endpoints, balanced by `lb` (override_host: steered by the filter).
 * `edsName` overrides the EDS resource (an HTTPRoute rule's cluster names its rule's). */
export function poolCluster(name: string, pool: string, xds: XdsTransport, lb: "ROUND_ROBIN" | "LEAST_REQUEST" | "override_host", edsName?: string): Json {
  return {
    name, type: "EDS", connect_timeout: "5s",
    eds_cluster_config: edsName === undefined ? poolEdsConfig(pool, xds) : edsClusterConfig(edsName, xds),
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

/** Name of the early header mutation below (so a listener gets it once). */
export const STRIP_DESTINATION_NAME = "infergate.strip-client-destination";

/**
 * HttpConnectionManager.early_header_mutation_extensions entry that removes a client-sent
 * DESTINATION_HEADER and MIRROR_HEADER before any filter or route sees the request. Every pool
 * cluster's override_host policy honours the first, and every mirror cluster's the second, and an
 * HTTPRoute on a listener without the filter can reach those clusters. It runs before the HTTP
 * filters, so the filter (or an endpoint picker) can still set them afterwards; a route's
 * `request_headers_to_remove` would run at the router, after them, and remove their pick too.
 */
export function stripClientDestination(): Json {
  return {
    name: STRIP_DESTINATION_NAME,
    typed_config: typed("envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation", {
      mutations: [{ remove: DESTINATION_HEADER }, { remove: MIRROR_HEADER }],
    }),
  };
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
