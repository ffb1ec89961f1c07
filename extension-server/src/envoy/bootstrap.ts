// Generates the Envoy bootstrap for standalone mode:
//   - a plain listener (the seed's port 8080): the pool behind ordinary round robin;
//   - one inference listener per `attach-to` port (the seed's 8081): the infergate Wasm filter,
//     configured over ECDS, chooses the endpoint (and fallbacks) and the pool's override_host
//     cluster connects to it, retrying the next one if a connection fails;
//   - the pools' endpoints arrive over EDS and the filter's snapshot over ECDS, both from the
//     extension server, so editing the configuration never restarts Envoy.
import type { PoolConfig, RoutingConfig } from "../config/routing-config.ts";
import { FILTER_CONFIG_NAME, WASM_TYPE_URL, wasmFilterJson } from "../xds/wasm-config.ts";
import { DESTINATION_HEADER, POOL_HEADER } from "./routes.ts";

export const XDS_CLUSTER = "infergate_xds";

export const DEFAULT_INFERENCE_PORT = 8081;
/** Envoy buffers a request body up to this size while the filter looks for `model`. */
const BUFFER_LIMIT_BYTES = 16 * 1024 * 1024;

export interface BootstrapOptions {
  listenAddress: string;
  adminPort: number;
  plainPort: number;
  /** Overrides the inference listener port for every pool (tests use ephemeral ports). */
  inferencePort?: number | undefined;
  /** Adds a listener that balances the first pool with Envoy's least-request policy (what an
   * Envoy user would try before infergate; the benchmark compares against it). */
  leastRequestPort?: number | undefined;
  xdsAddress: string;
  xdsPort: number;
  wasmPath: string;
  snapshot: string;
  config: RoutingConfig;
}

export function poolClusterName(pool: string): string {
  return `infergate-pool-${pool}`;
}

export function pickedClusterName(pool: string): string {
  return `infergate-pool-${pool}-picked`;
}

function overrideHostPolicy(): Record<string, unknown> {
  return {
    policies: [{
      typed_extension_config: {
        name: "envoy.load_balancing_policies.override_host",
        typed_config: typed("envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost", {
          override_host_sources: [{ header: DESTINATION_HEADER }],
          fallback_policy: { policies: [{ typed_extension_config: { name: "envoy.load_balancing_policies.round_robin", typed_config: typed("envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin") } }] },
        }),
      },
    }],
  };
}

const typed = (type: string, body: Record<string, unknown> = {}): Record<string, unknown> => ({ "@type": `type.googleapis.com/${type}`, ...body });

const socket = (address: string, port: number) => ({ socket_address: { address, port_value: port } });

function grpcSource(): Record<string, unknown> {
  return {
    api_config_source: {
      api_type: "GRPC",
      transport_api_version: "V3",
      grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER } }],
      set_node_on_first_message_only: true,
    },
    resource_api_version: "V3",
  };
}

function httpListener(name: string, address: string, port: number, routes: unknown[], httpFilters: unknown[]): Record<string, unknown> {
  return {
    name,
    address: socket(address, port),
    per_connection_buffer_limit_bytes: BUFFER_LIMIT_BYTES,
    filter_chains: [{
      filters: [{
        name: "envoy.filters.network.http_connection_manager",
        typed_config: typed("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", {
          stat_prefix: name,
          route_config: { name, virtual_hosts: [{ name, domains: ["*"], routes }] },
          http_filters: [...httpFilters, { name: "envoy.filters.http.router", typed_config: typed("envoy.extensions.filters.http.router.v3.Router") }],
        }),
      }],
    }],
  };
}

/** LLM responses stream for minutes: no route timeout. */
const toCluster = (cluster: string) => ({ cluster, timeout: "0s" });

function plainListener(name: string, address: string, port: number, cluster: string): Record<string, unknown> {
  return httpListener(`${name}-${port}`, address, port, [{ match: { prefix: "/" }, route: toCluster(cluster) }], []);
}

const leastRequestCluster = (pool: string): string => `${poolClusterName(pool)}-least-request`;

/** A dead endpoint is retried on the next one the filter listed (override_host walks the list). */
const RETRY_ON_CONNECT_FAILURE = { retry_on: "connect-failure,refused-stream,reset-before-request", num_retries: 2 };

