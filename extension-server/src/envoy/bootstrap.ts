// Generates the Envoy bootstrap for standalone mode:
//   - a plain listener (the seed's port 8080): the pool behind ordinary round robin;
//   - one inference listener per `attach-to` port (the seed's 8081): the infergate Wasm filter,
//     configured over ECDS, chooses the endpoint (and fallbacks) and the pool's override_host
//     cluster connects to it, retrying the next one if a connection fails;
//   - the pools' endpoints arrive over EDS and the filter's snapshot over ECDS, both from the
//     extension server, so editing the configuration never restarts Envoy;
//   - a pool whose v1 `endpointPickerRef` names a picker also calls it over ext_proc on its route
//     (envoy/endpoint-picker.ts), through a cluster whose endpoint arrives over EDS too.
import type { PoolConfig, RoutingConfig } from "../config/routing-config.ts";
import { DESTINATION_HEADER, FILTER_NAME, POOL_HEADER } from "../contract.ts";
import type { Json } from "../xds/encode.ts";
import type { RouteConfig, RouteMatchConfig, StringMatchConfig } from "../config/routes.ts";
import { pickerCluster, pickerClusterName, pickerHttpFilter, pickerRouteConfig, PICKER_FILTER_NAME, servedEndpointHeader } from "./endpoint-picker.ts";
import { ecdsHttpFilter, mirrorCluster, pathNormalization, poolCluster, poolClusterName, routeEdsName, typed, wasmFilter, type XdsTransport } from "./resources.ts";

export const XDS_CLUSTER = "infergate_xds";
const XDS: XdsTransport = { cluster: XDS_CLUSTER };

const DEFAULT_INFERENCE_PORT = 8081;
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

const pickedClusterName = (pool: string): string => `${poolClusterName(pool)}-picked`;
const leastRequestClusterName = (pool: string): string => `${poolClusterName(pool)}-least-request`;

const socket = (address: string, port: number): Json => ({ socket_address: { address, port_value: port } });

function httpListener(name: string, address: string, port: number, routes: unknown[], httpFilters: unknown[]): Json {
  return {
    name,
    address: socket(address, port),
    per_connection_buffer_limit_bytes: BUFFER_LIMIT_BYTES,
    filter_chains: [{
      filters: [{
        name: "envoy.filters.network.http_connection_manager",
        typed_config: typed("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", {
          stat_prefix: name,
          ...pathNormalization(),
          route_config: { name, virtual_hosts: [{ name, domains: ["*"], routes }] },
          http_filters: [...httpFilters, { name: "envoy.filters.http.router", typed_config: typed("envoy.extensions.filters.http.router.v3.Router") }],
        }),
      }],
    }],
  };
}

/** LLM responses stream for minutes: no route timeout. */
const toCluster = (cluster: string): Json => ({ cluster, timeout: "0s" });

function plainListener(name: string, address: string, port: number, cluster: string): Json {
  return httpListener(`${name}-${port}`, address, port, [{ match: { prefix: "/" }, route: toCluster(cluster) }], []);
}

/** A dead endpoint is retried on the next one the filter listed (override_host walks the list). */
const RETRY_ON_CONNECT_FAILURE = { retry_on: "connect-failure,refused-stream,reset-before-request", num_retries: 2 };

/** On a pool with an endpoint picker, the route calls it and reports the served endpoint. */
function withPicker(route: Json, pool: PoolConfig): Json {
  if (!pool.picker) return route;
  return {
    ...route,
    typed_per_filter_config: { [PICKER_FILTER_NAME]: pickerRouteConfig(pool.id, pool.picker) },
    response_headers_to_add: [servedEndpointHeader()],
  };
}

/** The pickers' ext_proc filter, when any pool has a picker (its routes enable it). */
function pickerFilters(config: RoutingConfig): Json[] {
  const first = config.pools.find((p) => p.picker);
  return first ? [pickerHttpFilter(pickerClusterName(first.id))] : [];
}

function stringMatcher(m: { type: string; value: string }): Json {
  return m.type === "RegularExpression" ? { safe_regex: { regex: m.value } } : { exact: m.value };
}

/** An HTTPRoute match as Envoy's RouteMatch: PathPrefix matches whole path segments, as the
 * Gateway API defines it (`/v1` matches `/v1` and `/v1/x`, not `/v1x`). */
function routeMatch(m: RouteMatchConfig): Json {
  const { type, value } = m.path;
  const path = type === "Exact" ? { path: value }
    : type === "RegularExpression" ? { safe_regex: { regex: value } }
    : value === "/" || value.endsWith("/") ? { prefix: value } : { path_separated_prefix: value };
  const header = (h: StringMatchConfig): Json => ({ name: h.name.toLowerCase(), string_match: stringMatcher(h) });
  const headers = [...(m.method ? [{ name: ":method", string_match: { exact: m.method } }] : []), ...m.headers.map(header)];
  const query = m.queryParams.map((q) => ({ name: q.name, string_match: stringMatcher(q) }));
  return { ...path, ...(headers.length > 0 ? { headers } : {}), ...(query.length > 0 ? { query_parameters: query } : {}) };
}

/** A RequestMirror's share as Envoy's runtime fraction (per million, so fractions survive). */
function mirrorPolicy(m: RouteConfig["mirrors"][number]): Json {
  return { cluster: m.cluster, runtime_fraction: { default_value: { numerator: Math.round(m.percent * 10_000), denominator: "MILLION" } } };
}