function inferenceListener(opts: BootstrapOptions, port: number, pool: PoolConfig): Record<string, unknown> {
  const routes = [
    // The filter strips any client-sent destination and pool, and sets both on requests it routed.
    ...opts.config.pools.map((p) => ({
      match: { prefix: "/", headers: [{ name: POOL_HEADER, string_match: { exact: p.name } }, { name: DESTINATION_HEADER, present_match: true }] },
      route: { ...toCluster(pickedClusterName(p.name)), retry_policy: RETRY_ON_CONNECT_FAILURE },
    })),
    // Everything else (GET /v1/models, /health, ...) goes to the pool by round robin.
    { match: { prefix: "/" }, route: toCluster(poolClusterName(pool.name)) },
  ];
  const filter = {
    name: FILTER_CONFIG_NAME,
    config_discovery: {
      config_source: grpcSource(),
      // Start routing with the snapshot known when the bootstrap was written, even if the
      // extension server is not reachable yet; ECDS replaces it as soon as it connects.
      default_config: wasmFilterJson({ wasmPath: opts.wasmPath, snapshot: opts.snapshot }),
      apply_default_config_without_warming: true,
      type_urls: [WASM_TYPE_URL],
    },
  };
  return httpListener(`inference-${port}`, opts.listenAddress, port, routes, [filter]);
}

function clusters(opts: BootstrapOptions): unknown[] {
  const xds = {
    name: XDS_CLUSTER,
    type: "STATIC",
    connect_timeout: "1s",
    typed_extension_protocol_options: {
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": typed("envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {
        explicit_http_config: { http2_protocol_options: {} },
      }),
    },
    load_assignment: { cluster_name: XDS_CLUSTER, endpoints: [{ lb_endpoints: [{ endpoint: { address: socket(opts.xdsAddress, opts.xdsPort) } }] }] },
  };

  // Pool clusters take their endpoints from the pool's EDS resource (named like the cluster).
  const edsCluster = (name: string, pool: string, lbPolicy: string) => ({
    name, type: "EDS", lb_policy: lbPolicy, connect_timeout: "5s",
    eds_cluster_config: { service_name: poolClusterName(pool), eds_config: grpcSource() },
  });
  const pools = opts.config.pools.map((p) => edsCluster(poolClusterName(p.name), p.name, "ROUND_ROBIN"));
  // The endpoints the filter picks, from the same EDS set: override_host only connects to a
  // listed address that is a member of the pool, so a forged header cannot reach anything else.
  const picked = opts.config.pools.map((p) => {
    const { lb_policy: _unused, ...cluster } = edsCluster(pickedClusterName(p.name), p.name, "ROUND_ROBIN");
    return { ...cluster, load_balancing_policy: overrideHostPolicy() };
  });
  const first = opts.config.pools[0];
  const leastRequest = opts.leastRequestPort !== undefined && first ? [edsCluster(leastRequestCluster(first.name), first.name, "LEAST_REQUEST")] : [];
  return [xds, ...picked, ...pools, ...leastRequest];
}

/** The inference listener port of each pool: its attach-to port, else the default. */
export function inferencePorts(opts: Pick<BootstrapOptions, "inferencePort" | "config">): Map<number, PoolConfig> {
  const ports = new Map<number, PoolConfig>();
  for (const pool of opts.config.pools) {
    const port = opts.inferencePort ?? pool.attachTo?.port ?? DEFAULT_INFERENCE_PORT;
    if (!ports.has(port)) ports.set(port, pool);
  }
  return ports;
}

export function buildBootstrap(opts: BootstrapOptions): Record<string, unknown> {
  const first = opts.config.pools[0];
  if (!first) throw new Error("the configuration has no InferencePool");
  const listeners = [
    plainListener("plain", opts.listenAddress, opts.plainPort, poolClusterName(first.name)),
    ...[...inferencePorts(opts)].map(([port, pool]) => inferenceListener(opts, port, pool)),
    ...(opts.leastRequestPort !== undefined ? [plainListener("least-request", opts.listenAddress, opts.leastRequestPort, leastRequestCluster(first.name))] : []),
  ];
  return {
    node: { id: "infergate-standalone", cluster: "infergate" },
    admin: { address: socket("127.0.0.1", opts.adminPort) },
    static_resources: { listeners, clusters: clusters(opts) },
  };
}