/**
 * The Envoy routes of HTTPRoute rules: each match sends to the rule's cluster (the union of its
 * pools' endpoints, steered by the filter, which picks the pool by the rule's weights) and mirrors
 * to each RequestMirror's cluster. A request no rule matches gets Envoy's 404.
 */
function httpRouteRoutes(routes: RouteConfig[]): Json[] {
  return routes.flatMap((r) => r.matches.map((m, k) => ({
    name: `${r.cluster}/match/${k}`,
    match: routeMatch(m),
    route: {
      ...toCluster(r.cluster), retry_policy: RETRY_ON_CONNECT_FAILURE,
      ...(r.mirrors.length > 0 ? { request_mirror_policies: r.mirrors.map(mirrorPolicy) } : {}),
    },
  })));
}

function inferenceListener(opts: BootstrapOptions, port: number, pool: PoolConfig, routes: RouteConfig[] = []): Json {
  const envoyRoutes = routes.length > 0 ? httpRouteRoutes(routes) : [
    // The filter strips any client-sent destination and pool, and sets both on requests it routed.
    ...opts.config.pools.map((p) => withPicker({
      match: { prefix: "/", headers: [{ name: POOL_HEADER, string_match: { exact: p.id } }, { name: DESTINATION_HEADER, present_match: true }] },
      route: { ...toCluster(pickedClusterName(p.id)), retry_policy: RETRY_ON_CONNECT_FAILURE },
    }, p)),
    // Everything else (GET /v1/models, /health, ...) goes to the pool by round robin.
    { match: { prefix: "/" }, route: toCluster(poolClusterName(pool.id)) },
  ];
  // Start routing with the snapshot known when the bootstrap was written, even if the extension
  // server is not reachable yet; ECDS replaces it as soon as it connects.
  const filter = ecdsHttpFilter(FILTER_NAME, XDS, wasmFilter({ wasmPath: opts.wasmPath, snapshot: opts.snapshot }));
  return httpListener(`inference-${port}`, opts.listenAddress, port, envoyRoutes, [filter, ...pickerFilters(opts.config)]);
}

function clusters(opts: BootstrapOptions): Json[] {
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
  // Each pool's endpoints (one EDS resource) back two clusters: the endpoints the filter picks
  // (override_host only connects to a listed address that is a member of the pool, so a forged
  // header cannot reach anything else), and plain round robin for everything else.
  const picked = opts.config.pools.map((p) => poolCluster(pickedClusterName(p.id), p.id, XDS, "override_host"));
  const pools = opts.config.pools.map((p) => poolCluster(poolClusterName(p.id), p.id, XDS, "ROUND_ROBIN"));
  const first = opts.config.pools[0];
  const leastRequest = opts.leastRequestPort !== undefined && first ? [poolCluster(leastRequestClusterName(first.id), first.id, XDS, "LEAST_REQUEST")] : [];
  // An HTTPRoute rule's cluster and its mirrors' clusters, with endpoints by the rule's name.
  const ruled = opts.config.routes.flatMap((r) => [
    poolCluster(r.cluster, r.backends[0]!.pool, XDS, "override_host", routeEdsName(r.cluster)),
    ...r.mirrors.map((m) => mirrorCluster(m.cluster, routeEdsName(m.cluster), XDS)),
  ]);
  const pickers = opts.config.pools.flatMap((p) => (p.picker ? [pickerCluster(p.id, XDS, p.picker.address?.tls ?? true)] : []));
  return [xds, ...picked, ...pools, ...leastRequest, ...ruled, ...pickers];
}

/** The HTTPRoute rules served on each inference listener port: a rule's parentRefs ports, else the
 * default port (`inferencePort` puts every rule on the one listener). */
function routesByPort(opts: Pick<BootstrapOptions, "inferencePort" | "config">): Map<number, RouteConfig[]> {
  const out = new Map<number, RouteConfig[]>();
  for (const r of opts.config.routes) {
    const ports = opts.inferencePort !== undefined ? [opts.inferencePort] : r.ports.length > 0 ? r.ports : [DEFAULT_INFERENCE_PORT];
    for (const port of ports) out.set(port, [...(out.get(port) ?? []), r]);
  }
  return out;
}

/** The inference listener port of each pool: its attach-to port, else the default. */
function inferencePorts(opts: Pick<BootstrapOptions, "inferencePort" | "config">): Map<number, PoolConfig> {
  const ports = new Map<number, PoolConfig>();
  for (const pool of opts.config.pools) {
    const port = opts.inferencePort ?? pool.attachTo?.port ?? DEFAULT_INFERENCE_PORT;
    if (!ports.has(port)) ports.set(port, pool);
  }
  return ports;
}

export function buildBootstrap(opts: BootstrapOptions): Json {
  const first = opts.config.pools[0];
  if (!first) throw new Error("the configuration has no InferencePool");
  // A port with HTTPRoutes serves those; one without serves every model on its pool (the default).
  const routed = routesByPort(opts);
  const ports = inferencePorts(opts);
  for (const port of routed.keys()) if (!ports.has(port)) ports.set(port, first);
  const listeners = [
    plainListener("plain", opts.listenAddress, opts.plainPort, poolClusterName(first.id)),
    ...[...ports].map(([port, pool]) => inferenceListener(opts, port, pool, routed.get(port))),
    ...(opts.leastRequestPort !== undefined ? [plainListener("least-request", opts.listenAddress, opts.leastRequestPort, leastRequestClusterName(first.id))] : []),
  ];
  return {
    node: { id: "infergate-standalone", cluster: "infergate" },
    admin: { address: socket("127.0.0.1", opts.adminPort) },
    static_resources: { listeners, clusters: clusters(opts) },
  };
}
